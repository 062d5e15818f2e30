"""The outcome loop end to end on a simulated world of 130 days: the platform scores,
loans issue from its own decisions, repayments arrive through the GX-gated ingest, the
repayment label takes over once enough loans mature, and the backtest shows each band's
realized bad rate against its mean PD at issue with a Jeffreys interval."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from creditrisk.landing.outcomes import LoopPolicy
from tests.outcome_world import run_loop
from tests.warehouse import rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "credit-risk-pd-outcome-loop"


def test_the_outcome_loop_closes(warehouse_copy, mlflow_store: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    with warehouse_copy("crtest_outcome_loop") as url:
        run = run_loop(url, mlflow_store, tmp_path, model_name=MODEL, customers=800,
                       days=130, min_matured_loans=100,
                       policy=LoopPolicy(exploration_share=0.1))
        assert (run.end - run.first_day).days + 1 >= 120
        issued = sum(d["loans"] for d in run.days)
        assert issued > 150
        assert sum(d["exploration"] for d in run.days) > 0
        # every loan and payment the loop wrote went through the gate, nothing quarantined
        assert all(r["status"] == "succeeded" and r["rows_quarantined"] == 0
                   for r in run.ingested)
        assert rows(url, "SELECT count(*) FROM loans") == [(issued,)]
        # each loan carries the decision that made it: the champion's score of that day
        bad_links = rows(url, """
            SELECT count(*) FROM loans l LEFT JOIN risk_scores r
              ON r.customer_id = l.customer_id AND 'score:' || r.score_date = l.decided_by
            WHERE r.customer_id IS NULL OR r.decision <> l.decision
               OR (l.decision = 'APPROVE') = l.exploration""")
        assert bad_links == [(0,)]
        assert rows(url, "SELECT count(DISTINCT model_version) FROM loans") == [(1,)]
        # the proxy trained the champion; the retrain switched to the repayment label
        assert run.champion["fingerprint"]["label_strategy"] == "forward_window"
        fp = run.final["fingerprint"]
        assert fp["label_strategy"] == "repayment" and fp["matured_loans"] >= 100
        tags = MlflowClient(tracking_uri=mlflow_store).get_model_version(
            MODEL, run.final["version"]).tags
        assert tags["label_strategy"] == "repayment"
        # the backtest: per band, realized vs predicted with an interval
        bands = run.backtest["bands"]
        assert bands and run.backtest["matured"] >= 100
        for b in bands:
            assert 0 <= b["interval_lo"] <= b["realized_bad_rate"] <= b["interval_hi"] <= 1
            # a band without a PD (DORMANT: an exploration loan to a policy answer) has no test
            assert b["within_interval"] in ((None,) if b["mean_pd"] is None else (True, False))
        assert any(b["within_interval"] is not None for b in bands)
        stored = rows(url, "SELECT model_version, risk_band, loans, bad FROM outcome_backtest"
                           " WHERE as_of_date = :d ORDER BY 1, 2", d=run.end + dt.timedelta(1))
        assert [(b["model_version"], b["risk_band"], b["loans"], b["bad"]) for b in bands
                ] == stored
        vintages = rows(url, "SELECT months_on_book, loans, cumulative_bad_rate"
                             " FROM loan_vintages(:d)", d=run.end + dt.timedelta(1))
        assert vintages and all(0 <= r[2] <= 1 for r in vintages)

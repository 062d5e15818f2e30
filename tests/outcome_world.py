"""The outcome loop run end to end on a simulated world (the e2e test and the benchmark).

History is generated and loaded (through the production SQL, without the GX gate the
ingestion tests cover); a proxy model is trained and aliased ``champion``; then, day by
day, the champion scores the customers into ``risk_scores`` (every ``score_every`` days),
checkouts are decided from those scores, loans issue and repayments follow each
customer's hidden state (:mod:`creditrisk.landing.outcomes`); the loans and
repayments files go through ``ingest_outcome_days`` (GX suites, warehouse checks); finally
the model is retrained as of the day after the history (the repayment label takes over
once enough loans have matured) and the band backtest is written.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from creditrisk.evaluation.backtest import run_backtest
from creditrisk.ingest.outcomes import ingest_outcome_days
from creditrisk.landing.outcomes import DefaultMechanism, LoopPolicy, LoopState, step
from creditrisk.landing.simulate import _simulate, generate_landing
from creditrisk.model.train import pinned_config, train
from creditrisk.scoring.batch import score_date
from creditrisk.storage.db import make_engine
from creditrisk.storage.loans import decisions_as_of
from tests.warehouse import load_landing_files


@dataclass
class LoopRun:
    first_day: dt.date
    end: dt.date
    champion: dict[str, Any]
    final: dict[str, Any]
    backtest: dict[str, Any]
    ingested: list[dict[str, object]]
    days: list[dict[str, Any]] = field(default_factory=list)
    #: the mid-loop retrain (``retrain_after``), whose version became champion if it
    #: trained on the repayment label
    retrained: dict[str, Any] | None = None


def loop_config(min_matured_loans: int | None) -> dict[str, Any]:
    """The logistic-regression-only training config with the repayment switch at ``n``."""
    cfg = copy.deepcopy(pinned_config("logistic_regression"))
    cfg["dataset"]["repayment"]["min_matured_loans"] = min_matured_loans
    cfg["bootstrap"]["replicates"] = 50
    cfg["promotion"]["bootstrap"]["replicates"] = 50
    return cfg


def run_loop(url: str, tracking_uri: str, landing: Path, *, model_name: str,
             customers: int = 800, days: int = 130, warmup_days: int = 50,
             score_every: int = 7, seed: int = 7, min_matured_loans: int = 100,
             policy: LoopPolicy | None = None,
             mechanism: DefaultMechanism | None = None,
             retrain_after: int | None = None) -> LoopRun:
    """Run the loop; see the module. Long-running: minutes on a small world.

    Long because it is the loop's one script, step by step. With ``retrain_after=n``,
    after ``n`` loop days the loans so far are ingested and the model is retrained; a
    version trained on the repayment label becomes ``champion`` (set directly, not through
    the gate) and decides the rest of the loop.
    """
    from mlflow import MlflowClient

    end = dt.date(2019, 1, 1) + dt.timedelta(days=days - 1)
    summary = generate_landing(customers=customers, days=days, end_date=end,
                               out_dir=landing / "tx", seed=seed)
    _, hidden = _simulate(customers=customers, days=days, end_date=end, seed=seed)
    load_landing_files(url, summary.files)
    tx = _frame(summary.files)
    start = summary.first_day + dt.timedelta(days=warmup_days)
    champion = train(start, database_url=url, tracking_uri=tracking_uri, model_name=model_name,
                     run_id="loop-proxy", config=loop_config(None))
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(
        model_name, "champion", champion["version"])
    state = LoopState(first_day=summary.first_day, hidden=hidden.set_index("CustomerId"))
    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    run_days: list[dict[str, Any]] = []
    loop_days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    ingested: list[dict[str, object]] = []
    retrained = None
    try:
        for i, day in enumerate(loop_days):
            if retrain_after is not None and i == retrain_after:
                ingested += ingest_outcome_days(loop_days[:i], database_url=url,
                                                landing_dir=landing, run_id="loop-loans-1")
                retrained = train(day, database_url=url, tracking_uri=tracking_uri,
                                  model_name=model_name, run_id="loop-retrain-1",
                                  config=loop_config(min_matured_loans))
                if retrained["fingerprint"]["label_strategy"] == "repayment":
                    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(
                        model_name, "champion", retrained["version"])
            if i % score_every == 0 or i == retrain_after:
                score_date(day, database_url=url, tracking_uri=tracking_uri,
                           model_name=model_name, alias="champion", run_id=f"loop-score-{day}")
            run_days.append(step(state, day, tx, decisions_as_of(engine, day), landing,
                                 policy=policy or LoopPolicy(),
                                 mechanism=mechanism or DefaultMechanism(), rng=rng))
    finally:
        engine.dispose()
    done = retrain_after or 0
    ingested += ingest_outcome_days(loop_days[done:], database_url=url, landing_dir=landing,
                                    run_id="loop-loans")
    known = end + dt.timedelta(days=1)
    final = train(known, database_url=url, tracking_uri=tracking_uri, model_name=model_name,
                  run_id="loop-retrain", config=loop_config(min_matured_loans))
    backtest = run_backtest(known, database_url=url, run_id="loop-backtest")
    return LoopRun(summary.first_day, end, champion, final, backtest, ingested, run_days,
                   retrained)


def _frame(files: list[Path]) -> Any:
    import pandas as pd

    return pd.concat([pd.read_csv(f, dtype={"Amount": float}) for f in files],
                     ignore_index=True)

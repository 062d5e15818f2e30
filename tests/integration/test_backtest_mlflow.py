"""The backtest's MLflow run: plots, tables and metrics logged by the trainer on a real,
authenticated ``mlflow server``; a registry that is down costs a warning, not the rows."""

from __future__ import annotations

import csv
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditrisk.config import get_settings
from creditrisk.registry import provision
from creditrisk.tasks import backtest_from_settings
from tests.mlflow_server import MlflowServer, authenticated_server, free_port
from tests.warehouse import rows

AS_OF = "2019-06-01"
ROLE_VARS = ("CREDITRISK_MLFLOW_TRAINER_PASSWORD", "CREDITRISK_MLFLOW_READER_PASSWORD",
             "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")

#: (model version, band, PD at issue, issue day, loans, of which bad): v2's band A is
#: far worse than its PD (outside its interval), the others are within
BOOK = [("1", "A", 0.05, dt.date(2019, 1, 3), 20, 1),
        ("1", "B", 0.30, dt.date(2019, 1, 10), 10, 3),
        ("2", "A", 0.02, dt.date(2019, 2, 5), 10, 6)]


def _book(url: str) -> None:
    """Loans of two issue months; a good loan pays both installments on time, a bad one
    never pays."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for version, band, pd_, day, n, bad in BOOK:
                for i in range(n):
                    loan_id = f"v{version}{band}{i}"
                    conn.execute(sa.text(
                        "INSERT INTO loans (loan_id, customer_id, issued_at, amount, term_days,"
                        " installments, decided_by, model_name, model_version, pd_at_issue,"
                        " decision, risk_band, exploration, source_file, ingest_run_id)"
                        " VALUES (:id, 'CustomerId_1', :t, 1000, 14, 2, :by, 'm', :v, :pd,"
                        " 'APPROVE', :b, false, 'loans_x.csv', 'r')"),
                        {"id": loan_id, "t": dt.datetime.combine(day, dt.time(10), dt.UTC),
                         "v": version, "pd": pd_, "b": band, "by": f"score:{day}"})
                    if i < bad:
                        continue
                    for k in (1, 2):
                        due = day + dt.timedelta(days=7 * k)
                        conn.execute(sa.text(
                            "INSERT INTO repayments (loan_id, installment, due_date, paid_at,"
                            " amount, source_file, ingest_run_id) VALUES (:id, :k, :due,"
                            " :paid, 500, 'repayments_x.csv', 'r')"),
                            {"id": loan_id, "k": k, "due": due,
                             "paid": dt.datetime.combine(due, dt.time(12), dt.UTC)})
            # the night of 2019-01-10: the champion (v1) approved, a challenger (v2) would
            # have declined; its swap-set cell gets the night's 10 loans (3 bad)
            conn.execute(sa.text(
                "INSERT INTO risk_scores (customer_id, score_date, probability_of_default,"
                " credit_score, risk_band, decision, recommended_limit, recommended_term_days,"
                " model_name, model_version, scored_at, run_id) VALUES ('CustomerId_1',"
                " '2019-01-10', 0.3, 600, 'B', 'APPROVE', 1000, 14, 'm', '1', now(), 'r')"))
            conn.execute(sa.text(
                "INSERT INTO shadow_scores (score_date, customer_id, model_name, model_version,"
                " segment, probability_of_default, credit_score, risk_band, decision,"
                " scored_at, run_id) VALUES ('2019-01-10', 'CustomerId_1', 'm', '2', 'scored',"
                " 0.5, 500, 'C', 'DECLINE', now(), 'r')"))
            conn.execute(sa.text(
                "INSERT INTO swap_set_reports (score_date, model_name, champion_version,"
                " challenger_version, n, n_changed, agreement_rate, n_pd, run_id)"
                " VALUES ('2019-01-10', 'm', '1', '2', 1, 1, 0.0, 0, 'r')"))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, dict]]:
    """An authenticated server, provisioned: the trainer owns the experiment."""
    folder = tmp_path_factory.mktemp("backtest-mlflow")
    server, users = authenticated_server(folder)
    server.start()
    try:
        provision(server.url, "credit-risk-pd-backtest", admin=users["admin"],
                  trainer=users["trainer"], reader=users["reader"])
        yield server, users
    finally:
        server.stop()


@pytest.fixture
def env(warehouse_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
        server: tuple[MlflowServer, dict]) -> Iterator[str]:
    _, users = server
    for key in ROLE_VARS:  # restored by monkeypatch: the role switch writes the last two
        monkeypatch.setenv(key, os.environ.get(key, ""))
    monkeypatch.setenv("CREDITRISK_MLFLOW_TRAINER_PASSWORD", users["trainer"][1])
    monkeypatch.setenv("CREDITRISK_MLFLOW_READER_PASSWORD", users["reader"][1])
    monkeypatch.setenv("CREDITRISK_MODEL_NAME", "credit-risk-pd-backtest")
    monkeypatch.setenv("CREDITRISK_MLFLOW_HTTP_RETRIES", "0")
    _book(db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_the_backtest_logs_its_plots_tables_and_metrics_as_an_mlflow_run(
    env: str, server: tuple[MlflowServer, dict], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    srv, users = server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    get_settings.cache_clear()
    result = backtest_from_settings(as_of=AS_OF, run_id="bt-mlflow")
    assert result["mlflow_run_id"]

    # read back as the reader: the run, its tags and metrics
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", users["reader"][0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", users["reader"][1])
    client = MlflowClient(tracking_uri=srv.url)
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"backtest {AS_OF}"
    assert run.data.tags["run_kind"] == "backtest" and run.data.tags["as_of"] == AS_OF
    assert run.data.tags["model_versions"] == "1,2"
    assert run.data.tags["model_version.1"] == run.data.tags["model_version.2"] == "judged"
    with pytest.raises(MlflowException, match="PERMISSION_DENIED|403"):  # so the trainer did
        client.create_run(run.info.experiment_id)
    within = dict(rows(env, "SELECT within_interval, count(*) FROM outcome_backtest"
                            " WHERE as_of_date = :d GROUP BY 1", d=AS_OF))
    matured = rows(env, "SELECT count(*) FROM loan_performance(:d) WHERE matured", d=AS_OF)
    assert within == {True: 2, False: 1}
    assert run.data.metrics == {
        "bands": 3.0, "bands_within": float(within[True]),
        "bands_outside": float(within[False]), "matured_loans": float(matured[0][0]),
        "loans": 40.0}

    # the artifacts: both plots (PNG files) and both tables, the same rows as the warehouse
    listed = {f.path for folder in ("plots", "tables")
              for f in client.list_artifacts(run.info.run_id, folder)}
    assert listed == {"plots/backtest_bands.png", "plots/vintages.png",
                      "tables/backtest_bands.csv", "tables/vintages.csv",
                      "tables/swap_set_outcomes.csv"}
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path)))
    for png in ("backtest_bands.png", "vintages.png"):
        data = (local / "plots" / png).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, png
    bands = list(csv.DictReader((local / "tables" / "backtest_bands.csv").open()))
    stored = rows(env, "SELECT model_version, risk_band, loans, bad, within_interval"
                       " FROM outcome_backtest WHERE as_of_date = :d"
                       " ORDER BY model_version, risk_band", d=AS_OF)
    assert [(b["model_version"], b["risk_band"], int(b["loans"]), int(b["bad"]),
             b["within_interval"] == "True") for b in bands] == [tuple(r) for r in stored]
    assert {b["as_of_date"] for b in bands} == {AS_OF}
    vintages = list(csv.DictReader((local / "tables" / "vintages.csv").open()))
    expected = rows(env, "SELECT issue_month, months_on_book, loans, bad FROM loan_vintages(:d)"
                         " ORDER BY 1, 2", d=AS_OF)
    assert [(v["issue_month"], int(v["months_on_book"]), int(v["loans"]), int(v["bad"]))
            for v in vintages] == [(m.isoformat(), mob, n, b) for m, mob, n, b in expected]
    assert {v["issue_month"] for v in vintages} == {"2019-01-01", "2019-02-01"}
    swaps = list(csv.DictReader((local / "tables" / "swap_set_outcomes.csv").open()))
    expected = rows(env, "SELECT score_date, challenger_version, from_decision, to_decision,"
                         " loans, bad FROM swap_set_outcomes(:d) ORDER BY 1, 2, 3, 4", d=AS_OF)
    assert [(s["score_date"], s["challenger_version"], s["from_decision"], s["to_decision"],
             int(s["loans"]), int(s["bad"])) for s in swaps] == [
        (d.isoformat(), *rest) for d, *rest in expected]
    assert [(s["from_decision"], s["to_decision"], s["loans"], s["bad"]) for s in swaps] == [
        ("APPROVE", "DECLINE", "10", "3")]


def test_a_registry_that_is_down_costs_a_warning_not_the_backtest(
    env: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CREDITRISK_MLFLOW_HTTP_BACKOFF_FACTOR", "0")
    get_settings.cache_clear()
    with caplog.at_level("WARNING", logger="creditrisk.tasks"):
        result = backtest_from_settings(as_of=AS_OF, run_id=f"bt-down-{uuid.uuid4().hex[:4]}")
    assert result["mlflow_run_id"] is None
    assert len(result["bands"]) == 3 and result["outside"] == ["v2 A"]
    assert rows(env, "SELECT count(*) FROM outcome_backtest WHERE as_of_date = :d",
                d=AS_OF) == [(3,)]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and r.name == "creditrisk.tasks"]
    assert len(warnings) == 1 and "outcome_backtest rows are written" in warnings[0]
    assert "unreachable" in warnings[0]

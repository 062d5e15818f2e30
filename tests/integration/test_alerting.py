"""Alerts from real DAG runs (dag.test) to a real HTTP webhook receiver on loopback."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditrisk.landing.simulate import generate_landing
from tests.alert_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.slow
DAY = dt.date(2019, 2, 12)
RUN_AT = dt.datetime(2019, 2, 13, 2, tzinfo=dt.UTC)


@pytest.fixture
def receiver(warehouse_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    from creditrisk.config import get_settings

    with webhook_receiver() as rec:
        monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", rec.url)
        get_settings.cache_clear()
        yield rec
    get_settings.cache_clear()


def test_a_failed_task_posts_one_task_failed_alert(load_dag, receiver: Receiver,  # type: ignore[no-untyped-def]
                                                   warehouse_env: Path) -> None:
    # no landing file for the day asked for (explicit dates do not wait for their file):
    # the ingest task fails for good
    run = load_dag("ingest_transactions").test(logical_date=RUN_AT,
                                               run_conf={"date": DAY.isoformat()})
    assert run.state == "failed"
    assert receiver.kinds() == ["task_failed"]
    post = receiver.posts[0]
    assert "ingest_transactions.ingest failed" in post["text"]
    assert "no such landing file" in post["text"]
    facts = {f["text"].split("\n")[0]: f["text"].split("\n")[1]
             for f in post["blocks"][2]["fields"]}
    assert facts["*DAG*"] == "ingest_transactions" and facts["*Task*"] == "ingest"


def _spoil(path: Path, share: float) -> tuple[int, int]:
    """Give ``share`` of the file's rows a currency the suite rejects; (rows, spoiled)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    step = int(1 / share)
    spoiled = 0
    for i in range(0, len(rows), step):
        rows[i]["CurrencyCode"] = "KES"
        spoiled += 1
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows), spoiled


def test_quarantine_over_threshold_alerts_once_and_does_not_retry(
    load_dag, receiver: Receiver, warehouse_env: Path, db_url: str,  # type: ignore[no-untyped-def]
) -> None:
    generate_landing(customers=120, days=1, end_date=DAY, out_dir=warehouse_env, seed=4)
    (path,) = sorted(warehouse_env.glob("*.csv"))
    rows, spoiled = _spoil(path, 0.2)
    dag = load_dag("ingest_transactions")
    ingest = dag.get_task("ingest")
    ingest.retries, ingest.retry_delay = 2, dt.timedelta(0)  # retries on: they must be skipped

    run = dag.test(logical_date=RUN_AT)

    assert run.state == "failed"
    (ti,) = [t for t in run.get_task_instances() if t.task_id == "ingest"]
    assert ti.state == "failed" and ti.try_number == 1  # failed at once, not retried
    assert receiver.kinds() == ["quarantine_threshold"]  # instead of a generic failure
    post = receiver.posts[0]
    assert f"{spoiled} of {rows} rows" in post["text"] and "5.0% threshold" in post["text"]
    assert path.name in str(post["blocks"])
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM raw_transactions")).scalar() == 0
            assert conn.execute(sa.text(
                "SELECT count(*) FROM quarantined_transactions")).scalar() == spoiled
    finally:
        engine.dispose()


def test_a_clean_run_posts_nothing(load_dag, receiver: Receiver,  # type: ignore[no-untyped-def]
                                   warehouse_env: Path) -> None:
    generate_landing(customers=80, days=1, end_date=DAY, out_dir=warehouse_env, seed=5)
    assert load_dag("ingest_transactions").test(logical_date=RUN_AT).state == "success"
    assert receiver.posts == []

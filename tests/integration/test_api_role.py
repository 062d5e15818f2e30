"""The scoring API's warehouse role (migration 0008): insert decisions, read features, no more."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from creditrisk.storage.db import make_engine
from creditrisk.storage.decisions import COLUMNS, insert_decisions
from creditrisk.storage.roles import API_ROLE, ensure_login, url_for_user


def _decision(request_id: str) -> tuple[object, ...]:
    values = {
        "request_id": request_id, "client_request_id": "client-1", "item": 0,
        "decided_at": time.time(), "route": "/predict", "customer_id": "C1",
        "model_name": "m", "model_version": "1", "feature_source": "request",
        "feature_as_of_date": None, "amount": None, "product_category": None,
        "thin_file": False, "probability_of_default": 0.1, "credit_score": 600,
        "risk_band": "B", "decision": "APPROVE", "recommended_limit": 10.0,
        "recommended_term_days": 30, "reason_codes": json.dumps([]), "shadow": False,
    }
    return tuple(values[c] for c in COLUMNS)


@pytest.fixture
def api_url(db_url: str) -> str:
    """A LOGIN user in creditrisk_api, made the way the runner makes it."""
    user, password = f"api_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = make_engine(db_url)
    try:
        ensure_login(admin, user, password)
        ensure_login(admin, user, password)  # idempotent: a second `up` sets it again
    finally:
        admin.dispose()
    return url_for_user(db_url, user, password)


def _refused(engine: sa.Engine, statement: str) -> None:
    with pytest.raises(sa.exc.ProgrammingError) as err, engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert isinstance(err.value.orig, psycopg2.errors.InsufficientPrivilege), statement


def test_the_api_role_inserts_decisions_and_reads_features_only(
    api_url: str, db_url: str,
) -> None:
    api = make_engine(api_url)
    try:
        with api.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar_one() != "postgres"
            member = conn.execute(sa.text("SELECT pg_has_role(current_user, :r, 'MEMBER')"),
                                  {"r": API_ROLE}).scalar_one()
            assert member is True
            # what the API reads (serving/features.py)
            conn.execute(sa.text("SELECT * FROM customer_features LIMIT 1")).all()
        # what the API writes: the writer thread's own statement, ON CONFLICT included
        rid = uuid.uuid4().hex
        assert insert_decisions(api, [_decision(rid)]) == 1
        assert insert_decisions(api, [_decision(rid)]) == 0  # a resent row is skipped
        # 0012: the challenger's shadow row of the same call goes in beside the answered one
        shadow = (*_decision(rid)[:-1], True)
        assert insert_decisions(api, [shadow]) == 1
        with api.connect() as conn:
            conn.execute(sa.text("SELECT model_version FROM model_promotions LIMIT 1")).all()
        for statement in (
            "UPDATE decision_log SET decision = 'DECLINE'",
            "DELETE FROM decision_log",
            "TRUNCATE decision_log",
            "SELECT * FROM decision_log",
            "INSERT INTO risk_scores (customer_id, score_date) VALUES ('C1', DATE '2019-01-01')",
            "UPDATE risk_scores SET decision = 'DECLINE'",
            "DELETE FROM risk_scores",
            "SELECT * FROM risk_scores",
            "INSERT INTO customer_features (customer_id, as_of_date)"
            " VALUES ('C1', DATE '2019-01-01')",
            "DELETE FROM customer_features",
            "SELECT * FROM raw_transactions",
            "CREATE TABLE api_owned (x int)",
            # 0012: the API reads model_promotions (its alias-poll audit), never writes it
            "INSERT INTO model_promotions (model_name, model_version, decision, decided_by)"
            " VALUES ('m', '1', 'external', 'api')",
            "DELETE FROM model_promotions",
        ):
            _refused(api, statement)
    finally:
        api.dispose()
    owner = make_engine(db_url)
    try:
        with owner.connect() as conn:
            got = conn.execute(sa.text("SELECT client_request_id, decision, shadow FROM"
                                       " decision_log WHERE request_id = :r ORDER BY shadow"),
                               {"r": rid}).all()
        # nothing changed them
        assert [tuple(r) for r in got] == [("client-1", "APPROVE", False),
                                           ("client-1", "APPROVE", True)]
    finally:
        owner.dispose()


def test_the_runner_gives_the_api_a_user_in_the_role_and_keeps_other_secrets(
    db_url: str, tmp_path: Path,
) -> None:
    from devstack.postgres import Databases
    from devstack.stack import Layout, api_warehouse_url, services

    layout = Layout(state=tmp_path, airflow_port=1, mlflow_port=2, api_port=3)
    # keys another step of `up` wrote first (e.g. MLflow credentials): kept as they are
    earlier = {"api_key": "k", "mlflow_password": "m"}  # test-only secret
    layout.secrets_file.write_text(json.dumps(earlier))
    url = api_warehouse_url(layout, db_url)
    saved = json.loads(layout.secrets_file.read_text())
    assert saved["api_key"] == "k" and saved["mlflow_password"] == "m"
    assert len(saved["warehouse_api_password"]) >= 24
    assert layout.secrets_file.stat().st_mode & 0o777 == 0o600
    assert api_warehouse_url(layout, db_url) == url  # the same password on the next `up`
    assert sa.engine.make_url(url).username == "creditrisk_api_user"
    api = make_engine(url)
    try:
        assert insert_decisions(api, [_decision(uuid.uuid4().hex)]) == 1
        _refused(api, "DELETE FROM decision_log")
    finally:
        api.dispose()
    dbs = Databases(db_url, "postgresql://a/airflow", "postgresql://a/mlflow", embedded=False)
    by_name = {s.name: s for s in services(layout, dbs, {"DATABASE_URL": db_url},
                                           api_database_url=url)}
    assert by_name["api"].env["DATABASE_URL"] == url
    assert by_name["airflow-scheduler"].env["DATABASE_URL"] == db_url  # the others: owner


def test_decisions_round_trip_through_copy_whatever_their_text(
    api_url: str, db_url: str,
) -> None:
    """The writer COPYs rows as text: backslashes, tabs, newlines, quotes and non-ASCII
    come back as they went in, floats to the bit, and NULLs stay NULL."""
    import numpy as np

    rid = uuid.uuid4().hex
    reasons = [{"code": "X", "text": 'a "quoted" \\ back\tslash\nline é ☃', "contribution": 0.1}]
    sent = dict(zip(COLUMNS, _decision(rid), strict=True))
    sent.update(model_name="m\\odel\tname\nx\r", customer_id="C\\1 é",
                reason_codes=json.dumps(reasons), amount=np.float64(1 / 3),
                probability_of_default=0.1 + 0.2, feature_as_of_date="2019-02-14",
                client_request_id=None, credit_score=np.int64(612))
    api = make_engine(api_url)
    try:
        assert insert_decisions(api, [tuple(sent[c] for c in COLUMNS)] * 2) == 1  # one new
    finally:
        api.dispose()
    owner = make_engine(db_url)
    try:
        with owner.connect() as conn:
            got = conn.execute(sa.text(
                "SELECT model_name, customer_id, reason_codes, amount, probability_of_default,"
                " feature_as_of_date::text, client_request_id, credit_score,"
                " extract(epoch FROM decided_at) FROM decision_log WHERE request_id = :r"),
                {"r": rid}).one()
    finally:
        owner.dispose()
    assert tuple(got[:8]) == ("m\\odel\tname\nx\r", "C\\1 é", reasons, 1 / 3, 0.1 + 0.2,
                              "2019-02-14", None, 612)
    assert abs(float(got[8]) - sent["decided_at"]) < 1e-5  # timestamptz keeps microseconds

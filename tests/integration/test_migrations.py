"""The warehouse schema is created and removed only by the Alembic migrations."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from creditrisk.schema import WAREHOUSE_COLUMNS
from creditrisk.storage import migrate

TABLES = {
    "raw_transactions": ["transaction_id"],
    "quarantined_transactions": ["quarantine_id"],
    "ingestion_runs": ["run_id", "source_file"],
    "customer_features": ["customer_id", "as_of_date"],
    "customer_labels": ["customer_id", "as_of_date", "label_strategy"],
    "risk_scores": ["customer_id", "score_date"],
    "score_monitoring": ["score_date", "model_name", "model_version"],
    "model_promotions": ["promotion_id"],
    "decision_log": ["request_id", "item", "shadow"],  # 0012: a shadow row beside the answer
    "shadow_scores": ["score_date", "model_name", "model_version", "customer_id"],
    "shadow_scores_stage": ["score_date", "model_name", "model_version", "customer_id"],
    "swap_set_reports": ["score_date", "model_name", "champion_version", "challenger_version"],
    "loans": ["loan_id"],
    "repayments": ["loan_id", "installment"],
    "quarantined_outcomes": ["quarantine_id"],
    "outcome_backtest": ["as_of_date", "model_version", "risk_band"],
    # 0014: incremental features
    "customer_daily_aggregates": ["customer_id", "day"],
    "customer_first_seen": ["customer_id", "kind", "value"],
    "customer_daily_products": ["customer_id", "day", "product_id"],
    "customer_feature_state": ["as_of_date", "customer_id"],
    "customer_feature_state_dates": ["as_of_date"],
    "customer_features_stage": ["customer_id", "as_of_date"],
    # 0016: ingestion marks days, the next build re-aggregates them
    "customer_aggregate_dirty_days": ["day"],
    "customer_aggregate_refreshes": ["refresh_id"],
    "customer_features_stage_chunks": ["as_of_date", "chunk"],  # 0017: a mapped build
}
RISK_SCORE_COLUMNS = {
    "customer_id", "score_date", "probability_of_default", "credit_score", "risk_band",
    "decision", "recommended_limit", "recommended_term_days", "reason_codes", "model_name",
    "model_version", "scored_at", "run_id", "segment",
}


def _inspect(url: str) -> tuple[sa.Engine, sa.Inspector]:
    engine = sa.create_engine(url)
    return engine, sa.inspect(engine)


def test_upgrade_on_empty_database_creates_every_table_and_view(empty_db_url: str) -> None:
    assert migrate.upgrade(empty_db_url) == migrate.head_revision()
    engine, insp = _inspect(empty_db_url)
    try:
        assert set(TABLES) <= set(insp.get_table_names())
        assert {"latest_risk_scores", "loan_installments"} <= set(insp.get_view_names())
        for table, pk in TABLES.items():
            assert insp.get_pk_constraint(table)["constrained_columns"] == pk, table
            for col in insp.get_columns(table):
                assert col.get("comment"), f"{table}.{col['name']} has no SQL comment"
            assert insp.get_table_comment(table)["text"], f"{table} has no comment"
        raw_cols = [c["name"] for c in insp.get_columns("raw_transactions")]
        assert raw_cols[: len(WAREHOUSE_COLUMNS)] == list(WAREHOUSE_COLUMNS)
        assert {"source_file", "ingested_at", "ingest_run_id"} <= set(raw_cols)
        assert {c["name"] for c in insp.get_columns("risk_scores")} == RISK_SCORE_COLUMNS
        raw_indexes = {
            tuple(ix["column_names"]) for ix in insp.get_indexes("raw_transactions")
        }
        assert ("customer_id", "transaction_start_time") in raw_indexes
        time_col = next(
            c for c in insp.get_columns("raw_transactions")
            if c["name"] == "transaction_start_time"
        )
        assert getattr(time_col["type"], "timezone", False) is True
        status = next(c for c in insp.get_columns("ingestion_runs") if c["name"] == "status")
        assert status["comment"].startswith("running")
        # 0008: the client's X-Request-ID has its own (non-unique, indexed) column
        client_id = next(c for c in insp.get_columns("decision_log")
                         if c["name"] == "client_request_id")
        assert client_id["nullable"] is True
        assert ("client_request_id",) in {tuple(ix["column_names"])
                                          for ix in insp.get_indexes("decision_log")}
        with engine.connect() as conn:
            grants = conn.execute(sa.text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
                " WHERE grantee = 'creditrisk_api' ORDER BY 1, 2")).all()
        # 0012: SELECT on model_promotions (the alias poll's audit), still no write there
        assert [tuple(g) for g in grants] == [("customer_features", "SELECT"),
                                              ("decision_log", "INSERT"),
                                              ("model_promotions", "SELECT")]
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_again_works(
    empty_db_url: str,
) -> None:
    migrate.upgrade(empty_db_url)
    assert migrate.downgrade(empty_db_url, "base") is None
    engine, insp = _inspect(empty_db_url)
    try:
        assert set(insp.get_table_names()) <= {"alembic_version"}
        assert insp.get_view_names() == []
    finally:
        engine.dispose()
    assert migrate.upgrade(empty_db_url) == migrate.head_revision()


def test_upgrade_twice_is_a_no_op(db_url: str) -> None:
    assert migrate.upgrade(db_url) == migrate.head_revision()


def test_latest_risk_scores_gives_each_customers_newest_row(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    rows = [
        ("c1", "2019-01-01", 0.10), ("c1", "2019-01-02", 0.20), ("c2", "2019-01-01", 0.30),
    ]
    try:
        with engine.begin() as conn:
            for cid, day, pd_ in rows:
                conn.execute(
                    sa.text(
                        "INSERT INTO risk_scores (customer_id, score_date, probability_of_default,"
                        " credit_score, risk_band, decision, recommended_limit,"
                        " recommended_term_days, model_name, model_version, scored_at, run_id)"
                        " VALUES (:c, :d, :p, 600, 'B', 'APPROVE', 1000, 30, 'm', '1', now(), 'r')"
                    ),
                    {"c": cid, "d": day, "p": pd_},
                )
        with engine.connect() as conn:
            latest = conn.execute(
                sa.text(
                    "SELECT customer_id, score_date::text, probability_of_default "
                    "FROM latest_risk_scores ORDER BY customer_id"
                )
            ).all()
        assert [tuple(r) for r in latest] == [
            ("c1", "2019-01-02", 0.20), ("c2", "2019-01-01", 0.30)
        ]
    finally:
        engine.dispose()


def test_constraints_reject_impossible_scores(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            for decision, score, pd_ in [("MAYBE", 600, 0.1), ("APPROVE", 900, 0.1),
                                         ("APPROVE", 600, 1.5)]:
                try:
                    conn.execute(
                        sa.text(
                            "INSERT INTO risk_scores (customer_id, score_date,"
                            " probability_of_default, credit_score, risk_band, decision,"
                            " recommended_limit, recommended_term_days, model_name,"
                            " model_version, scored_at, run_id) VALUES ('c', '2019-01-01', :p,"
                            " :s, 'B', :d, 0, 30, 'm', '1', now(), 'r')"
                        ),
                        {"p": pd_, "s": score, "d": decision},
                    )
                except sa.exc.IntegrityError:
                    conn.rollback()
                else:
                    raise AssertionError(f"accepted {decision}/{score}/{pd_}")
    finally:
        engine.dispose()


def test_only_scored_rows_carry_a_pd(db_url: str) -> None:
    """A dormant or thin-file row has the policy's answer and no PD; a scored row has one."""
    engine = sa.create_engine(db_url)
    insert = sa.text(
        "INSERT INTO risk_scores (customer_id, score_date, probability_of_default, credit_score,"
        " risk_band, decision, recommended_limit, recommended_term_days, model_name,"
        " model_version, scored_at, run_id, segment) VALUES (:c, '2019-01-05', :p, :s, 'X',"
        " 'REVIEW', 0, 0, 'm', '1', now(), 'r', :seg)"
    )
    try:
        with engine.connect() as conn:
            conn.execute(insert, {"c": "ok1", "p": None, "s": None, "seg": "dormant"})
            conn.execute(insert, {"c": "ok2", "p": 0.2, "s": 640, "seg": "scored"})
            conn.commit()
            for pd_, score, seg in [(None, None, "scored"), (0.2, 640, "dormant"),
                                    (None, None, "asleep")]:
                try:
                    conn.execute(insert, {"c": "bad", "p": pd_, "s": score, "seg": seg})
                except sa.exc.IntegrityError:
                    conn.rollback()
                else:
                    raise AssertionError(f"accepted {seg} with PD {pd_}")
            got = conn.execute(sa.text(
                "SELECT segment FROM latest_risk_scores WHERE customer_id LIKE 'ok%'"
                " ORDER BY customer_id")).scalars().all()
        assert got == ["dormant", "scored"]
    finally:
        engine.dispose()


def test_the_reader_role_reads_every_table_and_view_and_writes_nothing(db_url: str) -> None:
    """``creditrisk_reader`` (0009): SELECT on all of it, now and for tables made later;
    no INSERT, UPDATE, DELETE or CREATE. Checked as a LOGIN user in the role, the way
    docs/operations.md tells a DBA to hand it to an analyst."""
    import uuid

    owner = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    analyst = f"crtest_analyst_{uuid.uuid4().hex[:8]}"
    try:
        with owner.connect() as conn:
            relations = [r[0] for r in conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public'"))]
            conn.execute(sa.text(f"CREATE ROLE {analyst} LOGIN IN ROLE creditrisk_reader"))
            # what a later migration creates is readable without a grant of its own
            conn.execute(sa.text("CREATE TABLE made_later (x int)"))
        assert {"risk_scores", "latest_risk_scores", "decision_log"} <= set(relations)
        as_analyst = sa.create_engine(make_url(db_url).set(username=analyst, password=None))
        try:
            with as_analyst.connect() as conn:
                for name in [*relations, "made_later"]:
                    conn.execute(sa.text(f'SELECT * FROM "{name}" LIMIT 1')).fetchall()
            for sql in ("INSERT INTO made_later VALUES (1)", "DELETE FROM risk_scores",
                        "UPDATE decision_log SET decision = 'APPROVE'",
                        "CREATE TABLE mine (x int)", "TRUNCATE customer_features"):
                with as_analyst.connect() as conn, pytest.raises(
                        sa.exc.ProgrammingError, match="permission denied"):
                    conn.execute(sa.text(sql))
        finally:
            as_analyst.dispose()
    finally:
        with owner.connect() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS made_later"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {analyst}"))
        owner.dispose()


def test_every_view_column_is_documented(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            missing = conn.execute(sa.text(
                "SELECT c.relname, a.attname FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
                " AND NOT a.attisdropped"
                " WHERE c.relkind = 'v' AND col_description(c.oid, a.attnum) IS NULL"
            )).fetchall()
            views = conn.execute(sa.text(
                "SELECT count(*) FROM pg_views WHERE schemaname = 'public'")).scalar_one()
    finally:
        engine.dispose()
    assert views >= 1
    assert missing == [], missing


def test_shadow_and_swap_set_constraints_reject_impossible_rows(db_url: str) -> None:
    """0011: a shadow row holds a PD exactly when it is scored, a known decision and a PD
    in 0..1; a report compares two different versions with consistent counts."""
    shadow = sa.text(
        "INSERT INTO shadow_scores (score_date, customer_id, model_name, model_version,"
        " segment, probability_of_default, credit_score, risk_band, decision, scored_at,"
        " run_id) VALUES ('2019-02-14', :c, 'm', '2', :seg, :p, :s, 'B', :d, now(), 'r')")
    report = sa.text(
        "INSERT INTO swap_set_reports (score_date, model_name, champion_version,"
        " challenger_version, n, n_changed, agreement_rate, n_pd, pd_diff_mean, pd_diff_min,"
        " pd_diff_p05, pd_diff_p25, pd_diff_p50, pd_diff_p75, pd_diff_p95, pd_diff_max, run_id)"
        " VALUES ('2019-02-14', 'm', '1', :v, :n, :k, :a, :npd, :q0, :q0, :q0, :q0, :q0, :q0,"
        " :q95, :q95, 'r')")

    def rep(v: str, n: int = 10, k: int = 2, a: float | None = 0.8, npd: int = 5,
            q0: float | None = -0.1, q95: float | None = 0.1) -> dict:
        return {"v": v, "n": n, "k": k, "a": a, "npd": npd, "q0": q0, "q95": q95}

    good = [(shadow, {"c": "ok", "seg": "scored", "p": 0.2, "s": 640, "d": "APPROVE"}),
            (shadow, {"c": "ok2", "seg": "dormant", "p": None, "s": None, "d": "REVIEW"}),
            (report, rep("2")),
            (report, rep("3", n=0, k=0, a=None, npd=0, q0=None, q95=None))]
    bad = [(shadow, {"c": "x1", "seg": "dormant", "p": 0.2, "s": 640, "d": "REVIEW"}),
           (shadow, {"c": "x2", "seg": "scored", "p": 1.5, "s": 640, "d": "APPROVE"}),
           (shadow, {"c": "x3", "seg": "scored", "p": 0.2, "s": 640, "d": "MAYBE"}),
           (report, rep("1")),  # the champion against itself
           (report, rep("4", k=11)),  # more changes than customers
           (report, rep("5", n=0, k=0, npd=0, q0=None, q95=None)),  # a rate of nobody
           (report, rep("6", q0=0.1, q95=-0.1)),  # quantiles out of order
           (report, rep("7", q95=None)),  # some quantiles missing
           (report, rep("8", npd=0))]  # quantiles of an empty sample
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            for stmt, params in good:
                conn.execute(stmt, params)
            conn.commit()
            for stmt, params in bad:
                try:
                    conn.execute(stmt, params)
                except sa.exc.IntegrityError:
                    conn.rollback()
                else:
                    raise AssertionError(f"accepted {params}")
    finally:
        engine.dispose()


def test_0012_promotion_decisions_and_a_shadow_row_beside_the_answer(db_url: str) -> None:
    """0012: external and rollback are decisions; an unknown one is still refused."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            for decision in ("external", "rollback"):
                conn.execute(sa.text(
                    "INSERT INTO model_promotions (model_name, model_version, decision,"
                    " decided_by) VALUES ('m0012', '1', :d, 'test')"), {"d": decision})
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO model_promotions (model_name, model_version, decision,"
                " decided_by) VALUES ('m0012', '1', 'moved', 'test')"))
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM model_promotions WHERE model_name = 'm0012'"))
    finally:
        engine.dispose()


def test_0013_partitions_risk_scores_by_day_keeping_every_row_both_ways(empty_db_url: str) -> None:
    """0013: the rows of 0012's risk_scores land in one partition per day, the view and
    the reader read them; the downgrade puts them back in one table."""
    migrate.upgrade(empty_db_url, "0012_shadow_decisions")
    engine = sa.create_engine(empty_db_url)
    insert = sa.text(
        "INSERT INTO risk_scores (customer_id, score_date, probability_of_default,"
        " credit_score, risk_band, decision, recommended_limit, recommended_term_days,"
        " reason_codes, model_name, model_version, scored_at, run_id, segment) VALUES (:c, :d,"
        " 0.1, 600, 'B', 'APPROVE', 1000, 30, '[{\"code\": \"X\"}]', 'm', '1',"
        " '2019-01-01T00:00:00Z', 'r', 'scored')")
    everything = ("SELECT customer_id, score_date::text, reason_codes::text FROM risk_scores"
                  " ORDER BY 1, 2")
    try:
        with engine.begin() as conn:
            for c, d in [("c1", "2019-01-01"), ("c1", "2019-01-02"), ("c2", "2019-01-02")]:
                conn.execute(insert, {"c": c, "d": d})
            before = conn.execute(sa.text(everything)).all()
        migrate.upgrade(empty_db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text(everything)).all() == before
            parts = conn.execute(sa.text(
                "SELECT c.relname, count(r.*) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " LEFT JOIN risk_scores r ON r.tableoid = c.oid"
                " WHERE i.inhparent = 'risk_scores'::regclass GROUP BY 1 ORDER BY 1")).all()
            assert [tuple(p) for p in parts] == [("risk_scores_default", 0),
                                                 ("risk_scores_p20190101", 1),
                                                 ("risk_scores_p20190102", 2)]
            assert conn.execute(sa.text("SELECT count(*) FROM latest_risk_scores")).scalar() == 2
        migrate.downgrade(empty_db_url, "0012_shadow_decisions")
        with engine.connect() as conn:
            assert conn.execute(sa.text(everything)).all() == before
            assert conn.execute(sa.text(
                "SELECT relkind FROM pg_class WHERE relname = 'risk_scores'")).scalar() == "r"
    finally:
        engine.dispose()

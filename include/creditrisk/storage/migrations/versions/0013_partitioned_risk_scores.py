"""risk_scores partitioned by score_date: a scored day is swapped in, not copied.

Revision ID: 0013_partitioned_risk_scores
Revises: 0012_shadow_decisions
Create Date: 2026-12-08

* ``risk_scores`` becomes a table partitioned by LIST (``score_date``): one partition per
  published day (``risk_scores_pYYYYMMDD``) and ``risk_scores_default`` for rows of any
  other date written directly. Same columns, types, comments, checks and primary key;
  every existing row is kept (moved into its day's partition). The ``score_date`` index
  goes: a day is its own partition.
* ``risk_scores_stage`` becomes partitioned the same way, without a primary key: a run
  stages a day in a partition of its own (``risk_scores_stage_pYYYYMMDD``, created by
  ``prepare``), and publish builds its primary key, detaches it from the stage and
  attaches it to ``risk_scores`` in the transaction that drops the day's previous
  partition. Staged rows are transient and are not carried over (a re-run restages).
* ``risk_scores_stage_chunks``: one row per staged chunk (rows, run, version and the
  chunk's monitoring counts), written in the chunk's transaction, so publish checks
  completeness and computes monitoring without reading the day back.
* ``latest_risk_scores`` is recreated on the new table with its column comments;
  ``creditrisk_reader`` reads the parents (a partition is read through its parent; the
  default privileges of 0009 cover the partitions too).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_partitioned_risk_scores"
down_revision: str | None = "0012_shadow_decisions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "creditrisk_reader"
TABLE_COMMENT = "Nightly risk scores: PD, credit score, decision, limit, term and reasons"
STAGE_COMMENT = ("Scoring chunks of a run, one partition per day, attached to risk_scores "
                 "in one transaction once every chunk is in; not for readers")
VIEW = """
    CREATE VIEW latest_risk_scores AS
    SELECT DISTINCT ON (customer_id) *
    FROM risk_scores
    ORDER BY customer_id, score_date DESC
"""
#: COMMENT ON COLUMN of each view column, copied from the table column it shows (0009).
VIEW_COMMENTS = """
    DO $$
    DECLARE c record;
    BEGIN
        FOR c IN
            SELECT a.attname, col_description('risk_scores'::regclass, t.attnum) AS doc
            FROM pg_attribute a
            JOIN pg_attribute t ON t.attrelid = 'risk_scores'::regclass
                               AND t.attname = a.attname AND NOT t.attisdropped
            WHERE a.attrelid = 'latest_risk_scores'::regclass AND a.attnum > 0
              AND NOT a.attisdropped
        LOOP
            EXECUTE format('COMMENT ON COLUMN latest_risk_scores.%I IS %L', c.attname, c.doc);
        END LOOP;
    END $$"""
#: One partition per day already in the old table (names built by format(), not Python).
DAY_PARTITIONS = """
    DO $$
    DECLARE d date;
    BEGIN
        FOR d IN SELECT DISTINCT score_date FROM risk_scores_unpartitioned LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF risk_scores FOR VALUES IN (%L)',
                           'risk_scores_p' || to_char(d, 'YYYYMMDD'), d);
        END LOOP;
    END $$"""
CHUNK_COLUMNS = """
    score_date date NOT NULL,
    chunk integer NOT NULL,
    n_chunks integer NOT NULL,
    n_rows integer NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    run_id text NOT NULL,
    stats jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_risk_scores_stage_chunks PRIMARY KEY (score_date, chunk),
    CONSTRAINT ck_stage_chunks_chunk CHECK (chunk >= 0 AND chunk < n_chunks AND n_rows >= 0)
"""
CHUNK_COMMENTS = {
    "score_date": "Date being scored",
    "chunk": "Chunk number, 0 .. n_chunks - 1 (customers by a hash of their id)",
    "n_chunks": "Chunks the plan of the run split the day into",
    "n_rows": "Rows the chunk staged",
    "model_name": "Registered model name",
    "model_version": "Model version that scored the chunk",
    "run_id": "Scoring run that wrote the chunk",
    "stats": "Monitoring counts of the chunk (PD sum, bands, decisions, bin counts against "
             "the training reference), summed at publish",
    "written_at": "When the chunk was staged",
}


def _columns() -> str:
    return ("customer_id, score_date, probability_of_default, credit_score, risk_band,"
            " decision, recommended_limit, recommended_term_days, reason_codes, model_name,"
            " model_version, scored_at, run_id, segment")


def upgrade() -> None:
    op.execute("DROP VIEW latest_risk_scores")
    op.execute("ALTER TABLE risk_scores RENAME TO risk_scores_unpartitioned")
    op.execute("ALTER TABLE risk_scores_unpartitioned RENAME CONSTRAINT pk_risk_scores"
               " TO pk_risk_scores_unpartitioned")
    op.execute("DROP INDEX ix_risk_scores_date")
    op.execute("CREATE TABLE risk_scores (LIKE risk_scores_unpartitioned INCLUDING DEFAULTS"
               " INCLUDING CONSTRAINTS INCLUDING COMMENTS) PARTITION BY LIST (score_date)")
    op.execute("ALTER TABLE risk_scores ADD CONSTRAINT pk_risk_scores"
               " PRIMARY KEY (customer_id, score_date)")
    op.execute(f"COMMENT ON TABLE risk_scores IS '{TABLE_COMMENT}, one partition per day'")
    op.execute("CREATE TABLE risk_scores_default PARTITION OF risk_scores DEFAULT")
    op.execute(DAY_PARTITIONS)
    cols = _columns()
    op.execute(f"INSERT INTO risk_scores ({cols}) SELECT {cols}"  # nosec B608 - constants
               " FROM risk_scores_unpartitioned")
    op.execute("DROP TABLE risk_scores_unpartitioned")
    op.execute(VIEW)
    op.execute("COMMENT ON VIEW latest_risk_scores IS 'Each customer''s newest risk_scores row'")
    op.execute(VIEW_COMMENTS)

    op.execute("DROP TABLE risk_scores_stage")
    op.execute("CREATE TABLE risk_scores_stage (LIKE risk_scores INCLUDING DEFAULTS INCLUDING"
               " CONSTRAINTS INCLUDING COMMENTS) PARTITION BY LIST (score_date)")
    op.execute(f"COMMENT ON TABLE risk_scores_stage IS '{STAGE_COMMENT}'")
    op.execute(f"CREATE TABLE risk_scores_stage_chunks ({CHUNK_COLUMNS})")
    op.execute("COMMENT ON TABLE risk_scores_stage_chunks IS 'One row per staged scoring chunk:"
               " completeness and monitoring counts for publish; not for readers'")
    for name, doc in CHUNK_COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN risk_scores_stage_chunks.{name} IS '{doc}'")
    for table in ("risk_scores", "risk_scores_stage", "risk_scores_stage_chunks",
                  "latest_risk_scores"):
        op.execute(f"GRANT SELECT ON {table} TO {READER}")


def downgrade() -> None:
    op.execute("DROP TABLE risk_scores_stage_chunks")
    op.execute("DROP TABLE risk_scores_stage")
    op.execute("CREATE TABLE risk_scores_stage (LIKE risk_scores INCLUDING DEFAULTS INCLUDING"
               " COMMENTS)")
    for check in ("ck_scores_pd", "ck_scores_credit_score", "ck_scores_decision"):
        op.execute(f"ALTER TABLE risk_scores_stage ADD CONSTRAINT {check} CHECK"
                   f" ({_check_sql(check)})")
    op.execute("ALTER TABLE risk_scores_stage ADD CONSTRAINT pk_risk_scores_stage"
               " PRIMARY KEY (score_date, customer_id)")
    op.execute("COMMENT ON TABLE risk_scores_stage IS 'Scoring chunks of a run, swapped into"
               " risk_scores in one transaction once every chunk is in; not for readers'")

    op.execute("DROP VIEW latest_risk_scores")
    op.execute("ALTER TABLE risk_scores RENAME TO risk_scores_partitioned")
    op.execute("ALTER TABLE risk_scores_partitioned RENAME CONSTRAINT pk_risk_scores"
               " TO pk_risk_scores_partitioned")
    op.execute("CREATE TABLE risk_scores (LIKE risk_scores_partitioned INCLUDING DEFAULTS"
               " INCLUDING CONSTRAINTS INCLUDING COMMENTS)")
    op.execute("ALTER TABLE risk_scores ADD CONSTRAINT pk_risk_scores"
               " PRIMARY KEY (customer_id, score_date)")
    op.execute(f"COMMENT ON TABLE risk_scores IS '{TABLE_COMMENT}'")
    cols = _columns()
    op.execute(f"INSERT INTO risk_scores ({cols}) SELECT {cols}"  # nosec B608 - constants
               " FROM risk_scores_partitioned")
    op.execute("DROP TABLE risk_scores_partitioned")  # its partitions with it
    op.execute("CREATE INDEX ix_risk_scores_date ON risk_scores (score_date)")
    op.execute(VIEW)
    op.execute("COMMENT ON VIEW latest_risk_scores IS 'Each customer''s newest risk_scores row'")
    op.execute(VIEW_COMMENTS)
    op.execute(f"GRANT SELECT ON risk_scores, risk_scores_stage, latest_risk_scores TO {READER}")


def _check_sql(name: str) -> str:
    """The 0001 checks the old stage copied from risk_scores (0007's segment check was
    never on the stage)."""
    return {
        "ck_scores_pd": "probability_of_default >= 0 AND probability_of_default <= 1",
        "ck_scores_credit_score": "credit_score BETWEEN 300 AND 850",
        "ck_scores_decision": "decision IN ('APPROVE', 'REVIEW', 'DECLINE')",
    }[name]

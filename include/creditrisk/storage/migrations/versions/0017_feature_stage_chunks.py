"""One row per staged feature chunk: a mapped build publishes only a complete date.

Revision ID: 0017_feature_stage_chunks
Revises: 0016_aggregate_refreshes
Create Date: 2026-12-09

``customer_features_stage_chunks``: the ``build_features`` DAG folds, computes and
stages each hash chunk of customers in a task of its own; each chunk's transaction
writes its state, its staged rows and this row together. ``publish`` swaps the date in
only when every chunk of the plan has its row (same chunk count, base state and run),
and their rows add up to the staged and the folded customers; a retried chunk replaces
its row. Like ``risk_scores_stage_chunks`` for scoring (0013).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_feature_stage_chunks"
down_revision: str | None = "0016_aggregate_refreshes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = """
    as_of_date date NOT NULL,
    chunk integer NOT NULL,
    n_chunks integer NOT NULL,
    base_date date,
    n_rows integer NOT NULL,
    run_id text NOT NULL,
    staged_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_customer_features_stage_chunks PRIMARY KEY (as_of_date, chunk),
    CONSTRAINT ck_feature_stage_chunks_chunk
        CHECK (chunk >= 0 AND chunk < n_chunks AND n_rows >= 0)
"""
COMMENTS = {
    "as_of_date": "Feature date being built",
    "chunk": "Chunk number, 0 .. n_chunks - 1 (customers by a hash of their id)",
    "n_chunks": "Chunks the plan of the build split the customers into",
    "base_date": "The complete state the chunk folded from; null: from the first day",
    "n_rows": "Customers the chunk staged",
    "run_id": "Feature run that staged the chunk",
    "staged_at": "When the chunk was staged",
}


def upgrade() -> None:
    op.execute(f"CREATE TABLE customer_features_stage_chunks ({COLUMNS})")
    op.execute("COMMENT ON TABLE customer_features_stage_chunks IS 'One row per staged feature"
               " chunk: completeness of a build for publish; not for readers'")
    for name, doc in COMMENTS.items():
        op.execute(f"COMMENT ON COLUMN customer_features_stage_chunks.{name} IS '{doc}'")


def downgrade() -> None:
    op.execute("DROP TABLE customer_features_stage_chunks")

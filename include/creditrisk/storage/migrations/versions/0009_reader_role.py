"""A read-only role for analysts, and column comments on the views.

Revision ID: 0009_reader_role
Revises: 0008_api_audit_key_and_role
Create Date: 2026-12-05

* The NOLOGIN role ``creditrisk_reader``: USAGE on the schema and SELECT on every table
  and view in it, and the same on every table and view the migrating user creates later
  (default privileges), so the next migration needs no grant of its own. An analyst gets
  a LOGIN user in it (docs/operations.md, "Analyst access"); it can read everything and
  write nothing. Roles are cluster-wide: created only when missing (a DBA may create it
  beforehand where the migrating user lacks CREATEROLE); grants are per database.
* Every column of ``latest_risk_scores`` carries the comment of the ``risk_scores``
  column it shows, so ``\\d+ latest_risk_scores`` documents itself like the tables do.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_reader_role"
down_revision: str | None = "0008_api_audit_key_and_role"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "creditrisk_reader"
#: Created only when missing (roles are cluster-wide); no interpolation: a constant name.
CREATE_ROLE = """
    DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'creditrisk_reader') THEN
            CREATE ROLE creditrisk_reader NOLOGIN;
        END IF;
    END $$"""

#: COMMENT ON COLUMN of each view column, copied from the table column it shows.
COPY_VIEW_COMMENTS = """
    DO $$
    DECLARE c record;
    BEGIN
        FOR c IN
            SELECT a.attname, col_description('{table}'::regclass, t.attnum) AS doc
            FROM pg_attribute a
            JOIN pg_attribute t ON t.attrelid = '{table}'::regclass
                               AND t.attname = a.attname AND NOT t.attisdropped
            WHERE a.attrelid = '{view}'::regclass AND a.attnum > 0 AND NOT a.attisdropped
        LOOP
            EXECUTE format('COMMENT ON COLUMN {view}.%I IS %L', c.attname, c.doc);
        END LOOP;
    END $$"""


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    op.execute(f"COMMENT ON ROLE {READER} IS 'Analysts: SELECT on every table and view of"
               " the warehouse, nothing else; its LOGIN users are members'")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}")
    op.execute(COPY_VIEW_COMMENTS.format(table="risk_scores", view="latest_risk_scores"))


def downgrade() -> None:
    op.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public"
               " REVOKE SELECT ON TABLES FROM creditrisk_reader")
    op.execute("REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM creditrisk_reader")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {READER}")
    op.execute(f"""
        DO $$ BEGIN
            DROP ROLE IF EXISTS {READER};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role {READER} is still used elsewhere: kept';
        END $$""")
    op.execute("""
        DO $$
        DECLARE c record;
        BEGIN
            FOR c IN SELECT attname FROM pg_attribute
                     WHERE attrelid = 'latest_risk_scores'::regclass AND attnum > 0
            LOOP
                EXECUTE format('COMMENT ON COLUMN latest_risk_scores.%I IS NULL', c.attname);
            END LOOP;
        END $$""")

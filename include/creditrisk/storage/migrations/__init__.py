"""Alembic migrations of the warehouse schema (the only way tables are created or changed)."""

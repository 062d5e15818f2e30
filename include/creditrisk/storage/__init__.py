"""Warehouse access: engines, migrations and (one module per table) the SQL that touches it."""

"""Shared pieces of the DAG files (not DAGs themselves; see .airflowignore)."""

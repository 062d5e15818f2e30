"""Apply and revert the Alembic migrations that own the warehouse schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from creditrisk.storage.db import check_connection, make_engine


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged migrations, pointed at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", "creditrisk.storage:migrations")
    # ConfigParser interpolation would choke on a %-escaped password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database at ``url`` up to ``revision``; return the revision reached."""
    engine = make_engine(url)
    check_connection(engine)
    try:
        command.upgrade(alembic_config(url), revision)
        return current_revision_of(engine)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> str | None:
    """Migrate the database at ``url`` down to ``revision``; return the revision reached."""
    engine = make_engine(url)
    check_connection(engine)
    try:
        command.downgrade(alembic_config(url), revision)
        return current_revision_of(engine)
    finally:
        engine.dispose()


def current_revision_of(engine: Engine) -> str | None:
    """The revision a database is at (None when unmigrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()

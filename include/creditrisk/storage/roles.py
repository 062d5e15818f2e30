"""The warehouse roles of the platform's components (created by migration 0008).

``creditrisk_api`` (NOLOGIN) may INSERT into ``decision_log`` and SELECT from
``customer_features``, nothing else. A deployment connects the scoring API as a LOGIN
user that is a member of it (:func:`ensure_login`), never as the warehouse's owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from creditrisk.storage.db import raw_cursor

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: The NOLOGIN role migration 0008 creates and grants.
API_ROLE = "creditrisk_api"
#: The LOGIN user the local runner creates in :data:`API_ROLE` for the API.
API_USER = "creditrisk_api_user"


def ensure_login(engine: Engine, user: str, password: str, role: str = API_ROLE) -> None:
    """Create (or update the password of) LOGIN user ``user``, a member of ``role``.

    Needs CREATEROLE (or the superuser) on ``engine``; ``role`` must exist (migration
    0008). Idempotent: run again, it only sets the password again.
    """
    from psycopg2 import sql

    with raw_cursor(engine) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(user), sql.Literal(password)))
        cur.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role),
                                                     sql.Identifier(user)))


def url_for_user(url: str, user: str, password: str) -> str:
    """``url`` with its user and password replaced (same server, database and options)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=user, password=password).render_as_string(
        hide_password=False)

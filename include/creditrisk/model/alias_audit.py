"""Every move of ``champion`` audited, whoever makes it.

The platform's own moves (the gate, ``creditrisk promote``, ``--previous``) write their
``model_promotions`` row. A move made in the MLflow UI, or by a direct call to MLflow's
API, writes nothing; it is found by comparing the alias with the newest recorded move:
at each scoring run (:func:`audit_champion`, which records the ``external`` row exactly
once and alerts) and at each API alias poll (:func:`unexplained_move`, read-only: the API
reports it in a metric and its log, the batch side records it).

MLflow 3.17.2 does have webhooks (``model_version_alias.created``); they are not used: a
delivery is made once by the tracking server to a receiver it must reach, so a move made
while the receiver was down would go unrecorded, whereas the comparison catches every
move at the next run or poll, also ones made before this code existed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from creditrisk import alerts
from creditrisk.storage.promotions import last_move, record_external_move

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def unexplained_move(engine: Engine, model_name: str,
                     champion: str | None) -> dict[str, Any] | None:
    """None when ``champion`` is where the newest recorded move put it (or nothing holds
    the alias); else ``{"version", "previous"}``: a move no row explains."""
    if champion is None:
        return None
    last = last_move(engine, model_name)
    recorded = None if last is None else str(last["model_version"])
    if recorded == champion:
        return None
    return {"version": champion, "previous": recorded}


def audit_champion(engine: Engine, model_name: str, champion: str | None,
                   detected_by: str) -> dict[str, Any] | None:
    """Record and alert an unexplained move of ``champion`` (exactly once); return it.

    ``champion`` is the version the alias points at now (resolved by the caller); a
    second detector of the same move finds the row already written and does nothing.
    """
    move = unexplained_move(engine, model_name, champion)
    if move is None:
        return None
    recorded = record_external_move(engine, model_name=model_name, version=move["version"],
                                    previous=move["previous"], detected_by=detected_by)
    if not recorded:
        return None
    log.warning("champion of %s moved outside the platform: v%s -> v%s; recorded as "
                "external (detected by %s)", model_name, move["previous"], move["version"],
                detected_by)
    alerts.send(alerts.alias_moved(model_name=model_name, version=move["version"],
                                   previous=move["previous"], detected_by=detected_by))
    return move

"""The API's side of the alias audit: at each alias poll, is ``champion`` explained?

The API compares the version the alias resolves to with the newest move recorded in
``model_promotions`` (its warehouse role may SELECT it since migration 0012, never
INSERT). An unexplained move sets ``creditrisk_alias_unexplained`` to 1 and logs a warning
once per version; the row itself and the alert come from the batch side
(:func:`creditrisk.model.alias_audit.audit_champion`, at each scoring run), so the API's
role stays INSERT-only on decision_log and one move is recorded once, by one writer.
"""

from __future__ import annotations

import logging
from typing import Any

from creditrisk.config import DbTimeouts
from creditrisk.model.alias_audit import unexplained_move
from creditrisk.storage.db import make_engine

log = logging.getLogger("serving.alias_audit")


class AliasAudit:
    """Called with each resolved champion version (from the holder's poll thread)."""

    def __init__(self, database_url: str, model_name: str, gauge: Any,
                 timeouts: DbTimeouts | None = None) -> None:
        self.model_name, self.gauge = model_name, gauge
        self._engine = make_engine(database_url, pool_size=1, max_overflow=0,
                                   timeouts=timeouts)
        self._warned: str | None = None
        self.last: dict[str, Any] | None = None

    def __call__(self, version: str) -> None:
        """Never raises: a warehouse that cannot answer leaves the gauge as it was."""
        try:
            move = unexplained_move(self._engine, self.model_name, version)
        except Exception as exc:
            log.warning("alias audit skipped: model_promotions unreadable",
                        extra={"error": f"{type(exc).__name__}"})
            return
        self.last = move
        self.gauge.set(0.0 if move is None else 1.0)
        if move is not None and self._warned != version:
            self._warned = version
            log.warning("champion moved outside the platform", extra={
                "model_name": self.model_name, "model_version": version,
                "previous": move["previous"]})

    def close(self) -> None:
        self._engine.dispose()

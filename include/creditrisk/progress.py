"""Progress of a long step, told to whoever listens: silent unless someone does.

A step announces its stages with :func:`stage`; the CLI listens (:func:`reporting`) and
draws a bar. Nothing is printed, logged or imported by a step that nobody watches, so the
DAG tasks and the API pay nothing for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from contextvars import ContextVar

Listener = Callable[[str], None]
_listener: ContextVar[Listener | None] = ContextVar("creditrisk_progress", default=None)

#: The stages :func:`creditrisk.model.train.train` announces, in order.
TRAIN_STAGES = ("training set", "model ladder", "test evaluation", "MLflow logging",
                "registration", "promotion gate")
#: The stages :func:`creditrisk.features.build.build_for_date` announces, in order.
FEATURE_STAGES = ("reading transactions", "features", "labels", "writing")


def stage(name: str) -> None:
    """Say that the step has reached ``name`` (a no-op when nobody listens)."""
    listener = _listener.get()
    if listener is not None:
        listener(name)


@contextlib.contextmanager
def reporting(listener: Listener) -> Generator[None]:
    """Send every :func:`stage` of the block to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)

"""Stages reach a listener only while one listens, and never leak to another context."""

from __future__ import annotations

import contextvars

from creditrisk import progress


def test_stages_reach_the_listener_only_inside_reporting() -> None:
    heard: list[str] = []
    progress.stage("before")  # nobody listens: nothing happens, nothing raises
    with progress.reporting(heard.append):
        progress.stage("a")
        contextvars.copy_context().run(progress.stage, "b")  # a copied context listens too
        progress.stage("c")
    progress.stage("after")
    assert heard == ["a", "b", "c"]


def test_a_fresh_context_does_not_hear_another_ones_listener() -> None:
    heard: list[str] = []
    fresh = contextvars.Context()
    with progress.reporting(heard.append):
        fresh.run(progress.stage, "elsewhere")
    assert heard == []

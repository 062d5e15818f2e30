"""The champion model in memory: resolved once, swapped atomically when the alias moves.

A request takes ``holder.current`` once and uses only that object, so it never mixes
two versions; a swap replaces the reference in one assignment. A Logistic Regression
pipeline is scored by its numpy fast path (:class:`creditrisk.model.pipeline.LogisticFastPath`,
beside ``make_pipeline``); other models go through the pipeline itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.errors import InputError
from creditrisk.model.explain import contributions, feature_baseline
from creditrisk.model.pipeline import LogisticFastPath
from creditrisk.registry import ModelRef, load_pipeline, resolve_alias

log = logging.getLogger("serving.model")


@dataclass
class LoadedModel:
    """One loaded version and what /model/info reports about it."""

    ref: ModelRef
    pipeline: Any
    loaded_at: str
    info: dict[str, Any] = field(default_factory=dict)
    _fast: LogisticFastPath | None = None

    baseline: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.baseline = feature_baseline(self.pipeline)
        self._fast = _checked_fast_path(self.pipeline, self.baseline)
        model = getattr(self.pipeline, "named_steps", {}).get("model")
        if model is not None and model.__class__.__name__ == "XGBClassifier":
            model.set_params(n_jobs=1)  # OpenMP threads spin against uvicorn workers

    @property
    def fast(self) -> bool:
        """True when requests are scored by the numpy fast path, not the pipeline."""
        return self._fast is not None

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """PDs and per-feature contributions to the log-odds for rows of X (catalogue order).

        Arrays throughout: building a pandas frame per request cost more than the model.
        """
        if self._fast is not None:
            return self._fast.predict(X)
        return _pipeline_predict(self.pipeline, X)


#: how far the fast path may be from ``pipeline.predict_proba`` on the probe rows
FAST_PATH_TOLERANCE = 1e-12


def _pipeline_predict(pipeline: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """PDs and contributions through the sklearn pipeline itself (any model)."""
    frame = pd.DataFrame(X, columns=list(FEATURE_NAMES))
    pd_ = pipeline.predict_proba(frame)[:, 1]
    contrib_frame = contributions(pipeline, frame)
    if contrib_frame is None:
        return pd_, None
    full = contrib_frame.reindex(columns=list(FEATURE_NAMES), fill_value=0.0)
    return pd_, full.to_numpy()


def probe_rows(baseline: dict[str, float]) -> np.ndarray:
    """Rows the fast path is checked on at load: zeros, the training medians, and the
    medians scaled down and up (every row inside the request schema's ranges)."""
    med = np.array([float(baseline.get(f, 0.0)) for f in FEATURE_NAMES])
    med = np.where(np.isfinite(med), med, 0.0)
    return np.vstack([np.zeros(len(FEATURE_NAMES)), med, med * 0.1, med * 3.0 + 1.0])


def _checked_fast_path(pipeline: Any, baseline: dict[str, float]) -> LogisticFastPath | None:
    """The pipeline's numpy fast path, if it has one and it reproduces the pipeline
    (PD within :data:`FAST_PATH_TOLERANCE` of ``predict_proba``, the same contributions)
    on :func:`probe_rows`; else None, and the pipeline itself scores every request."""
    fast = LogisticFastPath.of(pipeline)
    if fast is None:
        return None
    X = probe_rows(baseline)
    try:
        want_pd, want_c = _pipeline_predict(pipeline, X)
        got_pd, got_c = fast.predict(X)
        ok = (want_c is not None
              and np.max(np.abs(got_pd - want_pd)) <= FAST_PATH_TOLERANCE
              and np.max(np.abs(got_c - want_c)) <= FAST_PATH_TOLERANCE)
    except Exception as exc:  # a shape the fast path misreads: the pipeline it is
        log.warning("fast path check failed", extra={"error": repr(exc)[:200]})
        ok = False
    if not ok:
        log.warning("the numpy fast path disagrees with the pipeline: scoring through it")
        return None
    return fast


def _model_info(ref: ModelRef) -> dict[str, Any]:
    from mlflow import MlflowClient

    mv = MlflowClient().get_model_version(ref.name, ref.version)
    tags = dict(mv.tags or {})
    metrics = {k[5:]: float(v) for k, v in tags.items() if k.startswith("test_")}
    return {"candidate": tags.get("candidate"), "trained_as_of": tags.get("as_of"),
            "metrics": metrics}


class ModelLoadError(RuntimeError):
    """A resolved version whose artifact is missing, unreadable or cannot score."""


def _canary(model: LoadedModel) -> None:
    """Score one all-zero row: a version that cannot is refused before it serves."""
    pd_, _ = model.predict(np.zeros((1, len(FEATURE_NAMES))))
    pd_ = np.asarray(pd_, dtype=float)
    if pd_.shape != (1,) or not np.isfinite(pd_).all() or not 0.0 <= pd_[0] <= 1.0:
        raise ModelLoadError(f"canary row scored {pd_!r}, not one PD in [0, 1]")


def load_version(ref: ModelRef) -> LoadedModel:
    """Load exactly ``ref`` (a resolved version) and check it scores a canary row.

    Raises:
        ModelLoadError: the artifact is missing or corrupt, or the model cannot score.
    """
    started = time.perf_counter()
    try:
        pipeline = load_pipeline(ref)
        loaded = LoadedModel(ref=ref, pipeline=pipeline,
                             loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                             info=_model_info(ref))
        _canary(loaded)
    except ModelLoadError:
        raise
    except Exception as exc:  # unpickling garbage can raise nearly anything
        raise ModelLoadError(f"{type(exc).__name__}: {_first_line(exc)}") from exc
    log.info("loaded model", extra={"model_name": ref.name, "model_version": ref.version,
                                    "load_s": round(time.perf_counter() - started, 3)})
    return loaded


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class ModelHolder:
    """Holds the current model; a background task follows the alias.

    Two kinds of failure are kept apart: ``last_error`` (the registry could not be
    asked) and ``last_load_error`` (the alias points at a version that does not load).
    Either way the loaded model, if any, keeps serving; a broken version is retried
    at each check, so a repaired artifact or a moved alias is picked up.
    """

    def __init__(self, tracking_uri: str | None, name: str, alias: str,
                 on_reload: Any = None, on_error: Any = None,
                 on_load_error: Any = None, on_check: Any = None,
                 optional: bool = False) -> None:
        self.tracking_uri, self.name, self.alias = tracking_uri, name, alias
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_load_error: str | None = None
        self.last_check: float | None = None
        self._on_reload, self._on_error = on_reload, on_error
        self._on_load_error = on_load_error
        # on_check(version): after every successful alias check (the API's alias audit);
        # optional: an alias nothing holds unloads the model (the challenger), instead of
        # keeping it (the champion keeps serving what it has)
        self._on_check, self.optional = on_check, optional
        # the start-up load may still run when the follower's first check comes
        self._busy = threading.Lock()

    def refresh(self) -> bool:
        """Resolve the alias; load and swap in a new version. True when it swapped."""
        if not self._busy.acquire(blocking=False):
            return False
        try:
            return self._refresh()
        finally:
            self._busy.release()

    def _refresh(self) -> bool:
        try:
            ref = resolve_alias(self.tracking_uri, self.name, self.alias)
        except Exception as exc:  # keep serving the current model; report the outage
            if self.optional and isinstance(exc, InputError):
                self.current, self.last_error = None, None  # no challenger (any more)
                self.last_check = time.time()
                return False
            self.last_error = f"{type(exc).__name__}: {_first_line(exc)}"
            log.warning("model refresh failed", extra={"error": self.last_error})
            if self._on_error:
                self._on_error()
            return False
        self.last_check = time.time()
        self.last_error = None
        if self._on_check:
            self._on_check(ref.version)
        current = self.current
        if current is not None and current.ref.version == ref.version:
            self.last_load_error = None
            return False
        try:
            loaded = load_version(ref)
        except Exception as exc:  # a broken artifact: the previous model keeps serving
            self.last_load_error = f"v{ref.version} failed to load: {_first_line(exc)}"
            log.warning("model load failed", extra={"model_name": ref.name,
                                                    "model_version": ref.version,
                                                    "error": self.last_load_error})
            if self._on_load_error:
                self._on_load_error(ref.version)
            return False
        previous = self.current
        self.current = loaded  # the swap: one reference assignment
        self.last_load_error = None
        if self._on_reload:
            self._on_reload(previous.ref.version if previous else None, loaded.ref.version)
        return True

    async def follow(self, interval_s: float) -> None:
        """Re-check the alias every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.refresh)

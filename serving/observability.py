"""Structured JSON logs and Prometheus metrics of the API."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Fields a log line may carry beyond the message: ids, versions, timings, outcomes.
# Never feature values, never API keys.
_ALLOWED = {"request_id", "route", "method", "status", "latency_ms", "model_name",
            "model_version", "decision", "customer_id", "error", "load_s", "previous",
            "items", "path"}
_ORDER = tuple(sorted(_ALLOWED))


class JsonFormatter(logging.Formatter):
    _stamp: tuple[int, str] = (-1, "")  # (second, its text): one tuple, thread safe

    def _ts(self, created: float) -> str:
        second = int(created)  # one strftime per second, not per line
        stamp = self._stamp
        if stamp[0] != second:
            stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._stamp = stamp
        return stamp[1]

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self._ts(record.created), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        fields = record.__dict__
        out.update({k: fields[k] for k in _ORDER if k in fields})
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging() -> None:
    """JSON lines on stderr for the serving loggers (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("serving", "creditrisk"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


class Metrics:
    """The API's Prometheus metrics, in a registry of its own."""

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """The two per-request metrics; their labelled children are looked up once."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # a bounded set: routes x methods x statuses
            children = (self.requests.labels(route, method, str(status)),
                        self.latency.labels(route, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_microbatch(self, items: int) -> None:
        self.microbatches.inc()
        self.microbatch_items.inc(items)

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        self.requests = Counter("creditrisk_api_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "creditrisk_api_request_seconds", "HTTP request latency", ["route", "method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.predictions = Counter("creditrisk_predictions_total", "Predictions served",
                                   ["decision", "band"], registry=self.registry)
        self.model_info = Gauge("creditrisk_model_info", "Loaded model version (value 1)",
                                ["name", "version"], registry=self.registry)
        self.reloads = Counter("creditrisk_model_reloads_total", "Model swaps",
                               registry=self.registry)
        self.registry_errors = Counter("creditrisk_registry_errors_total",
                                       "Failed alias checks (registry unreachable)",
                                       registry=self.registry)
        self.registry_up = Gauge("creditrisk_registry_up",
                                 "1 when the last alias check reached the registry",
                                 registry=self.registry)
        self.decisions_logged = Counter("creditrisk_decision_log_written_total",
                                        "Decisions written to decision_log",
                                        registry=self.registry)
        self.decisions_dropped = Counter(
            "creditrisk_decision_log_dropped_total",
            "Decisions not written to decision_log, by reason (queue_full, warehouse_error,"
            " shutdown)", ["reason"], registry=self.registry)
        self.decisions_pending = Gauge("creditrisk_decision_log_pending",
                                       "Decisions queued for decision_log",
                                       registry=self.registry)
        self.shadow = Counter(
            "creditrisk_shadow_total", "Sampled /predict calls and what became of their"
            " challenger scoring (scored, queue_full, no_challenger, failed)", ["outcome"],
            registry=self.registry)
        self.alias_unexplained = Gauge(
            "creditrisk_alias_unexplained", "1 while the champion alias points at a version"
            " no model_promotions row put there (moved in the MLflow UI or API)",
            registry=self.registry)
        self.microbatches = Counter(
            "creditrisk_predict_microbatches_total", "Scoring calls made for /predict by the"
            " micro-batcher (serving/batcher.py)", registry=self.registry)
        self.microbatch_items = Counter(
            "creditrisk_predict_microbatch_items_total", "/predict calls those scoring calls"
            " answered (divided by the calls: the mean micro-batch)", registry=self.registry)
        self.model_load_failures = Counter(
            "creditrisk_model_load_failures_total",
            "Model versions the registry resolved but that failed to load or to score a"
            " canary row (broken or missing artifact)", ["version"], registry=self.registry)

"""Operator alerts as Slack-compatible webhook posts.

Five events page someone: a pipeline task that failed for good (after its retries),
a landing file whose quarantined share went over the threshold, a scoring day whose
PSI (of the score or of any feature) went over the policy's threshold, a DAG run
still unfinished at its deadline, and a challenger that could not be shadow-scored.

The payload is what Slack's incoming webhooks accept — a ``text`` fallback plus
``blocks`` — so the same URL works for Slack, Mattermost, Rocket.Chat and most chat
bridges. The URL comes from ``CREDITRISK_ALERT_WEBHOOK_URL`` (a secret: Slack puts the
token in the path, so it is never logged). With no URL set, alerts are only logged.

Sending never raises: an alert that cannot be delivered is logged with the reason and
:func:`send` returns ``False``; the pipeline's own outcome stands either way.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Literal

from creditrisk.config import get_settings

log = logging.getLogger(__name__)

Kind = Literal["task_failed", "quarantine_threshold", "psi_threshold", "deadline_missed",
               "shadow_skipped", "backtest_band", "alias_moved"]
_ICONS = {"task_failed": ":x:", "quarantine_threshold": ":warning:",
          "psi_threshold": ":chart_with_upwards_trend:", "deadline_missed": ":hourglass:",
          "shadow_skipped": ":ghost:", "backtest_band": ":dart:",
          "alias_moved": ":twisted_rightwards_arrows:"}
_MAX_FIELD = 1900  # Slack caps a section field at 2,000 characters


@dataclass(frozen=True)
class Alert:
    """One event worth a page: what happened, where, and the facts to act on."""

    kind: Kind
    title: str
    text: str
    facts: dict[str, str] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The Slack-compatible JSON body: a plain ``text`` fallback plus blocks."""
        icon = _ICONS[self.kind]
        fallback = f"{icon} {self.title}: {self.text}"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(self.text)}},
        ]
        if self.facts:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{k}*\n{v}")}
                for k, v in list(self.facts.items())[:10]  # Slack allows 10 fields
            ]})
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"creditrisk alert `{self.kind}`"}]})
        return {"text": fallback, "blocks": blocks}


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_FIELD else text[: _MAX_FIELD - 1] + "…"


def webhook_url() -> str | None:
    """The configured webhook URL, or None when alerts are only logged."""

    secret = get_settings().alert_webhook_url
    url = secret.get_secret_value().strip() if secret is not None else ""
    return url or None


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}/…"


def send(alert: Alert, url: str | None = None, *, timeout: float = 5.0,
         attempts: int = 3, backoff: float = 0.5) -> bool:
    """Post ``alert`` to the webhook; True when the receiver answered 2xx.

    Retries connection errors and 5xx/429 answers with a doubling pause; a 4xx other
    than 429 is a configuration error and is not retried. Never raises.
    """
    target = url if url is not None else webhook_url()
    log.warning("ALERT %s: %s — %s %s", alert.kind, alert.title, alert.text,
                json.dumps(alert.facts, sort_keys=True))
    if not target:
        return False
    scheme = urllib.parse.urlsplit(target).scheme
    if scheme not in ("http", "https"):
        log.error("alert webhook URL must be http(s), not %r: alert not sent", scheme)
        return False
    body = json.dumps(alert.payload()).encode()
    where = _redact(target)
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            target, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "creditrisk-alerts"})
        try:
            # the scheme is checked above: only http(s) to the operator's own webhook
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # nosec B310
                if 200 <= resp.status < 300:
                    return True
                reason = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code != 429:
                log.error("alert webhook %s refused the alert (%s): not retried", where, reason)
                return False
        except (urllib.error.URLError, OSError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            log.warning("alert webhook %s: %s (attempt %d/%d), retrying", where, reason,
                        attempt, attempts)
            time.sleep(backoff * 2 ** (attempt - 1))
    log.error("alert webhook %s: %s after %d attempts: alert not delivered", where, reason,
              attempts)
    return False


# ------------------------------------------------------------------ the five events


def task_failed(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                error: BaseException | str | None, log_url: str | None = None) -> Alert:
    """A task that failed for good (its retries, if any, are spent)."""
    reason = _one_line(error) if error is not None else "no exception recorded"
    facts = {"DAG": dag_id, "Task": task_id, "Run": run_id,
             "Try": str(try_number) if try_number is not None else "?"}
    if log_url:
        facts["Log"] = log_url
    return Alert("task_failed", f"{dag_id}.{task_id} failed", reason, facts)


def quarantine_over_threshold(*, file: str, day: str, rows: int, quarantined: int,
                              threshold: float, run_id: str) -> Alert:
    """A landing file with too large a share of rows failing validation (not loaded)."""
    share = quarantined / rows if rows else 1.0
    return Alert(
        "quarantine_threshold", f"Landing file {day} not loaded: quarantine over threshold",
        f"{quarantined} of {rows} rows ({share:.1%}) failed validation, over the "
        f"{threshold:.1%} threshold. The file's bad rows are in `quarantine` with their "
        "reasons; fix the file and re-run the day.",
        {"File": file, "Day": day, "Quarantined": f"{quarantined}/{rows} ({share:.1%})",
         "Threshold": f"{threshold:.1%}", "Run": run_id})


def psi_over_threshold(*, score_date: str, model_name: str, model_version: str,
                       psi_score: float | None, drifted: dict[str, float], threshold: float,
                       run_id: str) -> Alert:
    """A scored day whose score or feature distribution moved away from training."""
    top = sorted(drifted.items(), key=lambda kv: -kv[1])[:8]
    listing = ", ".join(f"{k} {v:.3f}" for k, v in top) or "none"
    score = "n/a" if psi_score is None else f"{psi_score:.3f}"
    return Alert(
        "psi_threshold", f"Drift on {score_date}: PSI over {threshold:.2f}",
        f"Score PSI {score}; features over the threshold: {listing}. Scores were published "
        "and flagged in `score_monitoring`; review before relying on them and consider "
        "retraining.",
        {"Score date": score_date, "Model": f"{model_name} v{model_version}",
         "Score PSI": score, "Threshold": f"{threshold:.2f}", "Run": run_id})


def backtest_out_of_interval(*, as_of: str, bands: list[dict[str, Any]], run_id: str) -> Alert:
    """Risk bands whose matured loans' realized bad rate is not what their PDs said."""
    listing = "; ".join(
        f"v{b['model_version']} {b['risk_band']}: {b['bad']}/{b['loans']} bad "
        f"({b['realized_bad_rate']:.1%}, "
        f"interval {b['interval_lo']:.1%}-{b['interval_hi']:.1%}) vs mean PD "
        f"{b['mean_pd']:.1%}" for b in bands)
    return Alert(
        "backtest_band", f"Backtest {as_of}: {len(bands)} band(s) outside their interval",
        f"{listing}. The PD at issue of these bands is off beyond sampling noise "
        "(`outcome_backtest`); review the champion's calibration and consider retraining.",
        {"As of": as_of,
         "Bands": ", ".join(f"v{b['model_version']} {b['risk_band']}" for b in bands),
         "Run": run_id})


def deadline_missed(*, dag_id: str, run_id: str, deadline: str, state: str | None,
                    queued_at: str | None = None, url: str | None = None) -> Alert:
    """A DAG run that had not finished by its deadline (it may still finish later)."""
    facts = {"DAG": dag_id, "Run": run_id, "Deadline": deadline, "State": state or "?"}
    if queued_at:
        facts["Queued at"] = queued_at
    if url:
        facts["Run page"] = url
    return Alert(
        "deadline_missed", f"{dag_id} not finished by its deadline",
        f"Run {run_id} was still {state or 'unfinished'} at {deadline}. Its results are "
        "late: check the run's tasks in the Airflow UI (queued, retrying or slow).", facts)


def shadow_skipped(*, score_date: str, model_name: str, challenger_version: str, reason: str,
                   run_id: str) -> Alert:
    """A challenger the night's shadow scoring could not resolve or load (skipped)."""
    return Alert(
        "shadow_skipped", f"Shadow scoring of {score_date} skipped",
        f"{reason}. The champion's scores were published as usual; no shadow scores or "
        "swap-set report for this challenger tonight. Fix or re-register the challenger "
        "(or remove its alias), then re-run the day.",
        {"Score date": score_date, "Challenger": f"{model_name} v{challenger_version}",
         "Run": run_id})


def alias_moved(*, model_name: str, version: str, previous: str | None,
                detected_by: str) -> Alert:
    """``champion`` moved outside the platform (the MLflow UI, or MLflow's API directly)."""
    return Alert(
        "alias_moved", f"{model_name}: champion moved outside the platform",
        f"`champion` points at v{version}, but the last recorded move was to "
        f"v{previous or 'none'}. Recorded in `model_promotions` as `external`. If nobody "
        "meant it, roll back with `creditrisk promote --previous`; the API and tonight's "
        "scoring already follow the alias.",
        {"Model": model_name, "Champion now": f"v{version}",
         "Last recorded": f"v{previous or 'none'}", "Detected by": detected_by})


def _one_line(error: BaseException | str) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
    first = text.strip().splitlines()[0] if text.strip() else text
    return first[:500]

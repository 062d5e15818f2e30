"""The webhook notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from creditrisk import alerts
from tests.alert_receiver import webhook_receiver

TOKEN = "T0000/B0000/notarealtoken123"  # test-only secret


def _failed() -> alerts.Alert:
    return alerts.task_failed(dag_id="score_customers", task_id="prepare", run_id="r1",
                              try_number=3, error=RuntimeError("registry down\nline two"),
                              log_url="http://airflow/log")


def test_payload_is_slack_shaped_with_a_text_fallback() -> None:
    payload = _failed().payload()
    json.dumps(payload)
    assert payload["text"].startswith(":x: score_customers.prepare failed")
    assert "RuntimeError: registry down" in payload["text"]
    assert "line two" not in payload["text"]  # one line, not a traceback
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "section", "context"]
    fields = payload["blocks"][2]["fields"]
    assert {"type": "mrkdwn", "text": "*Try*\n3"} in fields
    assert {"type": "mrkdwn", "text": "*Log*\nhttp://airflow/log"} in fields


def test_long_texts_are_clipped_to_slack_limits() -> None:
    alert = alerts.Alert("task_failed", "t" * 300, "x" * 5000, {f"k{i}": "v" for i in range(15)})
    payload = alert.payload()
    assert len(payload["blocks"][0]["text"]["text"]) == 150
    assert len(payload["blocks"][1]["text"]["text"]) <= 2000
    assert len(payload["blocks"][2]["fields"]) == 10


def test_quarantine_and_psi_alerts_carry_the_facts_to_act_on() -> None:
    q = alerts.quarantine_over_threshold(file="xente_2019-02-13.csv", day="2019-02-13",
                                         rows=200, quarantined=30, threshold=0.05, run_id="r")
    assert "30 of 200 rows (15.0%)" in q.text and q.facts["Threshold"] == "5.0%"
    p = alerts.psi_over_threshold(score_date="2019-02-14", model_name="m", model_version="7",
                                  psi_score=0.31, drifted={"a": 0.4, "b": 0.9}, threshold=0.25,
                                  run_id="r")
    assert "b 0.900, a 0.400" in p.text  # worst first
    assert p.facts["Model"] == "m v7" and p.facts["Score PSI"] == "0.310"


def test_a_missed_deadline_says_which_run_and_when() -> None:
    d = alerts.deadline_missed(dag_id="score_customers", run_id="scheduled__2019-02-14",
                               deadline="2019-02-14T04:00:00+00:00", state="running",
                               queued_at="2019-02-14T03:00:01+00:00", url="http://a/run")
    assert d.kind == "deadline_missed" and d.title == "score_customers not finished by its deadline"
    assert "still running at 2019-02-14T04:00:00+00:00" in d.text
    assert d.facts["Queued at"].startswith("2019-02-14T03:00") and d.facts["Run page"] == "http://a/run"
    assert d.payload()["text"].startswith(":hourglass: ")


def test_a_skipped_shadow_names_the_challenger_and_says_the_champion_published() -> None:
    a = alerts.shadow_skipped(score_date="2019-02-14", model_name="m", challenger_version="9",
                              reason="loading v9 failed: OSError: no MLmodel", run_id="r")
    assert a.kind == "shadow_skipped" and a.title == "Shadow scoring of 2019-02-14 skipped"
    assert a.text.startswith("loading v9 failed: OSError: no MLmodel. The champion's scores")
    assert a.facts == {"Score date": "2019-02-14", "Challenger": "m v9", "Run": "r"}
    assert a.payload()["text"].startswith(":ghost: ")


def test_send_posts_the_payload_as_json() -> None:
    alert = _failed()
    with webhook_receiver() as rec:
        assert alerts.send(alert, rec.url) is True
    assert rec.posts == [alert.payload()]
    assert rec.headers[0]["content-type"] == "application/json"
    assert rec.kinds() == ["task_failed"]


def test_send_retries_server_errors_then_delivers() -> None:
    with webhook_receiver() as rec:
        rec.statuses = [500, 503]
        assert alerts.send(_failed(), rec.url, backoff=0.01) is True
    assert len(rec.posts) == 3


def test_send_gives_up_after_its_attempts_without_raising() -> None:
    with webhook_receiver() as rec:
        rec.statuses = [500, 500, 500, 500]
        assert alerts.send(_failed(), rec.url, backoff=0.01, attempts=3) is False
    assert len(rec.posts) == 3


def test_a_client_error_is_not_retried() -> None:
    with webhook_receiver() as rec:
        rec.statuses = [404]
        assert alerts.send(_failed(), rec.url, backoff=0.01) is False
    assert len(rec.posts) == 1


def test_unreachable_webhook_fails_fast_and_never_logs_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/{TOKEN}"
    caplog.set_level(logging.DEBUG, logger="creditrisk.alerts")
    started = time.monotonic()
    assert alerts.send(_failed(), url, timeout=1, backoff=0.01) is False
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in caplog.text and "not delivered" in caplog.text
    assert TOKEN not in caplog.text and "notarealtoken" not in caplog.text


def test_no_url_only_logs(monkeypatch: pytest.MonkeyPatch,
                          caplog: pytest.LogCaptureFixture) -> None:
    from creditrisk.config import get_settings

    monkeypatch.delenv("CREDITRISK_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    try:
        caplog.set_level(logging.WARNING, logger="creditrisk.alerts")
        assert alerts.webhook_url() is None
        assert alerts.send(_failed()) is False
        assert "ALERT task_failed" in caplog.text
    finally:
        get_settings.cache_clear()


def test_the_url_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from creditrisk.config import get_settings

    with webhook_receiver() as rec:
        monkeypatch.setenv("CREDITRISK_ALERT_WEBHOOK_URL", rec.url)
        get_settings.cache_clear()
        try:
            assert alerts.send(_failed()) is True
        finally:
            get_settings.cache_clear()
    assert len(rec.posts) == 1
    assert "hooks/test" not in repr(get_settings())  # a SecretStr in reprs


def test_only_http_urls_are_posted_to() -> None:
    assert alerts.send(_failed(), "file:///etc/passwd") is False

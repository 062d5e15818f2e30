"""No secret sits in the repository: scan every tracked file for key and password shapes.

A deliberate fake credential in a test carries the marker ``test-only secret`` on its line.

Shapes: private keys and provider tokens; a secret-named variable assigned in an env file
or a shell (``POSTGRES_PASSWORD=...``); a secret-named key in YAML (``password: ...``,
in YAML and Markdown files only: in Python ``api_key: str`` is a type annotation) or in
JSON / a dict literal (``"api_key": "<value>"``); a password in a URL, the user name
possibly empty (``redis://:<pw>@host``); a secret-named variable assigned a quoted string.

Deliberately not secrets (each has a self-test): an empty value, a reference to the
environment or a template (``${VAR}``, ``$VAR``, ``{{ var }}``, ``%(var)s``), an angle
placeholder (``<password>``), a mask (``***``), a path to the file that holds the secret
(``..._PASSWORDS_FILE: /opt/...``) and the placeholder words of
:data:`PLACEHOLDERS` (``.env.example`` holds only empty values; docs use ``changeme``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET_NAME = r"(?:password|passwd|pwd|secret|api_keys?|apikey|token|fernet_key|private_key)"
PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |)PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),
    "password in a URL": re.compile(
        r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:(?P<value>[^@\s'\"/]+)@"),
    "env assignment": re.compile(
        rf"(?i)^\s*(?:export\s+)?[A-Z0-9_]*{SECRET_NAME}[A-Z0-9_]*\s*="
        r"\s*(?P<value>'[^']*'|\"[^\"]*\"|[^\s#]+)"),
    "YAML key": re.compile(
        rf"(?i)^\s*(?:-\s*)?[\w.-]*{SECRET_NAME}[\w.-]*\s*:"
        r"\s*(?P<value>'[^']*'|\"[^\"]*\"|[^\s#]+)"),
    "JSON key": re.compile(
        rf"(?i)[\"'][\w.-]*{SECRET_NAME}[\w.-]*[\"']\s*:\s*(?P<value>\"[^\"]*\"|'[^']*')"),
    "assigned secret": re.compile(
        rf"(?i)\b{SECRET_NAME}\b\s*[:=]\s*(?P<value>['\"][^'\"]{{8,}}['\"])"),
}
# Shapes that only mean a secret in some kinds of file (None: every file).
SUFFIXES: dict[str, set[str] | None] = {
    "YAML key": {".yml", ".yaml", ".md"},
    "env assignment": {"", ".example", ".env", ".sh", ".md", ".yml", ".yaml", ".toml",
                       ".txt", ".platform"},
}
PLACEHOLDERS = {"changeme", "change-me", "change_me", "example", "placeholder", "redacted",
                "dummy", "xxx", "xxxx", "password", "secret", "null", "none", "true",
                "false"}

MARKER = "test-only " + "secret"  # split, so this line is not exempt by accident


def is_placeholder(value: str) -> bool:
    """A value that names or references a secret without being one."""
    v = value.strip().strip("'\"").strip().removeprefix("\\")  # a regex's escaped \$
    return (not v or v.startswith(("$", "<", "{", "%(", "*", "/", "./")) or "${" in v
            or "{{" in v or v.lower() in PLACEHOLDERS)


def findings(line: str, suffix: str) -> list[tuple[str, str]]:
    """Every (shape, matched text) of ``line`` in a file ending in ``suffix``."""
    if MARKER in line:
        return []
    found = []
    for name, pattern in PATTERNS.items():
        kinds = SUFFIXES.get(name)
        if kinds is not None and suffix not in kinds:
            continue
        for m in pattern.finditer(line):
            value = m.groupdict().get("value")
            if value is not None and is_placeholder(value):
                continue
            found.append((name, m.group(0)))
    return found


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    return [REPO / p for p in out]


CAUGHT = [  # (shape, line, file suffix): each must be found as that shape
    ("private key", "-----BEGIN RSA PRIVATE KEY-----", ".py"),  # test-only secret
    ("AWS access key", "AKIAABCDEFGHIJKLMNOP", ".py"),  # test-only secret
    ("password in a URL", "postgresql://app:hunter2hunter2@db/x", ".py"),  # test-only secret
    ("password in a URL", "redis://:pw@cache:6379/0", ".yml"),  # test-only secret
    ("password in a URL", "url: 'amqp://guest:s3cr3t@mq//'", ".yaml"),  # test-only secret
    ("env assignment", "POSTGRES_PASSWORD=hunter2hunter2", ".example"),  # test-only secret
    ("env assignment", "export AIRFLOW_JWT_SECRET='abc123def'", ".sh"),  # test-only secret
    ("env assignment", "CREDITRISK_API_KEYS=k-live-1,k-live-2", ""),  # test-only secret
    ("YAML key", "password: xyzzy-plugh", ".yml"),  # test-only secret
    ("YAML key", "  - db_password: 'p4ss'", ".yaml"),  # test-only secret
    ("YAML key", "api_key: ab12cd34", ".md"),  # test-only secret
    ("JSON key", '{"api_key": "k-3f9a"}', ".json"),  # test-only secret
    ("JSON key", "cfg = {'fernet_key': 'Zm9vYmFy'}", ".py"),  # test-only secret
    ("assigned secret", 'password = "correct-horse-battery"', ".py"),  # test-only secret
]
NOT_CAUGHT = [  # placeholders and look-alikes: never reported
    ("POSTGRES_PASSWORD=", ".example"),
    ("POSTGRES_PASSWORD=${POSTGRES_PASSWORD:?set it in .env}", ".yml"),
    ("      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?}", ".yml"),
    ("REDIS_PASSWORD=changeme", ".example"),
    ("password: <your password>", ".md"),
    ("password: '{{ var.value.pw }}'", ".yaml"),
    ("redis://:${REDIS_PASSWORD}@redis:6379/0", ".yml"),
    ("postgresql://user:<password>@host/db", ".md"),
    ("postgresql://creditrisk:***@db/warehouse", ".md"),
    ("postgresql://creditrisk@db/warehouse", ".md"),
    ("https://example.org/a:b@c", ".md"),  # no user part before ':' (path, not auth)
    ('{"api_key": ""}', ".json"),
    ("    api_key: str | None = None", ".py"),  # a Python annotation, not YAML
    ("def check(password: str) -> None:", ".py"),
    ("  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE: /opt/airflow/pw.json", ".yml"),
    ("      - airflow-passwords:/opt/airflow/passwords", ".yml"),
    (r'assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", b)', ".py"),
]


@pytest.mark.parametrize(("shape", "line", "suffix"), CAUGHT)
def test_the_scan_catches_what_it_looks_for(shape: str, line: str, suffix: str) -> None:
    text = line.replace("# test-only secret", "")
    assert shape in {name for name, _ in findings(text, suffix)}, (shape, line)


@pytest.mark.parametrize(("line", "suffix"), NOT_CAUGHT)
def test_the_scan_leaves_placeholders_alone(line: str, suffix: str) -> None:
    assert findings(line, suffix) == []


def test_the_marker_exempts_a_line() -> None:
    assert findings("POSTGRES_PASSWORD=hunter2hunter2", ".example")
    assert findings(f"POSTGRES_PASSWORD=hunter2hunter2  # {MARKER}", ".example") == []


def test_no_tracked_file_holds_a_secret() -> None:
    files = _tracked()
    assert len(files) > 50
    found = []
    for path in files:
        if path.suffix in {".png", ".ico"} or not path.is_file():
            continue
        suffix = path.suffix if path.name != ".env.example" else ".example"
        for line in path.read_text(errors="ignore").splitlines():
            for name, text in findings(line, suffix):
                found.append(f"{path.relative_to(REPO)}: {name}: {text[:40]}")
    assert found == []

"""No secret sits in the repository: scan every tracked file for key and password shapes.

A deliberate fake credential in a test carries the marker ``test-only secret`` on its line.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |)PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),
    "password in a URL": re.compile(r"[a-z+]+://[^/\s:@'\"]+:[^@\s'\"{}$]{3,}@"),
    "assigned secret": re.compile(
        r"(?i)\b(?:password|passwd|secret|api_key|fernet_key)\b\s*[:=]\s*['\"][^'\"${}<>]{8,}['\"]"
    ),
}


MARKER = "test-only " + "secret"  # split, so this line is not exempt by accident


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    return [REPO / p for p in out]


def test_the_scan_catches_what_it_looks_for() -> None:
    samples = {
        "private key": "-----BEGIN RSA PRIVATE KEY-----",  # test-only secret
        "AWS access key": "AKIAABCDEFGHIJKLMNOP",  # test-only secret
        "password in a URL": "postgresql://app:hunter2hunter2@db/x",  # test-only secret
        "assigned secret": 'password = "correct-horse-battery"',  # test-only secret
    }
    for name, text in samples.items():
        assert PATTERNS[name].search(text), name


def test_no_tracked_file_holds_a_secret() -> None:
    files = _tracked()
    assert len(files) > 50
    found = []
    for path in files:
        if path.suffix in {".png", ".ico"} or not path.is_file():
            continue
        for line in path.read_text(errors="ignore").splitlines():
            if MARKER in line:
                continue
            for name, pattern in PATTERNS.items():
                for m in pattern.finditer(line):
                    found.append(f"{path.relative_to(REPO)}: {name}: {m.group(0)[:40]}")
    assert found == []

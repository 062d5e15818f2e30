"""The README stays short and its links lead somewhere; the docs it points to exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = ("operations.md", "data.md", "model.md", "api.md", "benchmarks.md", "testing.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_under_200_lines() -> None:
    n = len(README.read_text().splitlines())
    assert n < 200, f"README.md has {n} lines; move detail into docs/"


def test_every_relative_readme_link_points_to_a_file() -> None:
    targets = [t for t in LINK.findall(README.read_text()) if not t.startswith(("http://", "https://"))]
    assert targets  # the pattern still finds the README's links
    missing = [t for t in targets if not (REPO / t.split("#", 1)[0]).is_file()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_docs_exist() -> None:
    for name in DOCS:
        path = REPO / "docs" / name
        assert path.is_file(), f"docs/{name} is missing"
        assert path.read_text().startswith("# "), f"docs/{name} does not start with a title"

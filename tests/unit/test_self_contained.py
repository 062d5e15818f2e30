"""The repository carries everything its code and tests read: no path outside it.

A user who clones the repo from a public host has no ``../shared`` beside it, so no file
under the code, test or benchmark folders may name one, and every
``Path(__file__).parents[N]`` must still land inside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.paths import CUSTOMER_SEQUENCE, FRAUD_SAMPLE, REAL_SAMPLE, REPO_ROOT

SCANNED = ("include", "serving", "dags", "tests", "benchmarks", "devstack", "plugins")
OUTSIDE = [
    re.compile(r"\.\./shared"),
    re.compile(r"""["']shared["']\s*/\s*["']data["']"""),
    re.compile(r"(REPO|ROOT|REPO_ROOT)\.parent\b"),
    re.compile(r"""["']/work/"""),
    re.compile(r"\.parent\.parent\.parent"),
]
SUFFIXES = {".py", ".sh", ".md", ".cfg", ".toml", ".yaml", ".yml", ".json"}
PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def _files() -> list[Path]:
    out: list[Path] = []
    for top in SCANNED:
        base = REPO_ROOT / top
        if base.is_dir():
            out += [p for p in base.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return out


def test_no_file_names_a_path_outside_the_repo() -> None:
    me = Path(__file__).resolve()
    offenders = []
    for path in _files():
        if path.resolve() == me:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in OUTSIDE:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {m.group(0)}")
    assert not offenders, "paths outside the repo:\n" + "\n".join(offenders)


def test_every_parents_index_stays_inside_the_repo() -> None:
    checked = 0
    for path in _files():
        if path.suffix != ".py":
            continue
        for m in PARENTS.finditer(path.read_text(encoding="utf-8")):
            target = path.resolve().parents[int(m.group(1))]
            assert target == REPO_ROOT or REPO_ROOT in target.parents, (
                f"{path.relative_to(REPO_ROOT)}: parents[{m.group(1)}] is {target}: outside"
            )
            checked += 1
    assert checked > 0  # the pattern still matches how the code finds the repo


def test_the_fixtures_are_in_the_repo() -> None:
    for f in (REAL_SAMPLE, FRAUD_SAMPLE, CUSTOMER_SEQUENCE):
        assert f.is_file() and REPO_ROOT in f.resolve().parents
    assert sum(1 for _ in CUSTOMER_SEQUENCE.open()) == 95_663  # header + every real row

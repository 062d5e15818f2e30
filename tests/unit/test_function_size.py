"""No function in the core is over 60 lines of code without saying why in its docstring.

Counted from the first statement after the docstring to the end (a documented argument
list is not length); a function that must stay long says "Long because" and why.
"""

from __future__ import annotations

import ast

from tests.paths import REPO_ROOT

LIMIT = 60


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant) and len(body) > 1:
        body = body[1:]
    return int(node.end_lineno or node.lineno) - body[0].lineno + 1


def test_core_functions_are_short_or_say_why() -> None:
    long = []
    core = REPO_ROOT / "include" / "creditrisk"
    for path in sorted(core.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _code_lines(node)
                if n > LIMIT and "Long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.relative_to(REPO_ROOT)}:{node.name} ({n} lines)")
    assert not long, "over 60 lines with no reason given:\n" + "\n".join(long)

"""Every bad input to a command gets a one-line reason and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from creditrisk.cli import main, parse_date
from creditrisk.errors import InputError


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a child process, as an operator would."""
    full_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "creditrisk.cli", *args],
        capture_output=True, text=True, env=full_env, timeout=120, check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *words: str
) -> None:
    assert result.returncode == code, result
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("creditrisk: ")]
    assert errors and "Traceback" not in result.stderr, result.stderr
    assert len(errors[0]) < 300
    for word in words:
        assert word in errors[0], (word, errors[0])


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["generate", "--end-date", "2019-13-01", "--out", "/tmp/x"], 1,
         ["--end-date", "2019-13-01"]),
        (["generate", "--end-date", "15/11/2018"], 1, ["YYYY-MM-DD"]),
        (["generate", "--bogus"], 2, ["--bogus"]),
        (["generate", "--customers", "0", "--end-date", "2019-01-01"], 2, ["--customers"]),
        (["nosuchcommand"], 2, ["nosuchcommand"]),
        (["db", "upgrade"], 1, ["DATABASE_URL"]),
        (["import-xente", "/nonexistent/data.csv", "--out", "/tmp/x"], 1,
         ["/nonexistent/data.csv"]),
    ],
)
def test_bad_input_gets_one_line_reason(args: list[str], code: int, words: list[str]) -> None:
    assert_one_line_error(run_cli(*args), code, *words)


def test_unreachable_database_is_one_line() -> None:
    url = "postgresql://u:secret@127.0.0.1:1/db"  # test-only secret
    result = run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert_one_line_error(result, 1, "cannot reach the database", "127.0.0.1:1")
    assert "secret" not in result.stderr  # the password is masked


def test_malformed_database_url_is_one_line() -> None:
    result = run_cli("db", "current", env={"DATABASE_URL": "not a url"})
    assert_one_line_error(result, 1, "DATABASE_URL")


def test_parse_date() -> None:
    assert str(parse_date("2019-02-13", "--date")) == "2019-02-13"
    with pytest.raises(InputError, match="--date"):
        parse_date("yesterday", "--date")


def test_db_commands_against_real_postgres(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    from creditrisk.config import get_settings

    get_settings.cache_clear()
    try:
        assert main(["db", "current"]) == 0
        assert "revision base" in capsys.readouterr().out
        assert main(["db", "upgrade"]) == 0
        from creditrisk.storage.migrate import head_revision

        assert f"at revision {head_revision()}" in capsys.readouterr().out
        assert main(["db", "current"]) == 0
        assert "up to date" in capsys.readouterr().out
        assert main(["db", "downgrade", "base"]) == 0
        assert "revision base" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("db", "generate", "import-xente"):
        assert name in out
    assert Path(sys.executable).exists()


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    import click

    out: list[tuple[tuple[str, ...], object]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
        else:
            out.append(((*path, name), command))
    return out


def test_every_command_takes_json_and_quiet() -> None:
    from creditrisk.cli import app

    commands = _commands(app)
    assert len(commands) >= 10
    for path, command in commands:
        opts = {o for p in command.params for o in getattr(p, "opts", [])}  # type: ignore[attr-defined]
        assert {"--json", "--quiet"} <= opts, path


def test_json_mode_prints_one_object_before_or_after_the_command(tmp_path: Path) -> None:
    import json

    for args in (["--json", "generate"], ["generate", "--json"]):
        out = tmp_path / "_".join(a.strip("-") for a in args)
        result = run_cli(*args, "--customers", "20", "--days", "3", "--end-date", "2019-01-03",
                         "--out", str(out))
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["files"] == 3 == len(list(out.glob("*.csv")))
        assert body["customers"] == 20 and body["last_day"] == "2019-01-03"
    catalogue = json.loads(run_cli("catalogue", "--json").stdout)
    assert len(catalogue["features"]) >= 30
    assert {"name", "meaning", "unit", "group"} <= set(catalogue["features"][0])
    # errors stay one line on stderr, JSON mode or not
    assert_one_line_error(run_cli("--json", "db", "upgrade"), 1, "DATABASE_URL")

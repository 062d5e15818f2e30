"""The COPY text a scoring chunk stages: every column, escaped, NULLs as \\N."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from creditrisk.storage.scores import STAGE_COPY_COLUMNS, copy_text


def _unescape(field: str) -> str | None:
    if field == "\\N":
        return None
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\":
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[field[i + 1]])
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def test_copy_text_round_trips_every_value_with_the_run_constants() -> None:
    rows = pd.DataFrame({
        "customer_id": ["c1", "tab\there", "back\\slash", "new\nline"],
        "segment": ["scored", "dormant", "scored", "scored"],
        "probability_of_default": [0.12345678, np.nan, 1e-08, 0.5],
        "credit_score": pd.array([600, None, 850, 300], dtype="Int64"),
        "risk_band": ["B", "DORMANT", "A", "E"],
        "decision": ["APPROVE", "DECLINE", "APPROVE", "REVIEW"],
        "recommended_limit": [150000.0, 0.0, 2500.5, 0.0],
        "recommended_term_days": [30, 0, 60, 14],
        "reason_codes": pd.array(['[{"text": "a\\"b"}]', "[]", "[]", "[]"],
                                 dtype=pd.ArrowDtype(pa.string())),
    })
    constants = {"score_date": "2019-02-14", "model_name": "m", "model_version": "3",
                 "scored_at": "2026-12-05T06:00:00+00:00", "run_id": "run\t1"}
    text = copy_text(rows, constants).decode()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 1
    parsed = [[_unescape(f) for f in line.split("\t")] for line in lines[:-1]]
    assert all(len(p) == len(STAGE_COPY_COLUMNS) for p in parsed)
    got = {c: [p[i] for p in parsed] for i, c in enumerate(STAGE_COPY_COLUMNS)}
    assert list(got["customer_id"]) == list(rows["customer_id"])
    assert [None if v is None else float(v) for v in got["probability_of_default"]] == [
        0.12345678, None, 1e-08, 0.5]
    assert list(got["credit_score"]) == ["600", None, "850", "300"]
    assert [float(v) for v in got["recommended_limit"]] == list(rows["recommended_limit"])
    assert list(got["reason_codes"]) == list(rows["reason_codes"])
    assert set(got["run_id"]) == {"run\t1"} and set(got["score_date"]) == {"2019-02-14"}
    assert copy_text(rows.iloc[:0], constants) == b""


def test_the_escape_check_sees_each_special_character_in_any_slice() -> None:
    from creditrisk.storage.scores import _needs_escape

    def arr(values: list[str | None]) -> pa.Array:
        return pa.array(values, pa.large_string())

    assert not _needs_escape(arr(["plain", None, "", '[{"a": 1}]']))
    assert not _needs_escape(arr([])) and not _needs_escape(arr([None, ""]))
    assert not _needs_escape(arr(["bell\x07", "ü"]))  # other control bytes need no escape
    for special in ("\\", "\t", "\n", "\r"):
        values = ["a", f"x{special}y", "b"]
        assert _needs_escape(arr(values)), repr(special)
        assert not _needs_escape(arr(values).slice(0, 1)), repr(special)  # outside the slice
        assert not _needs_escape(arr(values).slice(2)), repr(special)
        assert _needs_escape(arr(values).slice(1, 1)), repr(special)
        assert _needs_escape(pa.chunked_array([arr(["a"]), arr(values)])), repr(special)
        assert not _needs_escape(pa.chunked_array([arr(["a"]), arr(values).slice(2)]))

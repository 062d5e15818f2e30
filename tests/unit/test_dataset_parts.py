"""The training set's parts are checked before any fit: each must exist with both classes."""

from __future__ import annotations

import pandas as pd
import pytest

from creditrisk.errors import InputError
from creditrisk.model.dataset import PARTS, _check_parts


def _frame(bad_by_part: dict[str, list[int]]) -> pd.DataFrame:
    return pd.DataFrame([{"split": p, "is_high_risk": b}
                         for p, bads in bad_by_part.items() for b in bads])


def test_every_part_with_both_classes_passes() -> None:
    _check_parts(_frame({p: [0, 1, 0] for p in PARTS}))


def test_a_part_with_one_class_is_refused_with_its_size() -> None:
    parts = {p: [0, 1] for p in PARTS} | {"calibration": [0, 0, 0]}
    with pytest.raises(InputError, match="the calibration part has 3 rows and not both"):
        _check_parts(_frame(parts))


def test_a_missing_part_is_refused() -> None:
    parts = {p: [0, 1] for p in PARTS if p != "test"}
    with pytest.raises(InputError, match="the test part has 0 rows"):
        _check_parts(_frame(parts))

"""Which day a run works on: the as-of date of a build_features run by its run type."""

from __future__ import annotations

import datetime as dt

import pytest

from creditrisk.dates import feature_as_of
from creditrisk.errors import InputError

AT = dt.datetime(2019, 1, 2, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("run_type", "logical_date", "as_of", "expected"),
    [
        ("backfill", AT, None, "2019-01-02"),  # a backfilled day builds that day
        ("scheduled", AT, None, "2019-01-02"),  # the daily 04:00 run builds its day
        ("asset_triggered", AT, None, None),  # after an ingest: the newest loaded day + 1
        ("manual", AT, None, None),
        ("manual", None, None, None),
        ("backfill", AT, "2018-12-01", "2018-12-01"),  # the param wins
        ("asset_triggered", None, "2018-12-01", "2018-12-01"),
    ],
)
def test_feature_as_of(run_type: str, logical_date: dt.datetime | None, as_of: str | None,
                       expected: str | None) -> None:
    assert feature_as_of(run_type, logical_date, as_of) == expected


def test_feature_as_of_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="as_of"):
        feature_as_of("manual", None, "14/02/2019")
    with pytest.raises(InputError, match="timezone"):
        feature_as_of("backfill", dt.datetime(2019, 1, 2), None)

"""Which day(s) a scheduled or manual run works on, derived explicitly (never the wall clock).

Airflow 3's cron schedules use ``CronTriggerTimetable``: a run's data interval start
equals its end equals its logical date, the moment it was due. A daily ingestion run
due at 02:00 on day D therefore loads the landing file of day D-1, the last complete
day. A manual run may have no logical date: then the run's ``run_after`` stands in.
"""

from __future__ import annotations

import datetime as dt

from creditrisk.errors import InputError


def parse_day(value: str, name: str) -> dt.date:
    """Parse an ISO day given as ``name``, or raise a one-line InputError."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name}: {value!r} is not a date (use YYYY-MM-DD)") from None


def previous_day(moment: dt.datetime) -> dt.date:
    """The last complete UTC day before ``moment``."""
    if moment.tzinfo is None:
        raise InputError(f"{moment!r} has no timezone; a run's dates are UTC-aware")
    return (moment.astimezone(dt.UTC) - dt.timedelta(days=1)).date()


def ingest_days(
    logical_date: dt.datetime | None,
    run_after: dt.datetime,
    *,
    date: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
) -> list[dt.date]:
    """The landing days an ``ingest_transactions`` run loads.

    Args:
        logical_date: The run's logical date (None for a manual run without one).
        run_after: When the run was allowed to start.
        date: Param: one explicit day.
        from_date: Param: first day of an explicit range (history backfill).
        to_date: Param: last day of that range, inclusive.

    Returns:
        The days, in order.
    """
    if date and (from_date or to_date):
        raise InputError("give either the date param or from_date/to_date, not both")
    if date:
        return [parse_day(date, "date")]
    if from_date or to_date:
        if not (from_date and to_date):
            raise InputError("from_date and to_date go together")
        start, end = parse_day(from_date, "from_date"), parse_day(to_date, "to_date")
        if end < start:
            raise InputError(f"to_date {end} is before from_date {start}")
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return [previous_day(logical_date or run_after)]


#: run types whose logical date names the day they work on (Airflow's DagRunType values)
TIMED_RUN_TYPES = frozenset({"scheduled", "backfill"})


def feature_as_of(run_type: str | None, logical_date: dt.datetime | None,
                  as_of: str | None) -> str | None:
    """The as-of day a ``build_features`` run builds, as ISO text, or None for the default.

    The ``as_of`` param wins. A run of the daily schedule or of a backfill builds its
    logical date's UTC day (features from the transactions strictly before it). Any other
    run (the ``raw_transactions`` asset, a manual trigger without the param) returns None:
    the day after the newest loaded transaction.
    """
    if as_of:
        return parse_day(as_of, "as_of").isoformat()
    if run_type in TIMED_RUN_TYPES and logical_date is not None:
        if logical_date.tzinfo is None:
            raise InputError(f"{logical_date!r} has no timezone; a run's dates are UTC-aware")
        return logical_date.astimezone(dt.UTC).date().isoformat()
    return None

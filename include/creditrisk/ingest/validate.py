"""Great Expectations gate on a landing file: the versioned ``raw_transactions`` suite.

The suite is JSON in ``great_expectations/expectations/raw_transactions.json`` (the
source of truth, reviewed like code). Each file is validated on the same frame by:

* a run of the whole suite in ``BOOLEAN_ONLY`` form: through the checkpoint, whose
  action builds Data Docs, when docs are wanted (so the rendered docs say which
  expectations passed without showing any row's values), else in memory;
* only when that run fails, a ``COMPLETE`` in-memory validation whose
  ``unexpected_index_list`` (keyed by the file's line number) tells which rows failed
  which expectation: that is what quarantine needs, and it is never persisted.

Row-level checks that need a value GX cannot see (the file's day) are expressed as
suite parameters (``$PARAMETER``) over derived, typed columns prefixed with ``_``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SUITE_NAME = "raw_transactions"
DATASOURCE = "landing"
ASSET = "xente_daily_file"
BATCH_DEFINITION = "whole_file"
VALIDATION_DEFINITION = "raw_transactions_daily"
CHECKPOINT = "raw_transactions_checkpoint"
LINE_COLUMN = "line_number"
#: Value may exceed |Amount| by fees (utility bills, tv, movies): at most this share of the
#: amount plus a fixed fee. Real bills run about 3% + 600 UGX (500 -> 1,115); movies 1.4x.
MAX_VALUE_OVER_AMOUNT = 1.5
MAX_FIXED_FEE = 1000.0


@dataclass
class ValidationOutcome:
    """What the suite said about one file."""

    success: bool
    #: line number -> every failed expectation, as readable reasons
    row_reasons: dict[int, list[str]] = field(default_factory=dict)
    #: failures that concern the table as a whole (column set, row count)
    table_reasons: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    data_docs: str | None = None


def gx_dir() -> Path:
    """Root of the GX project: ``CREDITRISK_GX_DIR`` or ``great_expectations/`` in the repo."""
    env = os.environ.get("CREDITRISK_GX_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "great_expectations"


def with_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the typed columns the suite checks (``_amount``, ``_value``, ``_start_time``...).

    Args:
        frame: The file's rows as text, with the Xente columns and ``line_number``.

    Returns:
        A new frame with the derived columns added.
    """
    import numpy as np
    import pandas as pd

    amount = pd.to_numeric(frame["Amount"], errors="coerce")
    value = pd.to_numeric(frame["Value"], errors="coerce")
    start = pd.to_datetime(
        frame["TransactionStartTime"], format="%Y-%m-%dT%H:%M:%SZ", errors="coerce", utc=True
    )
    abs_amount = amount.abs()
    # 0 when consistent; how far Value falls below |Amount| or above the fee allowance.
    excess = np.maximum(abs_amount - value, 0) + np.maximum(
        value - (MAX_VALUE_OVER_AMOUNT * abs_amount + MAX_FIXED_FEE), 0
    )
    return frame.assign(
        _amount=amount,
        _value=value,
        # seconds since the epoch: NaN when the timestamp does not parse
        _start_epoch=(start - pd.Timestamp(0, tz="UTC")).dt.total_seconds(),
        _value_amount_gap=excess.where(amount.notna() & value.notna(), 0.0),
    )


def day_parameters(file_day: dt.date) -> dict[str, float]:
    """Suite parameters bounding ``_start_epoch`` to the file's UTC day."""
    start = dt.datetime.combine(file_day, dt.time(), tzinfo=dt.UTC).timestamp()
    return {"file_day_start_epoch": start, "file_day_end_epoch": start + 86_399.0}


def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from a bank
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(gx_dir()))
    return context


#: (GX root, suite file mtime) -> (context, validation definition, checkpoint)
_DEFINITIONS: dict[tuple[str, int], tuple[Any, Any, Any]] = {}


def _definitions() -> tuple[Any, Any, Any]:
    """The context and definitions, loaded once per process and GX project.

    Loading the file context and its stores costs tens of milliseconds per file; a
    process that ingests a range of days reuses them. The key includes the suite file's
    modification time, so an edited suite is picked up by the next validation.
    """
    root = gx_dir()
    try:
        stamp = (root / "expectations" / f"{SUITE_NAME}.json").stat().st_mtime_ns
    except OSError:
        stamp = -1
    key = (str(root.resolve()), stamp)
    cached = _DEFINITIONS.get(key)
    if cached is None:
        context = _context()
        cached = (context, *_get_or_add_definitions(context))
        _DEFINITIONS.clear()
        _DEFINITIONS[key] = cached
    return cached


def _get_or_add_definitions(context: Any) -> tuple[Any, Any]:
    """Get-or-add the datasource, asset, batch definition, validation definition, checkpoint."""
    from great_expectations.checkpoint import UpdateDataDocsAction

    import great_expectations as gx

    try:
        datasource = context.data_sources.get(DATASOURCE)
    except KeyError:
        datasource = context.data_sources.add_pandas(name=DATASOURCE)
    try:
        asset = datasource.get_asset(ASSET)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=ASSET)
    try:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION)
    except (KeyError, LookupError):
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    suite = context.suites.get(SUITE_NAME)
    try:
        validation = context.validation_definitions.get(VALIDATION_DEFINITION)
    except Exception:  # GX raises DataContextError subclasses that vary by store
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=VALIDATION_DEFINITION, data=batch_definition, suite=suite)
        )
    try:
        checkpoint = context.checkpoints.get(CHECKPOINT)
    except Exception:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=CHECKPOINT,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "BOOLEAN_ONLY"},
            )
        )
    return validation, checkpoint


def _reason(result: Any) -> str:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k in ("column", "column_A", "column_B")}
    where = ",".join(str(v) for v in kwargs.values())
    return f"{cfg.type}({where})" if where else str(cfg.type)


def validate_frame(frame: pd.DataFrame, file_day: dt.date, *, data_docs: bool = True) -> (
    ValidationOutcome
):
    """Validate one landing file's rows with the versioned suite.

    The whole suite first runs in ``BOOLEAN_ONLY`` form (through the checkpoint when
    Data Docs are wanted). Only if an expectation fails does a second, ``COMPLETE`` run
    of the same suite list the failing lines: most files are clean, and the cheaper
    form saves GX about half its per-file work on them. No check is skipped either way.

    Args:
        frame: The rows as text, Xente columns plus ``line_number``.
        file_day: The UTC day the file must hold.
        data_docs: Also run the checkpoint that renders Data Docs.

    Returns:
        The outcome: overall success, per-line reasons and table-level reasons.
    """
    context, validation, checkpoint = _definitions()
    derived = with_derived_columns(frame)
    params = day_parameters(file_day)
    docs: str | None = None
    if data_docs:
        run = checkpoint.run(
            batch_parameters={"dataframe": derived}, expectation_parameters=params
        )
        docs = _docs_page(context, run)
        passed = bool(run.success)
        statistics = next(
            (dict(r.statistics) for r in run.run_results.values()), {}
        )
    else:
        batch = validation.data.get_batch(batch_parameters={"dataframe": derived})
        quick = batch.validate(
            validation.suite,
            result_format={"result_format": "BOOLEAN_ONLY"},
            expectation_parameters=params,
        )
        passed = bool(quick.success)
        statistics = dict(quick.statistics)
    if passed:
        return ValidationOutcome(success=True, statistics=statistics, data_docs=docs)

    batch = validation.data.get_batch(batch_parameters={"dataframe": derived})
    result = batch.validate(
        validation.suite,
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [LINE_COLUMN],
            "return_unexpected_index_query": False,
        },
        expectation_parameters=params,
    )
    outcome = ValidationOutcome(
        success=bool(result.success), statistics=dict(result.statistics), data_docs=docs
    )
    for res in result.results:
        if res.success:
            continue
        if res.exception_info and res.exception_info.get("raised_exception"):
            outcome.table_reasons.append(
                f"{_reason(res)}: {res.exception_info.get('exception_message')}"
            )
            continue
        index_list = (res.result or {}).get("unexpected_index_list")
        if index_list:
            reason = _reason(res)
            for item in index_list:
                outcome.row_reasons.setdefault(int(item[LINE_COLUMN]), []).append(reason)
        else:
            outcome.table_reasons.append(_reason(res))
    return outcome


def _docs_page(context: Any, checkpoint_result: Any) -> str | None:
    """The local file URL of this validation's Data Docs page, for the task log."""
    try:
        ids = list(checkpoint_result.run_results.keys())
        urls = context.get_docs_sites_urls(resource_identifier=ids[0]) if ids else []
    except Exception:  # docs are a convenience; never fail ingestion on them
        return None
    for site in urls:
        if site.get("site_url"):
            return str(site["site_url"])
    return None

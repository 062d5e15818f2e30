"""Great Expectations gate on a run's landing files: the versioned suites.

A suite is JSON in ``great_expectations/expectations/`` (``raw_transactions.json`` here;
``loans.json`` and ``repayments.json`` for :mod:`creditrisk.ingest.outcomes`: the source
of truth, reviewed like code), and a :class:`Suite` names its GX definitions (asset,
validation definition, checkpoint), stored as JSON next to it. A run validates all its
files of one suite as **one batch**:
their rows concatenated, each tagged with its file (``_file``, the file's position in
the run) and its ``line_number``, so every failure maps back to a row of a file. The
batch is validated by:

* a run of the whole suite in ``BOOLEAN_ONLY`` form: through the checkpoint, whose
  action builds Data Docs (once per run), when docs are wanted (so the rendered docs say
  which expectations passed without showing any row's values), else in memory;
* only when that run fails, a ``COMPLETE`` in-memory validation of the failed
  expectations alone, whose ``unexpected_index_list`` (keyed by file and line) tells
  which rows failed which expectation: that is what quarantine needs, and it is never
  persisted.

Checks that are per file are expressed over derived columns prefixed with ``_``:
``_file_transaction_id`` (file and TransactionId: unique within a file) and
``_day_second`` (seconds into the file's UTC day: within the day). A file without rows
is validated on its own (its table-level failure is its own); so is every file, should
the batch fail a table-level expectation, so that such a failure names its file.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
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
FILE_COLUMN = "_file"
#: Value may exceed |Amount| by fees (utility bills, tv, movies): at most this share of the
#: amount plus a fixed fee. Real bills run about 3% + 600 UGX (500 -> 1,115); movies 1.4x.
MAX_VALUE_OVER_AMOUNT = 1.5
MAX_FIXED_FEE = 1000.0


@dataclass(frozen=True)
class Suite:
    """One versioned suite and the GX definitions that validate a run's files with it.

    Each suite has its dataframe asset (in the ``landing`` datasource), its validation
    definition and its checkpoint (whose action builds Data Docs), all get-or-added on
    first use and stored in the GX project as JSON (committed like the suite).
    """

    name: str
    asset: str
    validation_definition: str
    checkpoint: str
    #: the run's files (rows as text plus ``line_number``, and their day) -> the batch:
    #: rows of every file in order, with the derived columns and ``_file``
    build: Callable[[Sequence[tuple[pd.DataFrame, dt.date]]], pd.DataFrame]
    #: per-file derived columns -> the column their failures are reported on: the reasons
    #: a row gets read the same whichever files share its batch
    reported_as: Mapping[str, str] = field(default_factory=dict)
    #: a file without rows is validated on its own (its table-level checks may fail it);
    #: else it is clean without a validation
    validate_empty: bool = True


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


def day_start_epoch(file_day: dt.date) -> float:
    """Seconds since the epoch at the start of ``file_day`` (UTC)."""
    return dt.datetime.combine(file_day, dt.time(), tzinfo=dt.UTC).timestamp()


def batch_frame(parts: Sequence[tuple[pd.DataFrame, dt.date]]) -> pd.DataFrame:
    """The run's files as one frame: their rows, derived columns and per-file columns.

    Args:
        parts: Each file's rows as text (Xente columns plus ``line_number``) and its day.

    Returns:
        The rows of every file in order, with the derived columns of
        :func:`with_derived_columns`, ``_file`` (the file's position in ``parts``),
        ``_file_transaction_id`` (file and TransactionId; null when the id is) and
        ``_day_second`` (seconds since the start of the file's UTC day).
    """
    import numpy as np
    import pandas as pd

    lengths = [len(f) for f, _ in parts]
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    derived = with_derived_columns(frame)
    file_index = np.repeat(np.arange(len(parts)), lengths)
    day_start = np.repeat(np.array([day_start_epoch(d) for _, d in parts]), lengths)
    prefix = pd.Series(file_index, index=derived.index).astype("str") + ":"
    return derived.assign(
        _file=file_index,
        _file_transaction_id=prefix + derived["TransactionId"],
        _day_second=derived["_start_epoch"] - day_start,
    )


TRANSACTIONS = Suite(
    name=SUITE_NAME, asset=ASSET, validation_definition=VALIDATION_DEFINITION,
    checkpoint=CHECKPOINT, build=batch_frame,
    reported_as={"_file_transaction_id": "TransactionId", "_day_second": "_start_epoch"},
)


def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from a bank
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(gx_dir()))
    return context


#: (GX root, suite name, suite file mtime) -> (context, validation definition, checkpoint)
_DEFINITIONS: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _definitions(suite: Suite = TRANSACTIONS) -> tuple[Any, Any, Any]:
    """The context and the suite's definitions, loaded once per process and GX project.

    Loading the file context and its stores costs tens of milliseconds per file; a
    process that ingests a range of days reuses them. The key includes the suite file's
    modification time, so an edited suite is picked up by the next validation.
    """
    root = gx_dir()
    try:
        stamp = (root / "expectations" / f"{suite.name}.json").stat().st_mtime_ns
    except OSError:
        stamp = -1
    key = (str(root.resolve()), suite.name, stamp)
    cached = _DEFINITIONS.get(key)
    if cached is None:
        # one context per GX project, shared by its suites (they add to the same files)
        same_root = [v[0] for k, v in _DEFINITIONS.items() if k[0] == key[0]]
        context = same_root[0] if same_root else _context()
        for k in [k for k in _DEFINITIONS if k[0] != key[0] or k[1] == key[1]]:
            del _DEFINITIONS[k]
        cached = (context, *_get_or_add_definitions(context, suite))
        _DEFINITIONS[key] = cached
    return cached


def _get_or_add_definitions(context: Any, suite: Suite = TRANSACTIONS) -> tuple[Any, Any]:
    """Get-or-add the datasource, the suite's asset, batch definition, validation
    definition and checkpoint."""
    from great_expectations.checkpoint import UpdateDataDocsAction

    import great_expectations as gx

    try:
        datasource = context.data_sources.get(DATASOURCE)
    except KeyError:
        datasource = context.data_sources.add_pandas(name=DATASOURCE)
    try:
        asset = datasource.get_asset(suite.asset)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=suite.asset)
    try:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION)
    except (KeyError, LookupError):
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    expectations = context.suites.get(suite.name)
    try:
        validation = context.validation_definitions.get(suite.validation_definition)
    except Exception:  # GX raises DataContextError subclasses that vary by store
        validation = context.validation_definitions.add(gx.ValidationDefinition(
            name=suite.validation_definition, data=batch_definition, suite=expectations))
    try:
        checkpoint = context.checkpoints.get(suite.checkpoint)
    except Exception:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=suite.checkpoint,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "BOOLEAN_ONLY"},
            )
        )
    return validation, checkpoint


def _reason(result: Any, reported_as: Mapping[str, str] = TRANSACTIONS.reported_as) -> str:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k in ("column", "column_A", "column_B")}
    where = ",".join(reported_as.get(str(v), str(v)) for v in kwargs.values())
    return f"{cfg.type}({where})" if where else str(cfg.type)


def validate_frame(frame: pd.DataFrame, file_day: dt.date, *, data_docs: bool = True) -> (
    ValidationOutcome
):
    """Validate one landing file's rows with the versioned suite (see :func:`validate_files`)."""
    return validate_files([(frame, file_day)], data_docs=data_docs)[0]


def validate_files(
    parts: Sequence[tuple[pd.DataFrame, dt.date]], *, data_docs: bool = True,
    suite: Suite = TRANSACTIONS,
) -> list[ValidationOutcome]:
    """Validate a run's landing files with a versioned suite, as one batch.

    The whole suite first runs in ``BOOLEAN_ONLY`` form (through the checkpoint, which
    renders Data Docs once for the run, when they are wanted). Only if an expectation
    fails does a ``COMPLETE`` run of the failed expectations list the failing rows by
    file and line: most runs are clean, and the cheaper form saves GX about half its
    work on them. No check is skipped either way. A file without rows is validated on
    its own (or not at all, when the suite says so), and so is every file when the batch
    fails a table-level expectation, so that a table-level failure is the failure of the
    file that has it.

    Args:
        parts: Each file's rows as text (the kind's columns plus ``line_number``) and
            the UTC day the file must hold.
        data_docs: Also run the checkpoint that renders Data Docs.
        suite: The suite and its definitions (default: ``raw_transactions``).

    Returns:
        One outcome per file, in order: its success, per-line and table-level reasons.
    """
    outcomes = [ValidationOutcome(success=True) for _ in parts]
    empty = [i for i, (frame, _) in enumerate(parts) if len(frame) == 0]
    alone = empty if suite.validate_empty else []
    together = [i for i in range(len(parts)) if i not in empty]
    if together:
        table = _validate_batch(suite, [parts[i] for i in together],
                                [outcomes[i] for i in together], data_docs=data_docs)
        if table and len(together) == 1:
            outcomes[together[0]].table_reasons = table
        elif table:  # which file has it? each says for itself
            alone = sorted(alone + together)
    for i in alone:
        outcomes[i] = ValidationOutcome(success=True)
        outcomes[i].table_reasons = _validate_batch(suite, [parts[i]], [outcomes[i]],
                                                    data_docs=data_docs)
    for outcome in outcomes:
        outcome.success = not outcome.row_reasons and not outcome.table_reasons
    return outcomes


def _validator(validation: Any, frame: pd.DataFrame, result_format: dict[str, Any]) -> Any:
    """An in-memory validator of the batch (nothing is stored)."""
    from great_expectations.validator.v1_validator import Validator

    return Validator(batch_definition=validation.data, batch_parameters={"dataframe": frame},
                     result_format=result_format)


def _validate_batch(
    suite: Suite, parts: Sequence[tuple[pd.DataFrame, dt.date]],
    outcomes: Sequence[ValidationOutcome], *, data_docs: bool,
) -> list[str]:
    """Validate ``parts`` as one batch; fill each outcome's row reasons and Data Docs.

    Returns:
        The batch's table-level failures (an expectation that failed without rows to
        show, or raised).
    """
    from great_expectations.core import ExpectationSuite

    context, validation, checkpoint = _definitions(suite)
    frame = suite.build(parts)
    docs: str | None = None
    if data_docs:
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        docs = _docs_page(context, run)
        quick = next(iter(run.run_results.values()))
    else:
        quick = _validator(validation, frame, {"result_format": "BOOLEAN_ONLY"}
                           ).validate_expectation_suite(validation.suite)
    for outcome in outcomes:
        outcome.data_docs, outcome.statistics = docs, dict(quick.statistics)
    failed_ids = {r.expectation_config.id for r in quick.results if not r.success}
    # copies, in the suite's order (an expectation belongs to one suite)
    failed = [copy.copy(e) for e in validation.suite.expectations if e.id in failed_ids]
    if len(failed) != len(failed_ids):  # never report a failed batch as clean
        raise RuntimeError(f"GX reported failures of expectations not in the suite {suite.name}")
    if not failed:
        return []
    result = _validator(validation, frame, {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [FILE_COLUMN, LINE_COLUMN],
        "return_unexpected_index_query": False,
    }).validate_expectation_suite(ExpectationSuite(name=f"{suite.name}_failed",
                                                   expectations=failed))
    return _row_reasons(result, outcomes, suite.reported_as)


def _row_reasons(result: Any, outcomes: Sequence[ValidationOutcome],
                 reported_as: Mapping[str, str]) -> list[str]:
    """Put each failing row's reasons on its file's outcome; return the table-level ones."""
    table: list[str] = []
    for res in result.results:
        if res.success:
            continue
        reason = _reason(res, reported_as)
        if res.exception_info and res.exception_info.get("raised_exception"):
            table.append(f"{reason}: {res.exception_info.get('exception_message')}")
            continue
        index_list = (res.result or {}).get("unexpected_index_list")
        if not index_list:
            table.append(reason)
            continue
        for item in index_list:
            rows = outcomes[int(item[FILE_COLUMN])].row_reasons
            rows.setdefault(int(item[LINE_COLUMN]), []).append(reason)
    return table


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

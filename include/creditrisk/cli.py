"""The ``creditrisk`` console script: every pipeline step an operator may run by hand.

Each command prints what it did and exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import traceback
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from creditrisk import progress
from creditrisk.catalogue import catalogue_markdown
from creditrisk.config import get_settings
from creditrisk.dates import parse_day
from creditrisk.errors import CreditRiskError, InputError
from creditrisk.features.build import build_for_date, rebuild_aggregates
from creditrisk.features.labels import DEFAULT_HORIZON_DAYS
from creditrisk.ingest.load import days_between, ingest_days
from creditrisk.ingest.outcomes import ingest_outcome_days
from creditrisk.landing.simulate import generate_landing
from creditrisk.landing.xente_import import import_xente as do_import
from creditrisk.model.promote import promote_version
from creditrisk.model.train import load_config
from creditrisk.model.train import train as run_training
from creditrisk.registry import provision
from creditrisk.scoring.batch import prepare, publish, score_chunk
from creditrisk.scoring.shadow import PLANNED, shadow_score_date
from creditrisk.storage import migrate
from creditrisk.storage.db import check_connection, describe_url, make_engine
from creditrisk.tasks import backtest_from_settings


@click.group(
    name="creditrisk",
    help="Credit-risk scoring platform: run or repair one pipeline step by hand.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object, the command's result, instead of prose.")
@click.option("--quiet", "-q", is_flag=True, envvar="CREDITRISK_QUIET",
              help="No progress bars (for logs); also CREDITRISK_QUIET=1.")
@click.pass_context
def app(ctx: click.Context, as_json: bool, quiet: bool) -> None:
    """Credit-risk scoring platform."""
    ctx.meta[_JSON] = as_json
    ctx.meta[_QUIET] = quiet


_JSON, _QUIET = "creditrisk.json", "creditrisk.quiet"


def _set_meta(key: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[key] = True
    return callback


def _add_output_options(group: click.Group) -> None:
    """Give every command the group's ``--json`` and ``--quiet``, so either place works."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _add_output_options(command)
            continue
        command.params += [
            click.Option(["--json", "as_json"], is_flag=True, expose_value=False,
                         callback=_set_meta(_JSON), help="Print the result as one JSON object."),
            click.Option(["--quiet", "-q"], is_flag=True, expose_value=False,
                         callback=_set_meta(_QUIET), help="No progress bars (for logs)."),
        ]


def _json_mode() -> bool:
    return bool(click.get_current_context().meta.get(_JSON))


def _say(text: str) -> None:
    """A line of prose: printed unless the command answers in JSON."""
    if not _json_mode():
        click.echo(text)


def _plain(value: object) -> object:
    """JSON for what results hold besides str/int/float: dates, paths, numpy scalars."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return tolist()
    return str(value)


def _emit(result: Mapping[str, Any]) -> None:
    """The command's result as one JSON line, in JSON mode."""
    if _json_mode():
        click.echo(json.dumps(result, default=_plain, sort_keys=True))


@contextlib.contextmanager
def _staged(stages: Sequence[str], label: str) -> Generator[None]:
    """A bar over a step's announced stages (:mod:`creditrisk.progress`), on stderr."""
    meta = click.get_current_context().meta
    if meta.get(_QUIET) or meta.get(_JSON):
        yield
        return
    with click.progressbar(length=len(stages), label=label, file=sys.stderr,
                           show_pos=True) as bar:
        reached = [0]

        def on_stage(name: str) -> None:
            at = stages.index(name) if name in stages else reached[0]
            bar.label = f"{label}: {name}"
            bar.update(max(0, at - reached[0]))
            bar.render_progress()  # update(0) draws nothing: the new label must show
            reached[0] = max(reached[0], at)

        with progress.reporting(on_stage):
            yield
        bar.label = f"{label}: done"
        bar.update(len(stages) - reached[0])


def _progress(items: Sequence[Any], label: str) -> Any:
    """A progress bar on stderr, or the bare items when quiet or in JSON mode."""
    meta = click.get_current_context().meta
    if meta.get(_QUIET) or meta.get(_JSON):
        return contextlib.nullcontext(items)
    return click.progressbar(items, label=label, file=sys.stderr, show_pos=True)


@app.group("db")
def db_app() -> None:
    """Warehouse schema (Alembic migrations)."""


def parse_date(value: str, option: str) -> dt.date:
    """Parse an ISO date given to ``option``, or raise a one-line InputError."""

    return parse_day(value, option)


def _database_url() -> str:

    return get_settings().require_database_url()


@db_app.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply the warehouse migrations (default: up to head)."""

    url = _database_url()
    reached = migrate.upgrade(url, revision)
    _say(f"database {describe_url(url)} is at revision {reached}")
    _emit({"database": describe_url(url), "revision": reached})


@db_app.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert the warehouse migrations down to REVISION ('base' drops every table)."""

    url = _database_url()
    reached = migrate.downgrade(url, revision)
    _say(f"database {describe_url(url)} is at revision {reached or 'base'}")
    _emit({"database": describe_url(url), "revision": reached})


@db_app.command("current")
def db_current() -> None:
    """Print the revision the warehouse is at and the newest one shipped."""

    url = _database_url()
    engine = make_engine(url)
    try:
        check_connection(engine)
        current = migrate.current_revision_of(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if current == head else "behind: run `creditrisk db upgrade`"
    _say(f"database {describe_url(url)}: revision {current or 'base'}, head {head} ({state})")
    _emit({"database": describe_url(url), "revision": current, "head": head,
           "up_to_date": current == head})


@app.group("registry")
def registry_app() -> None:
    """The MLflow registry's users and who owns the platform's experiment and model."""


@registry_app.command("init")
def registry_init() -> None:
    """Create the trainer and reader MLflow users; make the trainer own experiment and model.

    For a tracking server with basic auth (``mlflow server --app-name basic-auth``). Needs
    CREDITRISK_MLFLOW_ADMIN_PASSWORD, CREDITRISK_MLFLOW_TRAINER_PASSWORD and
    CREDITRISK_MLFLOW_READER_PASSWORD. Safe to run again: it resets the two passwords to
    the configured ones and grants nothing beyond that.
    """
    settings = get_settings()
    tracking_uri = settings.tracking_uri()
    if not tracking_uri:
        raise InputError("MLFLOW_TRACKING_URI is not set: export the tracking server's URL")
    admin, trainer, reader = (settings.mlflow_credentials(role)
                              for role in ("admin", "trainer", "reader"))
    if admin is None or trainer is None or reader is None:
        missing = [f"CREDITRISK_MLFLOW_{role.upper()}_PASSWORD" for role, creds in
                   (("admin", admin), ("trainer", trainer), ("reader", reader)) if creds is None]
        raise InputError(f"{', '.join(missing)} not set: registry init needs each role's "
                         "password")
    out = provision(tracking_uri, settings.model_name, admin=admin, trainer=trainer,
                    reader=reader)
    _say(f"MLflow user {out['trainer']} owns experiment {out['experiment_id']} and "
         f"model {out['model_name']}; {out['reader']} may only read")
    _emit(out)


_out_option = click.option(
    "--out", type=click.Path(path_type=Path), default=None,
    help="Output folder (default: CREDITRISK_LANDING_DIR)",
)
_run_id_option = click.option(
    "--run-id", default=None, help="Run id recorded on every row written (default: generated)"
)


def _run_id(given: str | None) -> str:
    """The run id a by-hand command records: the given one, or ``cli__<UTC timestamp>``."""
    return given or f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"


_overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace existing daily files"
)


@app.command("generate")
@click.option("--customers", type=click.IntRange(min=1), default=None,
              help="Number of customers [default: 2000; xente: all 3,742 real customers]")
@click.option("--world", type=click.Choice(["synthetic", "xente", "null"]), default="synthetic",
              show_default=True,
              help="synthetic: hidden trajectories; xente: the real per-customer activity of "
                   "--sequence; null: one constant rate, nothing predictable")
@click.option("--sequence", type=click.Path(path_type=Path), default=None,
              help="The real customer-sequence CSV (column CustomerId), for --world xente")
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True,
              help="Days of history")
@click.option("--end-date", required=True, help="Last day generated (YYYY-MM-DD)")
@_out_option
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed; same seed, same files")
@_overwrite_option
def generate(
    customers: int | None, world: str, sequence: Path | None, days: int, end_date: str,
    out: Path | None, seed: int, overwrite: bool,
) -> None:
    """Write synthetic daily landing files in the exact Xente schema."""
    end = parse_date(end_date, "--end-date")
    if world == "xente" and sequence is None:
        raise InputError("--world xente needs --sequence PATH (the customer-sequence CSV)")
    if customers is None and world != "xente":
        customers = 2000
    out_dir = out if out is not None else get_settings().landing_dir
    summary = generate_landing(
        customers=customers, days=days, end_date=end, out_dir=out_dir, seed=seed,
        overwrite=overwrite, world=world, sequence_path=sequence,
    )
    _say(
        f"generated {summary.rows} rows for {summary.customers} customers "
        f"({summary.fraud_rows} fraud) into {len(summary.files)} files in {out_dir} "
        f"({summary.first_day} .. {summary.last_day})"
    )
    _emit({"rows": summary.rows, "customers": summary.customers,
           "fraud_rows": summary.fraud_rows, "files": len(summary.files), "out": out_dir,
           "first_day": summary.first_day, "last_day": summary.last_day})


@app.command("import-xente")
@click.argument("path", type=click.Path(path_type=Path))
@_out_option
@_overwrite_option
def import_xente(path: Path, out: Path | None, overwrite: bool) -> None:
    """Split a real Xente CSV (e.g. the public data.csv) into daily landing files."""

    out_dir = out if out is not None else get_settings().landing_dir
    summary = do_import(path, out_dir, overwrite=overwrite)
    _say(
        f"imported {summary.rows} rows for {summary.customers} customers into "
        f"{len(summary.files)} files in {out_dir} ({summary.first_day} .. {summary.last_day})"
    )
    _emit({"rows": summary.rows, "customers": summary.customers, "files": len(summary.files),
           "out": out_dir, "first_day": summary.first_day, "last_day": summary.last_day})


def _landing_range_options(date_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--date`` or ``--from``/``--to``, ``--landing-dir``, ``--threshold``, ``--run-id``:
    the options of every command that loads landing files."""
    options = [
        click.option("--date", "date_", help=date_help),
        click.option("--from", "from_", help="First day of a range (YYYY-MM-DD)"),
        click.option("--to", "to_", help="Last day of a range, inclusive (YYYY-MM-DD)"),
        click.option("--landing-dir", type=click.Path(path_type=Path), default=None,
                     help="Landing folder (default: CREDITRISK_LANDING_DIR)"),
        click.option("--threshold", type=click.FloatRange(0, 1), default=None,
                     help="Largest share of bad rows a file may have (default: settings, 0.05)"),
        _run_id_option,
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # the same order in --help as written above
            command = option(command)
        return command

    return apply


_no_data_docs_option = click.option("--no-data-docs", is_flag=True,
                                    help="Skip building Great Expectations Data Docs")


@app.command("ingest")
@_landing_range_options("Day whose landing file to load (YYYY-MM-DD)")
@_no_data_docs_option
def ingest(
    date_: str | None, from_: str | None, to_: str | None, landing_dir: Path | None,
    threshold: float | None, run_id: str | None, no_data_docs: bool,
) -> None:
    """Validate landing files with the GX suite and load them into raw_transactions."""

    days = _days(date_, from_, to_)
    settings = get_settings()
    run = _run_id(run_id)
    totals = {"rows_read": 0, "rows_loaded": 0, "rows_unchanged": 0, "rows_quarantined": 0}
    per_day: list[dict[str, Any]] = []
    # one run: one validation of every day's file, then each file loaded in order
    results = ingest_days(
        days,
        database_url=settings.require_database_url(),
        landing_dir=landing_dir or settings.landing_dir,
        run_id=run,
        threshold=settings.quarantine_threshold if threshold is None else threshold,
        data_docs=not no_data_docs,
    )
    for day, res in zip(days, results, strict=True):
        for k in totals:
            totals[k] += int(res[k])  # type: ignore[call-overload]
        per_day.append({"day": day, **res})
        _say(
            f"{day}: read {res['rows_read']}, loaded {res['rows_loaded']}, "
            f"unchanged {res['rows_unchanged']}, quarantined {res['rows_quarantined']}"
            + (f"; data docs {res['data_docs']}" if res.get("data_docs") else "")
        )
    _say(
        f"run {run}: {len(days)} file(s), read {totals['rows_read']}, loaded "
        f"{totals['rows_loaded']}, unchanged {totals['rows_unchanged']}, quarantined "
        f"{totals['rows_quarantined']}"
    )
    _emit({"run_id": run, "files": len(days), **totals, "days": per_day})


def _days(date_: str | None, from_: str | None, to_: str | None) -> list[dt.date]:
    """The days of ``--date`` or ``--from``/``--to``."""
    if date_ and (from_ or to_):
        raise InputError("give either --date or --from/--to, not both")
    if date_:
        return [parse_date(date_, "--date")]
    if from_ and to_:
        return days_between(parse_date(from_, "--from"), parse_date(to_, "--to"))
    raise InputError("give --date DATE or --from DATE --to DATE")


@app.command("ingest-loans")
@_landing_range_options("Day whose loans and repayments files to load (YYYY-MM-DD)")
@_no_data_docs_option
def ingest_loans(date_: str | None, from_: str | None, to_: str | None,
                 landing_dir: Path | None, threshold: float | None, run_id: str | None,
                 no_data_docs: bool) -> None:
    """Validate loans_/repayments_ landing files and load them into loans and repayments."""

    days = _days(date_, from_, to_)
    settings = get_settings()
    run = _run_id(run_id)
    results = ingest_outcome_days(
        days, database_url=settings.require_database_url(),
        landing_dir=landing_dir or settings.landing_dir, run_id=run,
        threshold=settings.quarantine_threshold if threshold is None else threshold,
        data_docs=not no_data_docs)
    for res in results:
        _say(f"{res['source_file']}: read {res['rows_read']}, loaded {res['rows_loaded']}, "
             f"unchanged {res['rows_unchanged']}, quarantined {res['rows_quarantined']}"
             + (f"; data docs {res['data_docs']}" if res.get("data_docs") else ""))
    totals = {k: sum(int(r[k]) for r in results)  # type: ignore[call-overload]
              for k in ("rows_read", "rows_loaded", "rows_unchanged", "rows_quarantined")}
    _say(f"run {run}: {len(results)} file(s), " + ", ".join(
        f"{k.removeprefix('rows_')} {v}" for k, v in totals.items()))
    _emit({"run_id": run, "files": len(results), **totals, "results": results})


@app.command("backtest")
@click.option("--as-of", "as_of", required=True,
              help="Check date: loans matured by the start of this day (YYYY-MM-DD)")
@_run_id_option
def backtest(as_of: str, run_id: str | None) -> None:
    """Realized bad rate of matured loans per band vs mean PD at issue (outcome_backtest)."""

    run = _run_id(run_id)
    res = backtest_from_settings(as_of=parse_date(as_of, "--as-of").isoformat(), run_id=run)
    for band in res["bands"]:
        mean_pd = band["mean_pd"]
        _say(f"v{band['model_version']} band {band['risk_band']}: "
             f"{band['bad']}/{band['loans']} bad "
             f"({band['realized_bad_rate']:.1%}, Jeffreys {band['interval_lo']:.1%}-"
             f"{band['interval_hi']:.1%}), mean PD "
             + ("n/a" if mean_pd is None else f"{mean_pd:.1%}")
             + ("" if band["within_interval"] is not False else "  OUTSIDE"))
    _say(f"{res['loans']} loans, {res['matured']} matured; bands outside: "
         f"{', '.join(res['outside']) or 'none'}")
    if res.get("mlflow_run_id"):
        _say(f"plots and tables: MLflow run {res['mlflow_run_id']}")
    _emit({"run_id": run, **res})


@app.command("features")
@click.option("--as-of", "as_of", required=True, help="Feature date (YYYY-MM-DD)")
@click.option("--label-strategy", default="forward_window", show_default=True,
              help="forward_window or rfm_kmeans")
@click.option("--horizon", type=click.IntRange(min=1), default=DEFAULT_HORIZON_DAYS,
              show_default=True,
              help="Outcome window of forward_window, in days")
@click.option("--rebuild", is_flag=True,
              help="First recompute the daily aggregates from raw_transactions (the full "
                   "build; needed only after rows were changed outside ingestion)")
@_run_id_option
def features(as_of: str, label_strategy: str, horizon: int, rebuild: bool,
             run_id: str | None) -> None:
    """Build customer_features (and labels, when observable) for a date; print the IV table."""
    day = parse_date(as_of, "--as-of")

    run = _run_id(run_id)
    if rebuild:
        rebuild_aggregates(get_settings().require_database_url())
        _say("daily aggregates recomputed from raw_transactions")
    with _staged(progress.FEATURE_STAGES, "features"):
        res = build_for_date(
            day, database_url=get_settings().require_database_url(), run_id=run,
            label_strategy=label_strategy, horizon_days=horizon,
        )
    _emit({"run_id": run, **res})
    _say(
        f"features as of {res['as_of']}: {res['customers']} customers from "
        f"{res['transactions']} transactions (run {run})"
    )
    if res["label_note"]:
        _say(str(res["label_note"]))
        return
    _say(f"labels ({label_strategy}): {res['labels']}, bad rate {res['bad_rate']:.1%}")
    _say(f"{'feature':28} {'IV':>8}  strength")
    for row in res["iv"]:  # type: ignore[attr-defined]
        _say(f"{row['feature']:28} {row['iv']:8.4f}  {row['strength']}")


@app.command("train")
@click.option("--as-of", "as_of", required=True, help="Training date D (YYYY-MM-DD)")
@click.option("--promote", is_flag=True, help="Run the promotion gate on the new challenger")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="Training config YAML (default: the packaged conf/training.yaml)")
@_run_id_option
def train(as_of: str, promote: bool, config: Path | None, run_id: str | None) -> None:
    """Climb the model ladder on what is known before a date; register the pick as challenger."""
    day = parse_date(as_of, "--as-of")

    settings = get_settings()
    run = _run_id(run_id)
    stages = progress.TRAIN_STAGES if promote else progress.TRAIN_STAGES[:-1]
    with _staged(stages, "training"):
        res = run_training(
            day, database_url=settings.require_database_url(),
            tracking_uri=settings.tracking_uri(), model_name=settings.model_name,
            run_id=run, promote=promote, config=load_config(config),
        )
    _emit(res)
    if not _json_mode():
        _print_training(res)


def _print_training(res: Mapping[str, Any]) -> None:
    fp, t = res["fingerprint"], res["test"]
    click.echo(f"training set as of {res['as_of']}: {fp['rows']} rows, {fp['customers']} "
               f"customers, bad rate {fp['bad_rate']:.1%}, evaluation date {fp['eval_date']} "
               f"(hash {fp['hash']})")
    for r in res["ladder"]:
        gain = "" if r["gain_lo"] is None else (
            f"  gain {r['gain_vs_selected']:+.4f} [{r['gain_lo']:+.4f}, {r['gain_hi']:+.4f}]")
        click.echo(f"  {'*' if r['selected'] else ' '} {r['rung']:20} validation AUC "
                   f"{r['val_auc']:.4f} ({r['calibration']}){gain}")
    click.echo(f"test ({t['n']} customers): mean PD {t['mean_pd']:.4f} vs bad rate "
               f"{t['bad_rate']:.4f}, ECE {t['ece']:.4f}, AUC {t['auc']:.4f} (lower bound "
               f"{t['auc_lo']:.4f}; recency alone {t['auc_recency_only']:.4f})")
    click.echo(f"registered {res['model_name']} version {res['version']} ({res['selected']}, "
               f"{res['calibration']} calibration) as challenger; MLflow parent run "
               f"{res['parent_run_id']}")
    if "promotion" in res:
        p = res["promotion"]
        click.echo(f"promotion gate ({p['mode']} mode): {p['decision']}")
        for reason in p["reasons"]:
            click.echo(f"  {reason}")


@app.command("promote")
@click.option("--version", "version", default=None, help="Registered model version")
@click.option("--previous", is_flag=True,
              help="Roll back: champion goes back to the last champion in model_promotions")
@click.option("--by", "decided_by", default=None, help="Who promotes (default: $USER)")
def promote(version: str | None, previous: bool, decided_by: str | None) -> None:
    """Move the champion alias to a version by hand (or back, --previous), and log it."""

    if (version is None) == (not previous):
        raise click.UsageError("give exactly one of --version N and --previous")
    settings = get_settings()
    res = promote_version(
        database_url=settings.require_database_url(), tracking_uri=settings.tracking_uri(),
        model_name=settings.model_name, version=version, previous=previous,
        decided_by=decided_by or f"cli:{os.environ.get('USER', 'unknown')}",
    )
    _say(f"{res['model_name']}: champion is now version {res['version']} "
         f"(was {res['previous_champion'] or 'none'})")
    _emit(res)


@app.command("score")
@click.option("--date", "date_", required=True, help="Score date: features as of it (YYYY-MM-DD)")
@click.option("--alias", default=None, help="Registry alias to score with (default: settings)")
@click.option("--chunk-customers", type=click.IntRange(min=1), default=None,
              help="Customers per chunk (default: policy.yaml)")
@click.option("--shadow/--no-shadow", default=True, show_default=True,
              help="Then score the day with the challenger into shadow_scores (if any)")
@_run_id_option
def score(date_: str, alias: str | None, chunk_customers: int | None, shadow: bool,
          run_id: str | None) -> None:
    """Score every customer of a date with the champion into risk_scores (then the
    challenger, if any, into shadow_scores with its swap-set report)."""
    day = parse_date(date_, "--date")

    settings = get_settings()
    run = _run_id(run_id)
    url = settings.require_database_url()
    plan = prepare(day, database_url=url, tracking_uri=settings.tracking_uri(),
                   model_name=settings.model_name, alias=alias or settings.model_alias,
                   run_id=run, chunk_customers=chunk_customers).as_dict()
    with _progress(range(plan["chunks"]), "scoring chunks") as chunks:
        for chunk in chunks:
            score_chunk(plan, chunk, database_url=url, tracking_uri=settings.tracking_uri(),
                        run_id=run)
    res = publish(plan, database_url=url, tracking_uri=settings.tracking_uri(), run_id=run)
    shadowed = (shadow_score_date(plan, database_url=url, tracking_uri=settings.tracking_uri(),
                                  run_id=run) if shadow else None)
    _emit({"run_id": run, **res, "shadow": shadowed})
    _say(
        f"scored {res['published']} customers for {res['score_date']} with "
        f"{settings.model_name} v{res['model_version']} (run {run}); mean PD "
        + (f"{res['mean_pd']:.4f}" if res["mean_pd"] is not None
           else "none (nobody in the scoring population)")
        + f", score PSI {res['psi_score']}"
        + (" — PSI ALERT, see score_monitoring" if res["psi_alert"] else "")
    )
    if shadowed is not None:
        _say(f"shadow: challenger v{shadowed['challenger_version']}, swap set "
             f"{shadowed['summary']}" if shadowed["status"] == PLANNED
             else f"shadow: none ({shadowed['reason']})")


@app.command("catalogue")
def catalogue() -> None:
    """Print the feature catalogue as markdown (name, meaning, unit)."""
    if _json_mode():
        from creditrisk.catalogue import CATALOGUE

        _emit({"features": [{"name": f.name, "meaning": f.meaning, "unit": f.unit,
                             "group": f.group} for f in CATALOGUE]})
        return
    click.echo(catalogue_markdown())


_add_output_options(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every failure into one line and an exit code."""
    try:
        result = app.main(args=argv, prog_name="creditrisk", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message(), err=True)
        return 2
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"creditrisk: error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("creditrisk: aborted", err=True)
        return 130
    except CreditRiskError as exc:
        click.echo(f"creditrisk: error: {exc}", err=True)
        return 1
    except Exception as exc:  # a bug or an unexpected failure: still one line first
        click.echo(f"creditrisk: unexpected error: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("CREDITRISK_DEBUG"):
            traceback.print_exc()
        else:
            click.echo("creditrisk: set CREDITRISK_DEBUG=1 for the traceback", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())

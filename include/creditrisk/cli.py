"""The ``creditrisk`` console script: every pipeline step an operator may run by hand.

Each command prints what it did and exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import traceback
from pathlib import Path

import click

from creditrisk.catalogue import catalogue_markdown
from creditrisk.config import get_settings
from creditrisk.dates import parse_day
from creditrisk.errors import CreditRiskError, InputError
from creditrisk.features.build import build_for_date
from creditrisk.features.labels import DEFAULT_HORIZON_DAYS
from creditrisk.ingest.load import days_between, ingest_day
from creditrisk.landing.simulate import generate_landing
from creditrisk.landing.xente_import import import_xente as do_import
from creditrisk.model.promote import promote_version
from creditrisk.model.train import load_config
from creditrisk.model.train import train as run_training
from creditrisk.registry import provision
from creditrisk.scoring.batch import score_date
from creditrisk.storage import migrate
from creditrisk.storage.db import check_connection, describe_url, make_engine


@click.group(
    name="creditrisk",
    help="Credit-risk scoring platform: run or repair one pipeline step by hand.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
def app() -> None:
    """Credit-risk scoring platform."""


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
    click.echo(f"database {describe_url(url)} is at revision {reached}")


@db_app.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert the warehouse migrations down to REVISION ('base' drops every table)."""

    url = _database_url()
    reached = migrate.downgrade(url, revision)
    click.echo(f"database {describe_url(url)} is at revision {reached or 'base'}")


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
    click.echo(f"database {describe_url(url)}: revision {current or 'base'}, head {head} ({state})")


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
    if not settings.mlflow_tracking_uri:
        raise InputError("MLFLOW_TRACKING_URI is not set: export the tracking server's URL")
    admin, trainer, reader = (settings.mlflow_credentials(role)
                              for role in ("admin", "trainer", "reader"))
    if admin is None or trainer is None or reader is None:
        missing = [f"CREDITRISK_MLFLOW_{role.upper()}_PASSWORD" for role, creds in
                   (("admin", admin), ("trainer", trainer), ("reader", reader)) if creds is None]
        raise InputError(f"{', '.join(missing)} not set: registry init needs each role's "
                         "password")
    out = provision(settings.mlflow_tracking_uri, settings.model_name, admin=admin,
                    trainer=trainer, reader=reader)
    click.echo(f"MLflow user {out['trainer']} owns experiment {out['experiment_id']} and "
               f"model {out['model_name']}; {out['reader']} may only read")


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
    click.echo(
        f"generated {summary.rows} rows for {summary.customers} customers "
        f"({summary.fraud_rows} fraud) into {len(summary.files)} files in {out_dir} "
        f"({summary.first_day} .. {summary.last_day})"
    )


@app.command("import-xente")
@click.argument("path", type=click.Path(path_type=Path))
@_out_option
@_overwrite_option
def import_xente(path: Path, out: Path | None, overwrite: bool) -> None:
    """Split a real Xente CSV (e.g. the public data.csv) into daily landing files."""

    out_dir = out if out is not None else get_settings().landing_dir
    summary = do_import(path, out_dir, overwrite=overwrite)
    click.echo(
        f"imported {summary.rows} rows for {summary.customers} customers into "
        f"{len(summary.files)} files in {out_dir} ({summary.first_day} .. {summary.last_day})"
    )


@app.command("ingest")
@click.option("--date", "date_", help="Day whose landing file to load (YYYY-MM-DD)")
@click.option("--from", "from_", help="First day of a range (YYYY-MM-DD)")
@click.option("--to", "to_", help="Last day of a range, inclusive (YYYY-MM-DD)")
@click.option("--landing-dir", type=click.Path(path_type=Path), default=None,
              help="Landing folder (default: CREDITRISK_LANDING_DIR)")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Largest share of bad rows a file may have (default: settings, 0.05)")
@_run_id_option
@click.option("--no-data-docs", is_flag=True, help="Skip building Great Expectations Data Docs")
def ingest(
    date_: str | None, from_: str | None, to_: str | None, landing_dir: Path | None,
    threshold: float | None, run_id: str | None, no_data_docs: bool,
) -> None:
    """Validate landing files with the GX suite and load them into raw_transactions."""

    if date_ and (from_ or to_):
        raise InputError("give either --date or --from/--to, not both")
    if date_:
        days = [parse_date(date_, "--date")]
    elif from_ and to_:
        days = days_between(parse_date(from_, "--from"), parse_date(to_, "--to"))
    else:
        raise InputError("give --date DATE or --from DATE --to DATE")
    settings = get_settings()
    run = _run_id(run_id)
    totals = {"rows_read": 0, "rows_loaded": 0, "rows_unchanged": 0, "rows_quarantined": 0}
    with click.progressbar(days, label="ingesting", file=sys.stderr,
                           show_pos=True) as progress:
        for day in progress:
            res = ingest_day(
                day,
                database_url=settings.require_database_url(),
                landing_dir=landing_dir or settings.landing_dir,
                run_id=run,
                threshold=settings.quarantine_threshold if threshold is None else threshold,
                data_docs=not no_data_docs,
            )
            for k in totals:
                totals[k] += int(res[k])  # type: ignore[call-overload]
            click.echo(
                f"{day}: read {res['rows_read']}, loaded {res['rows_loaded']}, "
                f"unchanged {res['rows_unchanged']}, quarantined {res['rows_quarantined']}"
                + (f"; data docs {res['data_docs']}" if res.get("data_docs") else "")
            )
    click.echo(
        f"run {run}: {len(days)} file(s), read {totals['rows_read']}, loaded "
        f"{totals['rows_loaded']}, unchanged {totals['rows_unchanged']}, quarantined "
        f"{totals['rows_quarantined']}"
    )


@app.command("features")
@click.option("--as-of", "as_of", required=True, help="Feature date (YYYY-MM-DD)")
@click.option("--label-strategy", default="forward_window", show_default=True,
              help="forward_window or rfm_kmeans")
@click.option("--horizon", type=click.IntRange(min=1), default=DEFAULT_HORIZON_DAYS,
              show_default=True,
              help="Outcome window of forward_window, in days")
@_run_id_option
def features(as_of: str, label_strategy: str, horizon: int, run_id: str | None) -> None:
    """Build customer_features (and labels, when observable) for a date; print the IV table."""
    day = parse_date(as_of, "--as-of")

    run = _run_id(run_id)
    res = build_for_date(
        day, database_url=get_settings().require_database_url(), run_id=run,
        label_strategy=label_strategy, horizon_days=horizon,
    )
    click.echo(
        f"features as of {res['as_of']}: {res['customers']} customers from "
        f"{res['transactions']} transactions (run {run})"
    )
    if res["label_note"]:
        click.echo(str(res["label_note"]))
        return
    click.echo(f"labels ({label_strategy}): {res['labels']}, bad rate {res['bad_rate']:.1%}")
    click.echo(f"{'feature':28} {'IV':>8}  strength")
    for row in res["iv"]:  # type: ignore[attr-defined]
        click.echo(f"{row['feature']:28} {row['iv']:8.4f}  {row['strength']}")


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
    res = run_training(
        day, database_url=settings.require_database_url(),
        tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name,
        run_id=run, promote=promote, config=load_config(config),
    )
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
@click.option("--version", "version", required=True, help="Registered model version")
@click.option("--by", "decided_by", default=None, help="Who promotes (default: $USER)")
def promote(version: str, decided_by: str | None) -> None:
    """Move the champion alias to a version by hand, and log it."""

    settings = get_settings()
    res = promote_version(
        database_url=settings.require_database_url(), tracking_uri=settings.mlflow_tracking_uri,
        model_name=settings.model_name, version=version,
        decided_by=decided_by or f"cli:{os.environ.get('USER', 'unknown')}",
    )
    click.echo(f"{res['model_name']}: champion is now version {res['version']} "
               f"(was {res['previous_champion'] or 'none'})")


@app.command("score")
@click.option("--date", "date_", required=True, help="Score date: features as of it (YYYY-MM-DD)")
@click.option("--alias", default=None, help="Registry alias to score with (default: settings)")
@click.option("--chunk-customers", type=click.IntRange(min=1), default=None,
              help="Customers per chunk (default: policy.yaml)")
@_run_id_option
def score(date_: str, alias: str | None, chunk_customers: int | None, run_id: str | None) -> None:
    """Score every customer of a date with the champion into risk_scores."""
    day = parse_date(date_, "--date")

    settings = get_settings()
    run = _run_id(run_id)
    res = score_date(
        day, database_url=settings.require_database_url(),
        tracking_uri=settings.mlflow_tracking_uri, model_name=settings.model_name,
        alias=alias or settings.model_alias, run_id=run, chunk_customers=chunk_customers,
    )
    click.echo(
        f"scored {res['published']} customers for {res['score_date']} with "
        f"{settings.model_name} v{res['model_version']} (run {run}); mean PD "
        + (f"{res['mean_pd']:.4f}" if res["mean_pd"] is not None
           else "none (nobody in the scoring population)")
        + f", score PSI {res['psi_score']}"
        + (" — PSI ALERT, see score_monitoring" if res["psi_alert"] else "")
    )


@app.command("catalogue")
def catalogue() -> None:
    """Print the feature catalogue as markdown (name, meaning, unit)."""

    click.echo(catalogue_markdown())


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

"""Backtest of the PD on real outcomes: matured loans per risk band, and vintages.

For a check date ``D``, every loan whose outcome window (term + grace) closed before
``D`` is *matured*; per model version and risk band at issue (each version's PDs are
judged on the loans it decided), its realized bad rate (bad = 30+ days past
due within term + grace, :func:`loan_performance` in the warehouse) gets a Jeffreys
interval (:func:`creditrisk.evaluation.reliability.jeffreys_interval`), and the band is
*within* when the mean PD at issue of the same loans lies inside it. A band outside its
interval posts one ``backtest_band`` alert per check. Rows go to ``outcome_backtest``;
vintages (cumulative bad rate by issue month and month on book) are the SQL function
``loan_vintages(D)``. :func:`write_report` renders both as plots and CSV tables (what
``creditrisk.tasks`` logs as the check's MLflow run).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk import alerts
from creditrisk.evaluation.reliability import jeffreys_interval
from creditrisk.storage import loans as store
from creditrisk.storage.db import check_connection, make_engine

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def band_backtest(performance: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per model version and risk band at issue, the matured loans' realized bad rate, its
    interval and their mean PD at issue.

    Args:
        performance: ``loan_performance`` rows (``risk_band``, ``matured``, ``bad``,
            ``pd_at_issue``, ``exploration``).
        level: Coverage of the Jeffreys interval.

    Returns:
        One row per (version, band) with matured loans: the columns of ``outcome_backtest``.
    """
    import pandas as pd

    cols = ["model_version", "risk_band", "loans", "bad", "realized_bad_rate", "mean_pd",
            "interval_lo", "interval_hi", "within_interval", "exploration_loans"]
    matured = performance[performance["matured"].astype(bool)
                          & performance["risk_band"].notna()]
    if matured.empty:
        return pd.DataFrame(columns=cols)
    g = matured.assign(bad=matured["bad"].astype(bool),
                       exploration=matured["exploration"].astype(bool),
                       model_version=matured["model_version"].fillna("none").astype(str),
                       ).groupby(["model_version", "risk_band"])
    table = pd.DataFrame({
        "loans": g.size(), "bad": g["bad"].sum().astype(int),
        "mean_pd": g["pd_at_issue"].mean(), "exploration_loans": g["exploration"].sum(),
    }).reset_index()
    table["realized_bad_rate"] = table["bad"] / table["loans"]
    lo, hi = jeffreys_interval(table["bad"].to_numpy(), table["loans"].to_numpy(), level)
    table["interval_lo"], table["interval_hi"] = lo, hi
    within = (table["mean_pd"] >= lo) & (table["mean_pd"] <= hi)
    table["within_interval"] = within.astype(object).where(table["mean_pd"].notna(), None)
    return table[cols]


def run_backtest(as_of: dt.date, *, database_url: str, run_id: str, grace_days: int = 30,
                 charge_off_days: int = 90, bad_dpd: int = 30) -> dict[str, Any]:
    """Write ``as_of``'s ``outcome_backtest`` rows; alert on bands outside their interval.

    Returns:
        Plain values: loans, matured loans, each band's row, and the bands outside.
    """
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        perf = store.read_performance(engine, as_of, grace_days=grace_days,
                                      charge_off_days=charge_off_days, bad_dpd=bad_dpd)
        table = band_backtest(perf)
        store.replace_backtest(engine, as_of, table, run_id)
    finally:
        engine.dispose()
    rows = [{k: _plain(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
    outside = [r for r in rows if r["within_interval"] is False]
    if outside:
        alerts.send(alerts.backtest_out_of_interval(as_of=as_of.isoformat(), bands=outside,
                                                    run_id=run_id))
    matured = int(perf["matured"].astype(bool).sum()) if len(perf) else 0
    log.info("backtest %s: %d loans, %d matured, %d/%d bands within their interval", as_of,
             len(perf), matured, sum(r["within_interval"] is True for r in rows), len(rows))
    return {"as_of": as_of.isoformat(), "loans": len(perf), "matured": matured,
            "bands": rows, "outside": [f"v{r['model_version']} {r['risk_band']}" for r in outside]}


def backtest_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The check's headline numbers from :func:`run_backtest`'s result: bands within and
    outside their interval, bands without a mean PD, matured loans and loans."""
    bands = result["bands"]
    return {
        "bands": float(len(bands)),
        "bands_within": float(sum(b["within_interval"] is True for b in bands)),
        "bands_outside": float(sum(b["within_interval"] is False for b in bands)),
        "matured_loans": float(result["matured"]),
        "loans": float(result["loans"]),
    }


def write_report(result: dict[str, Any], out_dir: Path, *, database_url: str,
                 grace_days: int = 30, bad_dpd: int = 30) -> list[Path]:
    """Write the check's report into ``out_dir``: the plots of
    :func:`creditrisk.evaluation.plots.backtest_plots`, ``backtest_bands.csv`` (the
    ``outcome_backtest`` rows of :func:`run_backtest`'s result), ``vintages.csv``
    (``loan_vintages`` as of the same date) and ``swap_set_outcomes.csv`` (the realized
    bad rate of every champion/challenger swap-set cell, ``swap_set_outcomes``).

    Returns:
        The PNGs, then the CSVs.
    """
    import pandas as pd

    from creditrisk.evaluation.plots import backtest_plots

    as_of = dt.date.fromisoformat(result["as_of"])
    engine = make_engine(database_url)
    try:
        vintages = store.read_vintages(engine, as_of, grace_days=grace_days, bad_dpd=bad_dpd)
        swaps = store.read_swap_set_outcomes(engine, as_of, grace_days=grace_days,
                                             bad_dpd=bad_dpd)
    finally:
        engine.dispose()
    table = pd.DataFrame(result["bands"], columns=list(store.BACKTEST_COLUMNS))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = backtest_plots(table, vintages, out_dir)
    for name, frame in (("backtest_bands.csv", table), ("vintages.csv", vintages),
                        ("swap_set_outcomes.csv", swaps)):
        frame.assign(as_of_date=as_of.isoformat())[["as_of_date", *frame.columns]].to_csv(
            out_dir / name, index=False)
        written.append(out_dir / name)
    return written


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one, NaN as None (JSON and XCom friendly)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value

"""Evaluation plots written as PNG artifacts of a candidate run (ROC, PR, calibration, KS, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from creditrisk.evaluation.metrics import (
    ECE_BINS,
    both_classes,
    expected_calibration_error,
    label_probability_pair,
    reliability_table,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]

#: probabilities are clipped to [EPS_LOG_LOSS, 1 - EPS_LOG_LOSS] for the log loss


TOP_FEATURES = 20


DPI = 100


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    # The object-oriented API renders through Agg on savefig and never touches pyplot's
    # global state or the process-wide backend, so it is safe in Airflow workers.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _save(fig: Figure, path: Path, written: list[Path]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.clear()
    written.append(path)


def _one_class_note(ax: Axes) -> None:
    ax.text(0.5, 0.5, "undefined: the sample has one class", ha="center", va="center",
            transform=ax.transAxes)


def _plot_roc(ax: Axes, y: IntArray, p: FloatArray) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    if both_classes(y):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color="C0", label=f"AUC = {roc_auc_score(y, p):.3f}")
        ax.legend(loc="lower right")
    else:
        _one_class_note(ax)
    ax.set(xlabel="False positive rate (goods flagged)", ylabel="True positive rate (bads caught)",
           title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))


def _plot_pr(ax: Axes, y: IntArray, p: FloatArray) -> None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if both_classes(y):
        precision, recall, _ = precision_recall_curve(y, p)
        ax.step(recall, precision, where="post", color="C0",
                label=f"AP = {average_precision_score(y, p):.3f}")
        ax.axhline(y.mean(), ls="--", color="grey", lw=1, label=f"bad rate = {y.mean():.3f}")
        ax.legend(loc="upper right")
    else:
        _one_class_note(ax)
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall (bad = positive)",
           xlim=(0, 1), ylim=(0, 1.01))


def _plot_calibration(fig: Figure, y: IntArray, p: FloatArray) -> None:
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    table = reliability_table(y, p, ECE_BINS)
    top.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    top.plot(table["mean_pd"], table["bad_rate"], marker="o", color="C0",
             label=f"model (ECE = {expected_calibration_error(y, p):.3f})")
    top.set(ylabel="Observed bad rate", title="Reliability diagram", ylim=(0, 1.01))
    top.legend(loc="upper left")
    bottom.hist(p, bins=np.linspace(0, 1, ECE_BINS + 1).tolist(), color="C0", alpha=0.7)
    bottom.set(xlabel="Predicted PD", ylabel="Rows", xlim=(0, 1))


def _plot_ks(ax: Axes, y: IntArray, p: FloatArray) -> None:
    if not both_classes(y):
        _one_class_note(ax)
        ax.set(title="KS")
        return
    grid = np.unique(p)
    bad, good = np.sort(p[y == 1]), np.sort(p[y == 0])
    cdf_bad = np.searchsorted(bad, grid, side="right") / len(bad)
    cdf_good = np.searchsorted(good, grid, side="right") / len(good)
    i = int(np.argmax(np.abs(cdf_bad - cdf_good)))
    ax.step(grid, cdf_bad, where="post", color="C3", label="bads")
    ax.step(grid, cdf_good, where="post", color="C2", label="goods")
    ax.vlines(grid[i], min(cdf_bad[i], cdf_good[i]), max(cdf_bad[i], cdf_good[i]),
              color="black", lw=2, label=f"KS = {abs(cdf_bad[i] - cdf_good[i]):.3f}")
    ax.set(xlabel="Predicted PD", ylabel="Cumulative share", ylim=(0, 1.01),
           title=f"KS: cumulative distributions (max gap at PD {grid[i]:.3f})")
    ax.legend(loc="lower right")


def _plot_distribution(ax: Axes, y: IntArray, p: FloatArray, threshold: float) -> None:
    edges = np.linspace(0, 1, 31).tolist()
    for label, colour, mask in (("goods", "C2", y == 0), ("bads", "C3", y == 1)):
        if mask.any():
            ax.hist(p[mask], bins=edges, density=True, alpha=0.5, color=colour,
                    label=f"{label} (n={int(mask.sum())})")
    ax.axvline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="Predicted PD", ylabel="Density", title="PD distribution by class", xlim=(0, 1))
    ax.legend(loc="upper right")


def _plot_confusion(ax: Axes, y: IntArray, p: FloatArray, threshold: float) -> None:
    flagged = (p >= threshold).astype(np.int_)
    matrix = np.zeros((2, 2), dtype=np.int_)
    np.add.at(matrix, (y, flagged), 1)
    ax.imshow(matrix, cmap="Blues")
    peak = matrix.max() or 1
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > peak / 2 else "black")
    ax.set_xticks([0, 1], ["predicted good", "predicted bad"])
    ax.set_yticks([0, 1], ["actual good", "actual bad"])
    ax.set_title(f"Confusion matrix at PD >= {threshold:.3f}")


def _plot_importance(ax: Axes, importance: pd.Series, kind: str) -> None:
    values = importance.astype(float).dropna()
    top = values.reindex(values.abs().sort_values(ascending=False).index[:TOP_FEATURES])[::-1]
    colours = ["C3" if v > 0 else "C0" for v in top.to_numpy()]
    ax.barh([str(i) for i in top.index], top.to_numpy(), color=colours)
    ax.axvline(0, color="grey", lw=1)
    ax.set(xlabel=kind, title=f"Feature importance ({kind}), top {len(top)}")


def _plot_shap(fig: Figure, shap_values: pd.DataFrame,
               feature_values: pd.DataFrame | None) -> None:
    contrib = shap_values.astype(float)
    mean_abs = contrib.abs().mean().sort_values(ascending=False).iloc[:TOP_FEATURES][::-1]
    names = list(mean_abs.index)
    bar_ax, strip_ax = fig.subplots(1, 2, sharey=True)
    bar_ax.barh([str(n) for n in names], mean_abs.to_numpy(), color="C0")
    bar_ax.set(xlabel="mean |contribution|", title="Mean absolute contribution")
    rng = np.random.default_rng(0)
    rows = np.arange(len(contrib))
    if len(rows) > 2000:
        rows = np.sort(rng.choice(len(rows), size=2000, replace=False))
    values = feature_values if feature_values is not None and len(feature_values) == len(
        contrib) else None
    scatter = None
    for k, name in enumerate(names):
        x = contrib[name].to_numpy()[rows]
        jitter = k + rng.uniform(-0.3, 0.3, size=len(x))
        if values is not None and name in values.columns:
            raw = pd.Series(values[name].to_numpy(dtype=np.float64)[rows])
            colour = raw.rank(pct=True).fillna(0.5).to_numpy()
            scatter = strip_ax.scatter(x, jitter, c=colour, cmap="coolwarm", vmin=0, vmax=1,
                                       s=4, alpha=0.6, linewidths=0)
        else:
            strip_ax.scatter(x, jitter, color="C0", s=4, alpha=0.4, linewidths=0)
    strip_ax.axvline(0, color="grey", lw=1)
    strip_ax.set(xlabel="contribution (model output units)", title="Per-row contributions")
    if scatter is not None:
        fig.colorbar(scatter, ax=strip_ax, label="feature value (percentile)")


def plot_artifacts(
    y_true: npt.ArrayLike,
    pd_: npt.ArrayLike,
    out_dir: Path,
    *,
    threshold: float,
    importance: pd.Series | None = None,
    importance_kind: str = "importance",
    shap_values: pd.DataFrame | None = None,
    feature_values: pd.DataFrame | None = None,
) -> list[Path]:
    """Write the evaluation plots a reviewer wants as PNGs (dpi 100) into ``out_dir``.

    Always: ``roc.png``, ``precision_recall.png``, ``calibration.png`` (reliability
    diagram over 10 equal-width bins, with the PD histogram), ``ks.png`` (cumulative PD
    distributions of bads and goods, the KS gap marked), ``score_distribution.png``
    (PD histograms by class) and ``confusion_matrix.png`` (at ``threshold``). With
    ``importance``: ``feature_importance.png`` (top 20 by absolute value, signed).
    With ``shap_values``: ``shap_summary.png`` (mean |contribution| of the top 20
    features and a strip of per-row contributions, coloured by the feature's value
    percentile when ``feature_values`` is given). Curves that need both classes show
    a note instead when ``y_true`` has one.

    Args:
        y_true: 1/True for bad.
        pd_: Probabilities of default in [0, 1].
        out_dir: Directory to write into (created if missing).
        threshold: The decision threshold (predicted bad when ``pd_ >= threshold``).
        importance: Importance per feature (index = feature name), e.g. coefficients.
        importance_kind: What the importance is ("coefficient", "gain", "impurity"),
            used in the title and axis label.
        shap_values: Per-row contributions, rows × features (e.g. XGBoost
            ``pred_contribs`` or coefficient × standardised value), without the bias.
        feature_values: The feature values of the same rows, aligned by position with
            ``shap_values``; used only to colour the strip (ignored if lengths differ).

    Returns:
        The paths written, in the order above.
    """
    y, p = label_probability_pair(y_true, pd_)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    fig = _figure()
    _plot_roc(fig.subplots(), y, p)
    _save(fig, out_dir / "roc.png", written)

    fig = _figure()
    _plot_pr(fig.subplots(), y, p)
    _save(fig, out_dir / "precision_recall.png", written)

    fig = _figure(5.0, 5.0)
    _plot_calibration(fig, y, p)
    _save(fig, out_dir / "calibration.png", written)

    fig = _figure(6.0, 4.0)
    _plot_ks(fig.subplots(), y, p)
    _save(fig, out_dir / "ks.png", written)

    fig = _figure(6.0, 4.0)
    _plot_distribution(fig.subplots(), y, p, threshold)
    _save(fig, out_dir / "score_distribution.png", written)

    fig = _figure(4.5, 4.0)
    _plot_confusion(fig.subplots(), y, p, threshold)
    _save(fig, out_dir / "confusion_matrix.png", written)

    if importance is not None and len(importance.dropna()):
        fig = _figure(6.0, 6.0)
        _plot_importance(fig.subplots(), importance, importance_kind)
        _save(fig, out_dir / "feature_importance.png", written)

    if shap_values is not None and shap_values.shape[0] and shap_values.shape[1]:
        fig = _figure(11.0, 6.0)
        _plot_shap(fig, shap_values, feature_values)
        _save(fig, out_dir / "shap_summary.png", written)
    return written


# ----------------------------------------------------------------------------- backtest


def _no_rows_note(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", transform=ax.transAxes)


def _plot_backtest_bands(ax: Axes, table: pd.DataFrame) -> None:
    """Per band (x) and model version (offset, colour): realized bad rate with its
    Jeffreys interval (error bar) and the mean PD at issue (cross)."""
    if table.empty:
        _no_rows_note(ax, "matured loans")
        return
    bands = sorted(table["risk_band"].astype(str).unique())
    versions = sorted(table["model_version"].astype(str).unique(),
                      key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    width = 0.6 / max(len(versions), 1)
    for i, version in enumerate(versions):
        rows = table[table["model_version"].astype(str) == version]
        x = np.array([bands.index(str(b)) for b in rows["risk_band"]], dtype=float)
        x += (i - (len(versions) - 1) / 2) * width
        rate = rows["realized_bad_rate"].astype(float).to_numpy()
        err = np.vstack([rate - rows["interval_lo"].astype(float).to_numpy(),
                         rows["interval_hi"].astype(float).to_numpy() - rate])
        color = f"C{i % 10}"
        ax.errorbar(x, rate, yerr=np.clip(err, 0, None), fmt="o", color=color, capsize=4,
                    label=f"v{version} realized (Jeffreys)")
        ax.scatter(x, rows["mean_pd"].astype(float), marker="x", s=60, color=color,
                   label=f"v{version} mean PD at issue")
    ax.set_xticks(range(len(bands)), bands)
    ax.set(xlabel="risk band at issue", ylabel="bad rate", ylim=(0, None),
           xlim=(-0.5, len(bands) - 0.5),
           title="Matured loans: realized bad rate vs mean PD at issue")
    ax.legend(fontsize="small")


def _plot_vintages(ax: Axes, vintages: pd.DataFrame) -> None:
    """One line per issue month: cumulative bad rate by month on book."""
    from matplotlib.ticker import MaxNLocator

    if vintages.empty:
        _no_rows_note(ax, "vintages")
        return
    for month, rows in vintages.groupby("issue_month", sort=True):
        label = pd.Timestamp(month).strftime("%Y-%m")
        ax.plot(rows["months_on_book"], rows["cumulative_bad_rate"].astype(float),
                marker="o", label=f"{label} ({int(rows['loans'].max())} loans)")
    ax.set(xlabel="months on book", ylabel="cumulative bad rate", ylim=(0, None),
           title="Vintages: cumulative bad rate by issue month")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small", title="issue month")


def backtest_plots(table: pd.DataFrame, vintages: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the backtest's PNGs (dpi 100) into ``out_dir``: ``backtest_bands.png`` (per
    band and model version, the realized bad rate of the matured loans with its Jeffreys
    interval against their mean PD at issue) and ``vintages.png`` (per issue month, the
    cumulative bad rate by month on book). An empty table shows a note.

    Args:
        table: ``outcome_backtest`` rows (``model_version``, ``risk_band``,
            ``realized_bad_rate``, ``interval_lo``, ``interval_hi``, ``mean_pd``).
        vintages: ``loan_vintages`` rows (``issue_month``, ``months_on_book``, ``loans``,
            ``cumulative_bad_rate``).
        out_dir: Directory to write into (created if missing).

    Returns:
        The paths written, in the order above.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fig = _figure(7.0, 4.5)
    _plot_backtest_bands(fig.subplots(), table)
    _save(fig, out_dir / "backtest_bands.png", written)
    fig = _figure(7.0, 4.5)
    _plot_vintages(fig.subplots(), vintages)
    _save(fig, out_dir / "vintages.png", written)
    return written

"""Information Value and Weight of Evidence of each feature against a label."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Conventional reading of IV in credit scoring.
IV_STRENGTH = ((0.02, "useless"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong"))


def strength(iv: float) -> str:
    """Conventional strength label of an Information Value."""
    for bound, name in IV_STRENGTH:
        if iv < bound:
            return name
    return "suspicious (check for leakage)"


def woe_table(feature: pd.Series, bad: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Weight of Evidence per quantile bin of one feature.

    Args:
        feature: Numeric values, indexed like ``bad``.
        bad: Boolean label (True = bad).
        bins: Largest number of quantile bins (ties merge bins).

    Returns:
        One row per bin: bin, count, bad, good, woe, iv contribution. WoE is
        ln(share of goods / share of bads), with 0.5 added to empty cells.
    """
    import numpy as np
    import pandas as pd

    x = feature.astype("float64")
    y = bad.reindex(x.index).astype(bool)
    if x.nunique(dropna=True) <= bins:
        bin_id = x.rank(method="dense").astype("int64")
    else:
        bin_id = pd.qcut(x.rank(method="first"), q=bins, labels=False).astype("int64")
    grouped = pd.DataFrame({"bin_id": bin_id, "x": x, "bad": y}).groupby("bin_id", sort=True)
    table = pd.DataFrame({
        "bin": [f"[{lo:.4g}, {hi:.4g}]" for lo, hi in zip(
            grouped["x"].min(), grouped["x"].max(), strict=True)],
        "count": grouped.size(),
        "bad": grouped["bad"].sum(),
    })
    table["good"] = table["count"] - table["bad"]
    total_bad, total_good = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    share_good = (table["good"] + 0.5) / total_good
    share_bad = (table["bad"] + 0.5) / total_bad
    table["woe"] = np.log(share_good / share_bad)
    table["iv"] = (share_good - share_bad) * table["woe"]
    return table.reset_index(drop=True)


def iv_table(features: pd.DataFrame, bad: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Information Value of every feature, strongest first."""
    import pandas as pd

    rows = []
    for name in features.columns:
        woe = woe_table(features[name], bad, bins)
        iv = float(woe["iv"].sum())
        rows.append({"feature": name, "iv": round(iv, 4), "strength": strength(iv),
                     "bins": len(woe)})
    return pd.DataFrame(rows).sort_values("iv", ascending=False).reset_index(drop=True)

"""Is a PD a probability? Calibration in the large, by PD decile and by risk band.

Each group's realised bad rate gets a Jeffreys interval (the Beta(k + 1/2, n - k + 1/2)
posterior's central 95%), the interval credit-risk backtests use for default rates: a
group whose mean PD lies outside its interval is miscalibrated beyond sampling noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


def jeffreys_interval(bad: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[Any, Any]:
    """Lower and upper Jeffreys bounds of ``bad / n`` (0 and 1 at the edges)."""
    import numpy as np
    from scipy.stats import beta

    a = (1 - level) / 2
    bad, n = np.asarray(bad, dtype=float), np.asarray(n, dtype=float)
    lo = np.where(bad > 0, beta.ppf(a, bad + 0.5, n - bad + 0.5), 0.0)
    hi = np.where(bad < n, beta.ppf(1 - a, bad + 0.5, n - bad + 0.5), 1.0)
    return lo, hi


def calibration_table(y: npt.ArrayLike, p: npt.ArrayLike, groups: npt.ArrayLike) -> pd.DataFrame:
    """Per group: rows, bads, bad rate, mean PD, the Jeffreys interval, and whether the
    mean PD lies inside it."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"g": np.asarray(groups), "y": np.asarray(y, dtype=float),
                          "p": np.asarray(p, dtype=float)})
    agg = frame.groupby("g", sort=True).agg(n=("y", "size"), bad=("y", "sum"),
                                            mean_pd=("p", "mean"))
    lo, hi = jeffreys_interval(agg["bad"].to_numpy(), agg["n"].to_numpy())
    agg["bad_rate"] = agg["bad"] / agg["n"]
    agg["bad_rate_lo"], agg["bad_rate_hi"] = lo, hi
    agg["inside"] = (agg["mean_pd"] >= lo) & (agg["mean_pd"] <= hi)
    return agg.reset_index().rename(columns={"g": "group"})


def by_decile(y: npt.ArrayLike, p: npt.ArrayLike) -> pd.DataFrame:
    """:func:`calibration_table` over PD deciles (equal-count, ties kept together)."""
    import pandas as pd

    deciles = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False)
    return calibration_table(y, p, deciles.to_numpy())


def in_the_large(y: npt.ArrayLike, p: npt.ArrayLike) -> dict[str, float]:
    """Mean PD against the bad rate, and their gap."""
    import numpy as np

    yy, pp = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {"mean_pd": float(pp.mean()), "bad_rate": float(yy.mean()),
            "gap": float(pp.mean() - yy.mean())}

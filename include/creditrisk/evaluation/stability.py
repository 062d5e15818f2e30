"""The one population stability index (PSI) of the platform.

Training (candidate stability, the model card) and nightly monitoring (each scored day
against the champion's training reference) both bin here, the same way:

* inner edges are the quantiles of the reference sample, duplicates merged;
* bins are closed on the right, ``(lower, upper]``, with open outer edges, so a value
  tied with an edge (a mass point such as the 0 of a mostly-zero feature) falls in the
  bin that ends at it: "0" and "above 0" stay apart, and a feature going from 0.5% to
  20% non-zero is a large shift, not none;
* a constant reference gets three bins: below, at and above its value;
* empty bins get :data:`EPSILON` so the logarithm stays finite; missing values are dropped.

Read as: < 0.1 stable, 0.1-0.25 a moderate shift, > 0.25 a significant shift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

BINS = 10
EPSILON = 1e-4


def _finite(values: npt.ArrayLike) -> np.ndarray:
    import numpy as np

    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def reference_edges(reference: npt.ArrayLike, bins: int = BINS) -> np.ndarray:
    """Inner bin edges of ``reference``: its quantiles, merged; three bins if constant."""
    import numpy as np

    if bins < 1:
        raise InputError("psi needs at least one bin")
    e = _finite(reference)
    if not len(e):
        return np.array([], dtype=np.float64)
    if e.min() == e.max():
        return np.array([np.nextafter(e[0], -np.inf), e[0]])
    return np.unique(np.quantile(e, np.linspace(0, 1, bins + 1))[1:-1])


def bin_counts(values: npt.ArrayLike, edges: npt.ArrayLike) -> np.ndarray:
    """Counts of ``values`` in the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    import numpy as np

    inner = np.asarray(edges, dtype=np.float64)
    v = _finite(values)
    return np.bincount(np.searchsorted(inner, v, side="left"), minlength=len(inner) + 1)


def reference_bins(values: npt.ArrayLike, bins: int = BINS) -> dict[str, list[float]]:
    """What a training run stores for later monitoring: edges and shares, no rows."""
    edges = reference_edges(values, bins)
    counts = bin_counts(values, edges)
    total = max(int(counts.sum()), 1)
    return {"edges": [float(x) for x in edges], "shares": [float(c) / total for c in counts]}


def _psi_terms(expected_share: np.ndarray, actual_share: np.ndarray) -> np.ndarray:
    import numpy as np

    e = np.maximum(expected_share, EPSILON)
    a = np.maximum(actual_share, EPSILON)
    return (a - e) * np.log(a / e)


def psi_against(reference: dict[str, list[float]], actual: npt.ArrayLike) -> float:
    """PSI of ``actual`` against a stored :func:`reference_bins`; NaN if ``actual`` is empty."""
    return psi_of_counts(reference, bin_counts(actual, reference["edges"]))


def psi_of_counts(reference: dict[str, list[float]], counts: npt.ArrayLike) -> float:
    """PSI of binned counts (:func:`bin_counts` on the reference's edges, possibly summed
    over chunks of a day) against the reference's shares; NaN if there are none."""
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    if not c.sum():
        return float("nan")
    expected = np.asarray(reference["shares"], dtype=np.float64)
    return float(np.sum(_psi_terms(expected, c / c.sum())))


def psi_table(expected: npt.ArrayLike, actual: npt.ArrayLike, bins: int = BINS) -> pd.DataFrame:
    """Per-bin stability table of ``actual`` against ``expected``.

    Returns:
        One row per bin: ``lower``, ``upper``, ``expected_count``, ``actual_count``,
        ``expected_share``, ``actual_share`` (empty bins floored at :data:`EPSILON`) and
        ``psi``, that bin's ``(actual - expected) * ln(actual / expected)``.

    Raises:
        InputError: ``bins`` < 1 or an empty sample.
    """
    import numpy as np
    import pandas as pd

    if not len(_finite(expected)) or not len(_finite(actual)):
        raise InputError("psi needs non-empty expected and actual samples")
    inner = reference_edges(expected, bins)
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    e_count, a_count = bin_counts(expected, inner), bin_counts(actual, inner)
    e_share = np.maximum(e_count / e_count.sum(), EPSILON)
    a_share = np.maximum(a_count / a_count.sum(), EPSILON)
    return pd.DataFrame({
        "lower": edges[:-1], "upper": edges[1:],
        "expected_count": e_count, "actual_count": a_count,
        "expected_share": e_share, "actual_share": a_share,
        "psi": _psi_terms(e_share, a_share),
    })


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike, bins: int = BINS) -> float:
    """Population stability index of ``actual`` against ``expected`` (>= 0)."""
    return float(psi_table(expected, actual, bins)["psi"].sum())


def psi_by_column(reference: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
    """PSI of each column of ``frame`` that has a stored reference."""
    return {c: psi_against(ref, frame[c].to_numpy()) for c, ref in reference.items() if c in frame}


def reference_distribution(features: pd.DataFrame, pd_: np.ndarray) -> dict[str, Any]:
    """Bins and shares of the PD and of every feature on the training rows."""
    return {"pd": reference_bins(pd_),
            "features": {c: reference_bins(features[c].to_numpy()) for c in features}}

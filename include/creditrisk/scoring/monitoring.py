"""Score monitoring: distributions against the champion's training reference (PSI).

Training logs ``reference.json`` with each feature's and the PD's decile edges and
training shares (binned counts, no customer rows); scoring compares a day's customers
with it bin by bin, with the one PSI of :mod:`creditrisk.evaluation.stability`.

Everything monitoring needs is a count or an exact sum, so each scoring chunk reduces
its customers to :func:`chunk_stats` (a few hundred numbers) and publish adds the
chunks up (:func:`combine`) instead of reading the day back: memory stays bounded by a
chunk, and the result does not depend on how the day was chunked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditrisk.evaluation.stability import (  # psi_against, psi_by_column: re-exported
    bin_counts,
    psi_against,
    psi_by_column,
    psi_of_counts,
)

__all__ = ["chunk_stats", "combine", "monitoring_row", "psi_against", "psi_by_column"]

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: PDs are stored rounded to 8 decimals: summed as integers of 1e-8, the day's sum is exact.
PD_UNITS = 10**8


def chunk_stats(
    pd_: np.ndarray, bands: np.ndarray, decisions: np.ndarray, features: pd.DataFrame,
    reference: dict[str, Any] | None,
) -> dict[str, Any]:
    """The counts of one chunk's scored customers: n, PD sum, bands, decisions, bins."""
    import numpy as np
    import pandas as pd

    p = np.asarray(pd_, dtype=np.float64)
    stats: dict[str, Any] = {
        "n": len(p),
        "pd_units": int(np.rint(p * PD_UNITS).astype(np.int64).sum()) if len(p) else 0,
        "bands": {str(k): int(v) for k, v in pd.Series(bands).value_counts().items()},
        "decisions": {str(k): int(v) for k, v in pd.Series(decisions).value_counts().items()},
        "pd_bins": None,
        "feature_bins": {},
    }
    if reference:
        stats["pd_bins"] = bin_counts(p, reference["pd"]["edges"]).tolist()
        stats["feature_bins"] = {
            c: bin_counts(features[c].to_numpy(), ref["edges"]).tolist()
            for c, ref in reference["features"].items() if c in features
        }
    return stats


def _add(total: dict[str, int], part: dict[str, int]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + int(v)


def combine(
    chunks: list[dict[str, Any]], reference: dict[str, Any] | None, threshold: float,
) -> dict[str, Any]:
    """The day's monitoring row from its chunks' :func:`chunk_stats`."""
    import numpy as np

    n = sum(int(c["n"]) for c in chunks)
    bands: dict[str, int] = {}
    decisions: dict[str, int] = {}
    for c in chunks:
        _add(bands, c["bands"])
        _add(decisions, c["decisions"])
    row: dict[str, Any] = {
        "n_scored": n,
        "mean_pd": sum(int(c["pd_units"]) for c in chunks) / PD_UNITS / n if n else float("nan"),
        "band_shares": _shares(bands, n),
        "decision_shares": _shares(decisions, n),
        "psi_score": None,
        "psi_features": {},
    }
    if reference:
        pd_bins = np.sum([c["pd_bins"] for c in chunks], axis=0) if chunks else []
        row["psi_score"] = _finite(psi_of_counts(reference["pd"], pd_bins))
        row["psi_features"] = {
            col: _finite(psi_of_counts(ref, np.sum([c["feature_bins"][col] for c in chunks],
                                                   axis=0) if chunks else []))
            for col, ref in reference["features"].items()
            if chunks and col in chunks[0]["feature_bins"]
        }
    values = [row["psi_score"], *row["psi_features"].values()]
    row["psi_alert"] = bool(any(v > threshold for v in values if v is not None))
    return row


def _shares(counts: dict[str, int], n: int) -> dict[str, float]:
    """Shares, largest first (ties by name): the order value_counts gave."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {k: round(v / n, 6) for k, v in ordered} if n else {}


def monitoring_row(
    pd_: np.ndarray, bands: np.ndarray, decisions: np.ndarray, features: pd.DataFrame,
    reference: dict[str, Any] | None, threshold: float,
) -> dict[str, Any]:
    """Counts, mean PD, band and decision shares, PSI of the PD and every feature."""
    return combine([chunk_stats(pd_, bands, decisions, features, reference)], reference,
                   threshold)


def _finite(value: float) -> float | None:
    """A PSI for JSON: rounded, or None when undefined (no customer in the population)."""
    import math

    return round(value, 6) if math.isfinite(value) else None

"""Proxy default labels, behind a pluggable strategy.

Nobody has repaid or defaulted yet: the data has no credit outcome. A label strategy
turns behaviour into a proxy "bad" flag per customer and cut-off date ``T``:

* ``forward_window`` (default): the customers with features as of ``T`` are labelled
  from what they do in the *outcome window*, the ``H`` days from ``T`` (UTC days
  ``T .. T+H-1``; features use only days before ``T``). A customer is bad if, in the
  window, they (a) make no customer-initiated purchase (platform credits and fees are
  not the customer's activity, see :func:`creditrisk.schema.purchase_mask`), or (b)
  commit fraud: any transaction with ``FraudResult = 1``. Two older choices stay
  available for the label sensitivity report: counting every row as activity
  (``activity="all"``) and also calling the least engaged K-Means RFM segment of the
  window bad (``kmeans_segment=True``). ``docs/model.md`` says why they are not the default.
* ``rfm_kmeans``: the original brief's method, kept for comparison: RFM of the history
  *before* ``T`` (the very numbers the features are made of), log and scale, K-Means
  (k = 3, random_state 42), least engaged cluster = bad. A model trained on it with
  same-date features learns the clustering back; :func:`check_no_leakage` rejects it.

* ``repayment``: the real outcome, once loans exist (the outcome loop): the customers
  with a loan issued in the ``H`` days from ``T`` (days ``T .. T+H-1``) are labelled
  from how those loans were repaid; a customer is bad if any of them went ``bad_dpd``
  (30) or more days past due within its term plus ``grace_days`` (the warehouse's
  ``loan_performance``). Only matured loans (the window term + grace is closed) count,
  and only customers who borrowed get a label. Training switches to it by itself once
  ``dataset.repayment.min_matured_loans`` loans have matured
  (:func:`creditrisk.model.dataset.build_training_set`).

Every strategy returns the same frame (see :class:`LabelStrategy`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from creditrisk.errors import InputError
from creditrisk.schema import purchase_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_STRATEGY = "forward_window"
#: the label horizon H of the platform: conf/training.yaml and the policy's pd_horizon_days
#: agree with it (a test holds the three together)
DEFAULT_HORIZON_DAYS = 14
DEFAULT_K = 3
RANDOM_STATE = 42


class LeakageError(InputError):
    """A label was computed from data the features at the same cut-off can see."""


@dataclass(frozen=True)
class LabelResult:
    """Labels for one cut-off, and where they came from."""

    #: indexed by customer_id: is_high_risk (bool), window_start, window_end (ISO dates)
    frame: pd.DataFrame
    strategy: str
    #: first day of the data the label was computed from (inclusive)
    source_start: dt.date | None
    #: last day of that data (inclusive)
    source_end: dt.date
    params: dict[str, object]

    @property
    def bad_rate(self) -> float:
        return float(self.frame["is_high_risk"].mean()) if len(self.frame) else float("nan")


class LabelStrategy(Protocol):
    """What every strategy implements; a repayment-outcome strategy would too."""

    name: str
    #: True when the label needs data after the cut-off (so T + horizon must be observed)
    needs_future: bool

    def label(
        self, transactions: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon_days: int
    ) -> LabelResult:
        """Label ``customers`` (those with features at ``as_of``)."""
        ...


def _rfm(tx: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Recency (days before ``end``), frequency (rows) and monetary (sum of debits)."""
    import numpy as np
    import pandas as pd

    ts = pd.to_datetime(tx["transaction_start_time"], utc=True)
    amount = pd.to_numeric(tx["amount"]).to_numpy()
    frame = pd.DataFrame(
        {
            "customer_id": tx["customer_id"].astype("str").to_numpy(),
            "age": ((end - ts).dt.total_seconds() / 86_400.0).to_numpy(),
            "debit": np.where(amount > 0, amount, 0.0),
        }
    )
    g = frame.groupby("customer_id", sort=True)
    return pd.DataFrame(
        {"recency": g["age"].min(), "frequency": g.size(), "monetary": g["debit"].sum()}
    )


def least_engaged_cluster(rfm: pd.DataFrame, k: int = DEFAULT_K) -> np.ndarray:
    """Boolean mask of the customers in the least engaged K-Means cluster of ``rfm``."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    if len(rfm) < k:
        return np.zeros(len(rfm), dtype=bool)
    x = np.log1p(rfm[["recency", "frequency", "monetary"]].clip(lower=0).to_numpy(float))
    z = StandardScaler().fit_transform(x)
    model = KMeans(n_clusters=k, random_state=RANDOM_STATE, n_init=10).fit(z)
    centres = model.cluster_centers_
    engagement = centres[:, 1] + centres[:, 2] - centres[:, 0]
    return np.asarray(model.labels_ == int(np.argmin(engagement)))


class ForwardWindow:
    """Bad = no purchase (or fraud) in the H days from the cut-off; see the module doc."""

    name = "forward_window"
    needs_future = True

    def __init__(self, k: int = DEFAULT_K, *, activity: str = "purchases",
                 kmeans_segment: bool = False) -> None:
        if activity not in ("purchases", "all"):
            raise InputError(f"activity must be 'purchases' or 'all', not {activity!r}")
        self.k, self.activity, self.kmeans_segment = k, activity, kmeans_segment

    def label(
        self, transactions: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon_days: int
    ) -> LabelResult:
        import numpy as np
        import pandas as pd

        start = pd.Timestamp(as_of.isoformat(), tz="UTC")
        end = start + pd.Timedelta(days=horizon_days)
        ts = pd.to_datetime(transactions["transaction_start_time"], utc=True)
        window = transactions.loc[((ts >= start) & (ts < end)).to_numpy()]
        window = window[window["customer_id"].astype("str").isin(customers)]
        fraud = (
            window.assign(f=pd.to_numeric(window["fraud_result"]))
            .groupby(window["customer_id"].astype("str"))["f"].max()
            .reindex(customers, fill_value=0)
            > 0
        ).to_numpy()
        if self.activity == "purchases":
            window = window.loc[purchase_mask(
                pd.to_numeric(window["amount"]).to_numpy(),
                window["provider_id"].astype("str").to_numpy(),
                window["channel_id"].astype("str").to_numpy())]
        rfm = _rfm(window, end)
        active = customers.isin(rfm.index)
        segment = np.zeros(len(customers), dtype=bool)
        if self.kmeans_segment:
            segment = pd.Series(least_engaged_cluster(rfm, self.k), index=rfm.index).reindex(
                customers, fill_value=False).to_numpy()
        bad = (~active) | fraud | segment
        frame = pd.DataFrame(
            {
                "is_high_risk": bad.astype(bool),
                "window_start": as_of.isoformat(),
                "window_end": (as_of + dt.timedelta(days=horizon_days - 1)).isoformat(),
                "silent": ~active,
                "fraud": fraud,
            },
            index=pd.Index(customers, name="customer_id"),
        )
        rules = ["no_purchase" if self.activity == "purchases" else "silent", "fraud"]
        return LabelResult(
            frame=frame, strategy=self.name, source_start=as_of,
            source_end=as_of + dt.timedelta(days=horizon_days - 1),
            params={"horizon_days": horizon_days, "activity": self.activity,
                    "rules": rules + (["least_engaged_rfm_segment"] if self.kmeans_segment
                                      else []),
                    **({"k": self.k, "random_state": RANDOM_STATE} if self.kmeans_segment
                       else {})},
        )


class RfmKMeans:
    """The original brief's label: K-Means on the RFM of the history before the cut-off."""

    name = "rfm_kmeans"
    needs_future = False

    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = k

    def label(
        self, transactions: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon_days: int
    ) -> LabelResult:
        import pandas as pd

        end = pd.Timestamp(as_of.isoformat(), tz="UTC")
        ts = pd.to_datetime(transactions["transaction_start_time"], utc=True)
        history = transactions.loc[(ts < end).to_numpy()]
        rfm = _rfm(history, end).reindex(customers)
        bad = least_engaged_cluster(rfm.fillna(0.0), self.k)
        frame = pd.DataFrame(
            {"is_high_risk": bad, "window_start": None, "window_end": None},
            index=pd.Index(customers, name="customer_id"),
        )
        return LabelResult(
            frame=frame, strategy=self.name, source_start=None,
            source_end=as_of - dt.timedelta(days=1),
            params={"k": self.k, "random_state": RANDOM_STATE, "rfm": "history before as_of"},
        )


class Repayment:
    """Bad = a loan issued in the H days from the cut-off went 30+ days past due within
    its term + grace; see the module doc. Its input is ``loan_performance`` rows, not
    transactions."""

    name = "repayment"
    needs_future = True
    #: label() takes loan_performance rows (storage.loans.read_performance), not transactions
    needs_loans = True

    def __init__(self, grace_days: int = 30, bad_dpd: int = 30) -> None:
        self.grace_days, self.bad_dpd = grace_days, bad_dpd

    def label(
        self, transactions: pd.DataFrame, customers: pd.Index, as_of: dt.date, horizon_days: int
    ) -> LabelResult:
        import pandas as pd

        loans = transactions
        end = as_of + dt.timedelta(days=horizon_days)
        issued = pd.to_datetime(loans["issue_date"]).dt.date
        mask = ((issued >= as_of) & (issued < end) & loans["matured"].astype(bool)
                & loans["customer_id"].isin(customers))
        window = loans[mask.to_numpy()]
        g = window.assign(bad=window["bad"].astype(bool)).groupby("customer_id")
        frame = pd.DataFrame({"is_high_risk": g["bad"].any().astype(bool), "loans": g.size()})
        frame.index = pd.Index(frame.index.astype("str"), name="customer_id")
        frame["window_start"] = as_of.isoformat()
        frame["window_end"] = (end - dt.timedelta(days=1)).isoformat()
        return LabelResult(
            frame=frame[["is_high_risk", "window_start", "window_end", "loans"]],
            strategy=self.name, source_start=as_of,
            source_end=end - dt.timedelta(days=1),
            params={"issue_window_days": horizon_days, "grace_days": self.grace_days,
                    "bad_dpd": self.bad_dpd, "rules": ["bad_dpd_within_term_plus_grace"],
                    "population": "customers with a matured loan issued in the window"},
        )


STRATEGIES: dict[str, type[ForwardWindow] | type[RfmKMeans] | type[Repayment]] = {
    ForwardWindow.name: ForwardWindow,
    RfmKMeans.name: RfmKMeans,
    Repayment.name: Repayment,
}


def get_strategy(name: str) -> LabelStrategy:
    """The strategy registered under ``name``."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise InputError(
            f"unknown label strategy {name!r}; choose one of {sorted(STRATEGIES)}"
        ) from None


def check_no_leakage(as_of: dt.date, label: LabelResult) -> None:
    """Refuse a label computed from any day the features at ``as_of`` can see.

    Features at ``as_of`` use days before ``as_of``; the label's data must start on or
    after ``as_of``. Raises :class:`LeakageError` otherwise.
    """
    if label.source_start is None or label.source_start < as_of:
        raise LeakageError(
            f"label strategy {label.strategy!r} at {as_of} is computed from data up to "
            f"{label.source_end}, which the features as of {as_of} also see: a model "
            "trained on it learns the label's own inputs back (use forward_window)"
        )

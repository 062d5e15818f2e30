"""Behavioural tests of trained models: what a credit officer expects of any PD model.

Trained on the Xente-shaped world (the real per-customer activity of the public file):

- More recent buying never raises the PD of an otherwise identical customer.
- More frequent buying never raises it either.
- A catalogue feature the model does not read never moves its PD (the pipeline selects
  its own columns by name, so a new column in the warehouse cannot leak in).

XGBoost is trained with monotone constraints on purchase recency and the recent
purchase counts, so it must pass outright. The logistic regression has no constraint:
its behaviour follows each coefficient's sign, which the data must give the right way.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from creditrisk.catalogue import FEATURE_NAMES
from creditrisk.features.compute import compute_features
from creditrisk.features.labels import get_strategy
from creditrisk.landing.simulate import generate_transactions
from creditrisk.landing.worlds import to_warehouse
from creditrisk.model.pipeline import base_estimator, make_pipeline, model_columns
from creditrisk.model.train import load_config
from tests.paths import CUSTOMER_SEQUENCE

CFG = load_config()
H = int(CFG["dataset"]["horizon_days"])


@pytest.fixture(scope="module")
def training_rows() -> pd.DataFrame:
    df = generate_transactions(customers=1500, days=90, end_date=dt.date(2019, 2, 13), seed=29,
                               world="xente", sequence_path=CUSTOMER_SEQUENCE)
    tx = to_warehouse(df)
    rows = []
    for as_of in (dt.date(2018, 12, 20), dt.date(2018, 12, 27), dt.date(2019, 1, 3)):
        feats = compute_features(tx, as_of)
        labels = get_strategy("forward_window").label(tx, feats.index, as_of, H).frame
        rows.append(feats.assign(is_high_risk=labels["is_high_risk"], as_of_date=as_of)
                    .reset_index())
    return pd.concat(rows, ignore_index=True)


def _fit(rung: str, rows: pd.DataFrame):  # type: ignore[no-untyped-def]
    spec = CFG["ladder"][rung]
    return make_pipeline(rung, list(spec["columns"]), spec.get("params")).fit(
        rows, rows["is_high_risk"].to_numpy(dtype=int))


def _pd(model, X: pd.DataFrame) -> np.ndarray:  # type: ignore[no-untyped-def]
    return model.predict_proba(X[list(FEATURE_NAMES)])[:, 1]


def _raised(model, base: pd.DataFrame, change: dict[str, float]) -> int:  # type: ignore[no-untyped-def]
    """Customers whose PD rose after a change that should never raise it."""
    more_active = base.copy()
    for feature, delta in change.items():
        more_active[feature] = np.maximum(more_active[feature] + delta, 0.0)
    return int((_pd(model, more_active) > _pd(model, base) + 1e-12).sum())


def _base(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["as_of_date"] == max(rows["as_of_date"])][list(FEATURE_NAMES)].head(400)


def test_more_recent_buying_never_raises_the_xgboost_pd(training_rows: pd.DataFrame) -> None:
    model = _fit("xgboost", training_rows)
    base = _base(training_rows)
    base = base[base["purchase_recency_days"] > 5]
    assert len(base) > 50
    assert _raised(model, base, {"purchase_recency_days": -5.0, "recency_days": -5.0}) == 0


def test_more_frequent_buying_never_raises_the_xgboost_pd(training_rows: pd.DataFrame) -> None:
    model = _fit("xgboost", training_rows)
    assert _raised(model, _base(training_rows), {"purchases_7d": 3.0, "purchases_30d": 5.0,
                                                 "active_days_30d": 3.0}) == 0


def test_logistic_regression_follows_its_coefficients_and_they_point_the_right_way(
    training_rows: pd.DataFrame,
) -> None:
    model = _fit("logistic_regression", training_rows)
    coef = dict(zip(model_columns(model), base_estimator(model).coef_[0], strict=True))
    assert coef["purchase_recency_days"] > 0  # a longer silence raises the PD
    base = _base(training_rows)
    base = base[base["purchase_recency_days"] > 5]
    assert _raised(model, base, {"purchase_recency_days": -5.0}) == 0


def _leaks(model, base: pd.DataFrame, unread: list[str],  # type: ignore[no-untyped-def]
           *, extras: bool = True) -> bool:
    """Whether the PD moves when the ``unread`` columns change (with ``extras``, also the
    customer id and a column the model has never seen, the columns in another order)."""
    if not extras:
        return not np.array_equal(model.predict_proba(base)[:, 1], model.predict_proba(
            base.assign(**{f: base[f] * 10 + 7 for f in unread}))[:, 1])
    frame = base.assign(customer_id=[f"C{i}" for i in range(len(base))], new_column=0.0)
    changed = frame.assign(customer_id=[f"Renamed{i}" for i in range(len(base))],
                           new_column=123.0, **{f: frame[f] * 10 + 7 for f in unread})
    changed = changed[list(reversed(changed.columns))]
    return not np.array_equal(model.predict_proba(frame)[:, 1],
                              model.predict_proba(changed)[:, 1])


def test_features_the_model_does_not_read_never_move_its_pd(
    training_rows: pd.DataFrame,
) -> None:
    """The columns a rung reads are the configured ones, found by name in whatever frame
    the warehouse hands over: changing any other column (a catalogue feature the rung does
    not read, the customer id, a new column) never moves its PD.

    The unread list comes from the training config, not from the fitted model's own
    selector, and the frame is the whole one (not cut to the catalogue first), so a
    pipeline that read by position or passed the rest through would fail: the last
    assertion shows the check catches exactly that.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    base = _base(training_rows)
    for rung in ("logistic_regression", "xgboost"):
        model = _fit(rung, training_rows)
        configured = list(CFG["ladder"][rung]["columns"])
        assert model_columns(model) == configured, rung
        unread = [f for f in FEATURE_NAMES if f not in configured]
        assert "tenure_days" in unread and "frequency" in unread  # cumulative: left out
        assert not _leaks(model, base, unread), rung
        # and the PD does depend on what it reads
        assert not np.array_equal(_pd(model, base), _pd(model, base.assign(**{configured[0]: 0.0})))
    leaky = Pipeline([
        ("select", ColumnTransformer([("f", "passthrough", configured)],
                                     remainder="passthrough")),
        ("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000)),
    ]).fit(training_rows[list(FEATURE_NAMES)], training_rows["is_high_risk"].to_numpy(int))
    assert _leaks(leaky, base[list(FEATURE_NAMES)], unread, extras=False)

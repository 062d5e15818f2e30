"""Why a model scored a customer as it did: importances and per-feature contributions.

Contributions are in log-odds units, one column per feature: exact for the Logistic
Regression, TreeSHAP (``pred_contribs``) for XGBoost, path contributions for the forest.
Batch scoring and the API turn them into reason codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from creditrisk.catalogue import FEATURE_NAMES

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


def feature_importance(pipeline: Pipeline) -> tuple[pd.Series, str]:
    """Importance per feature and its kind (coefficient, gain, impurity)."""
    import pandas as pd

    model = pipeline.named_steps["model"]
    if hasattr(model, "coef_"):
        return pd.Series(model.coef_[0], index=list(FEATURE_NAMES)), "coefficient"
    if model.__class__.__name__ == "XGBClassifier":
        gain = model.get_booster().get_score(importance_type="gain")
        return (pd.Series({f: gain.get(f, 0.0) for f in FEATURE_NAMES}), "gain")
    return pd.Series(model.feature_importances_, index=list(FEATURE_NAMES)), "impurity"


def contributions(pipeline: Pipeline, X: pd.DataFrame) -> pd.DataFrame | None:
    """Per-row, per-feature contributions to the log-odds of default.

    Exact for Logistic Regression (coefficient × standardised input) and TreeSHAP for
    XGBoost (``pred_contribs``); Random Forest uses Saabas path contributions.
    """
    import numpy as np
    import pandas as pd

    model = pipeline.named_steps["model"]
    cols = list(X.columns)
    if hasattr(model, "coef_"):
        z = pipeline[:-1].transform(X)
        return pd.DataFrame(np.asarray(z) * model.coef_[0], index=X.index, columns=cols)
    if model.__class__.__name__ == "XGBClassifier":
        import xgboost as xgb

        dm = xgb.DMatrix(X, feature_names=cols)
        contrib = model.get_booster().predict(dm, pred_contribs=True)
        return pd.DataFrame(contrib[:, :-1], index=X.index, columns=cols)
    if hasattr(model, "estimators_"):
        return _forest_contributions(model, X)
    return None


def _forest_contributions(forest: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Saabas contributions of a random forest to P(bad), averaged over its trees.

    For each tree, an edge parent→child on a row's path adds prob(child) − prob(parent)
    to the parent's split feature; the decision-path matrix (rows × nodes) times a
    nodes × features matrix of those deltas sums them for every row at once.
    """
    import numpy as np
    import pandas as pd
    from scipy import sparse

    x = X.to_numpy(dtype=np.float32)
    n_features = x.shape[1]
    total = np.zeros(x.shape, dtype=float)
    for est in forest.estimators_:
        tree = est.tree_
        value = tree.value[:, 0, :]
        prob = value[:, 1] / value.sum(axis=1)
        parent = np.full(tree.node_count, -1)
        for side in (tree.children_left, tree.children_right):
            inner = side >= 0
            parent[side[inner]] = np.nonzero(inner)[0]
        child = np.nonzero(parent >= 0)[0]
        deltas = sparse.csr_matrix(
            (prob[child] - prob[parent[child]], (child, tree.feature[parent[child]])),
            shape=(tree.node_count, n_features),
        )
        total += (est.decision_path(x) @ deltas).toarray()
    return pd.DataFrame(total / len(forest.estimators_), index=X.index, columns=list(X.columns))

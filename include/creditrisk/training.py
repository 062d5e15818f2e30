"""Train, evaluate out of time, log to MLflow, register the best candidate as ``challenger``.

The body of the ``train_model`` DAG and of ``creditrisk train --as-of D``. One MLflow
parent run per training date holds one nested run per candidate (Logistic Regression,
Random Forest, XGBoost), each with params, the data fingerprint, out-of-time metrics,
slices, a fairness check, plots and a model card. The best candidate by the configured
criterion is registered under ``CREDITRISK_MODEL_NAME`` as the whole sklearn Pipeline
and given the alias ``challenger``; :mod:`creditrisk.promotion` decides on ``champion``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

EXPERIMENT = "creditrisk-pd"
CANDIDATES = ("logistic_regression", "random_forest", "xgboost")
#: pinned like requirements.txt, so a model trained here loads in the API without warnings
PIP_REQUIREMENTS = [
    "scikit-learn==1.9.1", "xgboost==3.2.0", "pandas==3.1.1", "numpy==2.4.6",
    "scipy==1.17.1", "mlflow==3.17.2",
]


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """The training config: ``path``, ``CREDITRISK_TRAINING_CONFIG``, or the packaged one."""
    import yaml

    source = path or os.environ.get("CREDITRISK_TRAINING_CONFIG")
    try:
        if source:
            text = Path(source).read_text()
        else:
            text = resources.files("creditrisk").joinpath("conf/training.yaml").read_text()
    except OSError as exc:
        raise InputError(f"cannot read the training config {source}: {exc}") from None
    cfg: dict[str, Any] = yaml.safe_load(text)
    return cfg


def make_pipeline(kind: str, params: dict[str, Any], y_train: np.ndarray) -> Pipeline:
    """An unfitted sklearn Pipeline for a candidate, class imbalance handled."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from creditrisk.features import FEATURE_NAMES

    p = dict(params)
    if kind == "logistic_regression":
        # arcsinh: a log-like, sign-preserving squash of the heavy-tailed amounts and counts.
        return Pipeline([
            ("squash", FunctionTransformer(np.arcsinh, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(**p)),
        ])
    if kind == "random_forest":
        return Pipeline([("model", RandomForestClassifier(**p))])
    if kind == "xgboost":
        from xgboost import XGBClassifier

        up = set(p.pop("monotone_increasing", []))
        down = set(p.pop("monotone_decreasing", []))
        constraints = tuple(1 if f in up else -1 if f in down else 0 for f in FEATURE_NAMES)
        positives = max(int(y_train.sum()), 1)
        negatives = max(len(y_train) - positives, 1)
        return Pipeline([("model", XGBClassifier(
            **p, monotone_constraints=constraints, scale_pos_weight=negatives / positives,
            eval_metric="logloss", tree_method="hist",
        ))])
    raise InputError(f"unknown candidate {kind!r}; choose from {CANDIDATES}")


def feature_importance(pipeline: Pipeline) -> tuple[pd.Series, str]:
    """Importance per feature and its kind (coefficient, gain, impurity)."""
    import pandas as pd

    from creditrisk.features import FEATURE_NAMES

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


def synthetic_example(X: pd.DataFrame) -> pd.DataFrame:
    """One input row of per-feature medians: shaped like real input, no real customer."""
    import pandas as pd

    return pd.DataFrame([X.median().round(4)], columns=X.columns).astype("float64")


@dataclass
class CandidateResult:
    kind: str
    run_id: str
    model_uri: str
    threshold: float
    validation: dict[str, float]
    test: dict[str, float]
    test_pd: Any = field(repr=False, default=None)


def _select(results: list[CandidateResult], cfg: dict[str, Any]) -> CandidateResult:
    metric = cfg["metric"]
    best = max(results, key=lambda r: r.validation[metric])
    preferred = next((r for r in results if r.kind == cfg.get("prefer")), None)
    if preferred and best.validation[metric] - preferred.validation[metric] <= float(
        cfg.get("tie_margin", 0.0)
    ):
        return preferred
    return best


def _log_candidate(
    kind: str, params: dict[str, Any], ts: Any, cfg: dict[str, Any], workdir: Path,
) -> CandidateResult:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from creditrisk import evaluation as ev
    from creditrisk.features import CATALOGUE, FEATURE_NAMES
    from creditrisk.labels import __doc__ as label_doc

    train, val, test = ts.part("train"), ts.part("validation"), ts.part("test")
    cols = list(FEATURE_NAMES)
    y_train = train["is_high_risk"].to_numpy(dtype=int)
    pipeline = make_pipeline(kind, params, y_train)
    pipeline.fit(train[cols], y_train)

    def pd_of(part: pd.DataFrame) -> np.ndarray:
        return pipeline.predict_proba(part[cols])[:, 1]

    pd_train, pd_val, pd_test = pd_of(train), pd_of(val), pd_of(test)
    y_val = val["is_high_risk"].to_numpy(dtype=int)
    y_test = test["is_high_risk"].to_numpy(dtype=int)
    threshold = ev.best_f1_threshold(y_val, pd_val)
    m_val = ev.classification_metrics(y_val, pd_val, threshold)
    m_test = ev.classification_metrics(y_test, pd_test, threshold)
    slices = ev.slice_metrics(
        test[cols].reset_index(drop=True), y_test, pd_test,
        thin_file_max=int(cfg["dataset"]["thin_file_max_transactions"]),
    )
    fairness = ev.fairness_report(
        test[cols].reset_index(drop=True), pd_test,
        approve_below=float(cfg["decision"]["approve_below_pd"]),
    )
    stability = {"score_psi_train_vs_test": ev.psi(pd_train, pd_test)}
    importance, kind_of_importance = feature_importance(pipeline)
    sample = test[cols].iloc[:2000]
    shap = contributions(pipeline, sample)

    flat = {k: v for k, v in params.items() if not isinstance(v, list)}
    mlflow.log_params({"candidate": kind, **flat})
    mlflow.log_params({f"data_{k}": v for k, v in ts.fingerprint.items()})
    mlflow.log_metrics({f"val_{k}": float(v) for k, v in m_val.items()})
    mlflow.log_metrics({f"test_{k}": float(v) for k, v in m_test.items()})
    mlflow.log_metrics({k: float(v) for k, v in stability.items()})
    mlflow.log_metric("fairness_min_ratio", float(fairness.get("min_ratio", float("nan"))))
    mlflow.set_tags({"candidate": kind, "data_hash": ts.fingerprint["hash"]})
    out = workdir / kind
    out.mkdir(parents=True, exist_ok=True)
    for path in ev.plot_artifacts(
        y_test, pd_test, out / "plots", threshold=threshold, importance=importance,
        importance_kind=kind_of_importance, shap_values=shap, feature_values=sample,
    ):
        mlflow.log_artifact(str(path), artifact_path="plots")
    slices.to_csv(out / "slices.csv", index=False)
    mlflow.log_artifact(str(out / "slices.csv"), artifact_path="evaluation")
    (out / "fairness.json").write_text(json.dumps(fairness, indent=2, default=str))
    mlflow.log_artifact(str(out / "fairness.json"), artifact_path="evaluation")
    importance.sort_values(key=abs, ascending=False).to_csv(out / "importance.csv")
    mlflow.log_artifact(str(out / "importance.csv"), artifact_path="evaluation")
    card = ev.model_card({
        "model_name": None, "version": None, "candidate": kind,
        "run_id": mlflow.active_run().info.run_id,  # type: ignore[union-attr]
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": ts.fingerprint, "label_definition": label_doc,
        "metrics": {"validation": m_val, "test": m_test}, "slices": slices,
        "fairness": fairness, "stability": stability,
        "features": [(f.name, f.meaning, f.unit) for f in CATALOGUE],
        "promotion_floors": cfg["promotion"],
    })
    (out / "model_card.md").write_text(card)
    mlflow.log_artifact(str(out / "model_card.md"))

    from creditrisk.monitoring import reference_distribution

    (out / "reference.json").write_text(json.dumps(
        reference_distribution(train[cols], pd_train), indent=1
    ))
    mlflow.log_artifact(str(out / "reference.json"))
    mlflow.log_dict({"threshold": threshold, "features": cols}, "scoring.json")

    example = synthetic_example(train[cols])
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(example, pipeline.predict_proba(example)[:, 1]),
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
        pyfunc_predict_fn="predict_proba",
        serialization_format="cloudpickle",
    )
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    log.info("%s: validation AUC %.4f, test AUC %.4f, KS %.4f (run %s)", kind,
             m_val["roc_auc"], m_test["roc_auc"], m_test["ks"], run_id)
    return CandidateResult(kind, run_id, info.model_uri, threshold, m_val, m_test, pd_test)


def configure_mlflow(tracking_uri: str | None) -> str:
    """Point MLflow at ``tracking_uri`` (from settings) and return the experiment id."""
    import mlflow

    if not tracking_uri:
        raise InputError("MLFLOW_TRACKING_URI is not set: export it or run through ./platform")
    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        artifacts = os.environ.get("CREDITRISK_MLFLOW_ARTIFACT_ROOT")
        return str(mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts))
    return str(exp.experiment_id)


def train(
    as_of: dt.date,
    *,
    database_url: str,
    tracking_uri: str | None,
    model_name: str,
    run_id: str,
    promote: bool = False,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train every candidate on what is observable on ``as_of``; register the best.

    Returns:
        Plain values: parent run id, each candidate's metrics, the registered version,
        and the promotion decision when ``promote``.
    """
    import mlflow
    from mlflow import MlflowClient

    from creditrisk.dataset import build_training_set
    from creditrisk.storage.db import check_connection, make_engine

    cfg = config or load_config()
    experiment_id = configure_mlflow(tracking_uri)
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        ts = build_training_set(engine, as_of, cfg["dataset"], run_id)
        log.info("training set as of %s: %s", as_of, ts.fingerprint)
        with tempfile.TemporaryDirectory(prefix="creditrisk-train-") as tmp, mlflow.start_run(
            experiment_id=experiment_id, run_name=f"train {as_of}",
            tags={"as_of": as_of.isoformat(), "airflow_run_id": run_id},
        ) as parent:
            mlflow.log_params({"as_of": as_of.isoformat(),
                               **{f"data_{k}": v for k, v in ts.fingerprint.items()}})
            results = []
            for kind, params in cfg["candidates"].items():
                if kind not in CANDIDATES:
                    raise InputError(f"unknown candidate {kind!r} in the training config")
                with mlflow.start_run(experiment_id=experiment_id, run_name=kind, nested=True):
                    results.append(_log_candidate(kind, params, ts, cfg, Path(tmp)))
            best = _select(results, cfg["selection"])
            mlflow.set_tags({"selected_candidate": best.kind})
            client = MlflowClient()
            version = mlflow.register_model(best.model_uri, model_name).version
            tags = {"candidate": best.kind, "as_of": as_of.isoformat(),
                    "threshold": f"{best.threshold:.6f}", "training_run_id": parent.info.run_id,
                    **{f"test_{k}": f"{v:.6f}" for k, v in best.test.items()},
                    **{f"data_{k}": str(v) for k, v in ts.fingerprint.items()}}
            for key, value in tags.items():
                client.set_model_version_tag(model_name, version, key, value)
            client.set_registered_model_alias(model_name, "challenger", version)
            log.info("registered %s version %s (%s) as challenger", model_name, version,
                     best.kind)
        summary: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "parent_run_id": parent.info.run_id,
            "model_name": model_name,
            "version": str(version),
            "selected": best.kind,
            "candidates": {r.kind: {"run_id": r.run_id, "validation": r.validation,
                                    "test": r.test} for r in results},
            "fingerprint": ts.fingerprint,
        }
        if promote:
            from creditrisk.promotion import gate

            summary["promotion"] = gate(
                engine, model_name=model_name, version=str(version),
                test=ts.part("test"), challenger_test=best.test, cfg=cfg["promotion"],
                run_id=run_id,
            )
        return summary
    finally:
        engine.dispose()


def train_from_settings(*, as_of: str | None, run_id: str, promote: bool) -> dict[str, Any]:
    """The DAG task's body: resolve D (param, else the day after the newest transaction)."""
    from creditrisk.config import get_settings
    from creditrisk.dates import parse_day
    from creditrisk.feature_build import default_as_of

    settings = get_settings()
    url = settings.require_database_url()
    day = parse_day(as_of, "as_of") if as_of else default_as_of(url)
    result = train(
        day, database_url=url, tracking_uri=settings.mlflow_tracking_uri,
        model_name=settings.model_name, run_id=run_id, promote=promote,
    )
    # XCom carries a summary, not the per-candidate metric dicts.
    return {k: result[k] for k in ("as_of", "parent_run_id", "version", "selected")} | {
        "promotion": result.get("promotion", {}).get("decision"),
    }

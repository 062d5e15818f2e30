"""Train, evaluate out of time, log to MLflow, register the best candidate as ``challenger``.

The body of the ``train_model`` DAG and of ``creditrisk train --as-of D``. One MLflow
parent run per training date holds one nested run per candidate (Logistic Regression,
Random Forest, XGBoost), each with params, the data fingerprint, out-of-time metrics,
slices, a fairness check, plots and a model card. The best candidate by the configured
criterion is registered under ``CREDITRISK_MODEL_NAME`` as the whole sklearn Pipeline
and given the alias ``challenger``; :mod:`creditrisk.model.promote` decides on ``champion``.
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

from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.errors import InputError
from creditrisk.evaluation import metrics as ev
from creditrisk.evaluation.model_card import model_card
from creditrisk.evaluation.plots import plot_artifacts
from creditrisk.evaluation.slices import fairness_report, slice_metrics
from creditrisk.evaluation.stability import psi, reference_distribution
from creditrisk.features.labels import __doc__ as label_doc
from creditrisk.model.dataset import build_training_set
from creditrisk.model.explain import contributions, feature_importance
from creditrisk.model.pipeline import CANDIDATES, make_pipeline
from creditrisk.model.promote import gate
from creditrisk.registry import configure_mlflow
from creditrisk.storage.db import check_connection, make_engine

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

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
    slices = slice_metrics(
        test[cols].reset_index(drop=True), y_test, pd_test,
        thin_file_max=int(cfg["dataset"]["thin_file_max_transactions"]),
    )
    fairness = fairness_report(
        test[cols].reset_index(drop=True), pd_test,
        approve_below=float(cfg["decision"]["approve_below_pd"]),
    )
    stability = {"score_psi_train_vs_test": psi(pd_train, pd_test)}
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
    for path in plot_artifacts(
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
    card = model_card({
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

            summary["promotion"] = gate(
                engine, model_name=model_name, version=str(version),
                test=ts.part("test"), challenger_test=best.test, cfg=cfg["promotion"],
                run_id=run_id,
            )
        return summary
    finally:
        engine.dispose()

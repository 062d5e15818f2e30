"""Train, judge forward in time, log to MLflow, register the selected rung as ``challenger``.

The body of the ``train_model`` DAG and of ``creditrisk train --as-of D``. One MLflow
parent run per training date holds:

* the design (training snapshots, evaluation date, the parts' sizes and bad rates) and the
  label sensitivity report (horizons, label variants, their rank agreement);
* one nested run per rung of the benchmark ladder (recency alone, RFM logistic, WoE
  scorecard, logistic regression, XGBoost), each calibrated on its own customers, with
  its validation AUC and its paired gain over the simpler rung selected before it;
* for the selected rung: test metrics with customer-clustered bootstrap intervals,
  calibration in the large, by PD decile and by risk band (Jeffreys intervals), the gain
  over recency alone, slices, fairness at the policy's approve cut-off, feature stability
  between the oldest and newest snapshot, plots, the model card and the registered model.

The selected pipeline is registered under ``CREDITRISK_MODEL_NAME`` and given the alias
``challenger``; :func:`creditrisk.model.promote.gate` decides on ``champion``. Training talks
to MLflow as the ``trainer`` user. The model is stored as skops (every rung round-trips:
sklearn objects, the WoE binner and XGBoost with :data:`creditrisk.registry.SKOPS_TRUSTED_TYPES`),
never as a pickle, and the sha256 of its files and of ``reference.json`` are recorded as tags
of the version (and of the logged model) for every loader to check.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditrisk import progress
from creditrisk.catalogue import CATALOGUE, FEATURE_NAMES
from creditrisk.errors import InputError
from creditrisk.evaluation import bootstrap as bs
from creditrisk.evaluation import metrics as ev
from creditrisk.evaluation import reliability
from creditrisk.evaluation.model_card import model_card
from creditrisk.evaluation.plots import plot_artifacts
from creditrisk.evaluation.slices import fairness_report, slice_metrics
from creditrisk.evaluation.stability import psi, reference_distribution
from creditrisk.features.label_report import sensitivity_table
from creditrisk.features.labels import __doc__ as label_doc
from creditrisk.model.dataset import TrainingSet, build_training_set
from creditrisk.model.describe import model_description, version_card
from creditrisk.model.explain import contributions, feature_importance
from creditrisk.model.ladder import RungResult, climb, ladder_table
from creditrisk.model.pipeline import model_columns
from creditrisk.model.promote import gate
from creditrisk.registry import (
    CHALLENGER,
    MODEL_SHA256_TAG,
    REFERENCE_SHA256_TAG,
    SKOPS_TRUSTED_TYPES,
    TRAINER,
    artifact_digest,
    configure_mlflow,
    describe_model,
    file_sha256,
    set_alias,
)
from creditrisk.scoring.decide import load_policy, risk_band
from creditrisk.storage.db import check_connection, make_engine
from creditrisk.storage.features import last_purchase_ages, load_transactions

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

#: pinned like requirements.txt, so a model trained here loads in the API without warnings
PIP_REQUIREMENTS = [
    # the same platform split as requirements.txt: no CUDA build on a Linux scoring host
    "scikit-learn==1.9.1", 'xgboost==3.2.0; sys_platform != "linux"',
    'xgboost-cpu==3.2.0; sys_platform == "linux"', "pandas==3.1.1", "numpy==2.4.6",
    "scipy==1.17.1", "mlflow==3.17.2", "skops==0.16.0",
]
LABEL = "is_high_risk"


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


def pinned_config(rung: str, cfg: dict[str, Any] | None = None,
                  **params: Any) -> dict[str, Any]:
    """The training config with a ladder of just ``rung`` (first) and the benchmark.

    For tests and benchmarks that need one model family quickly: the benchmark is still
    fitted and compared, but replaces ``rung`` only if it beats it significantly.
    """
    cfg = dict(cfg or load_config())
    bench = cfg["benchmark_rung"]
    spec = dict(cfg["ladder"][rung])
    spec["params"] = {**spec.get("params", {}), **params}
    cfg["ladder"] = {rung: spec, **({bench: cfg["ladder"][bench]} if rung != bench else {})}
    return cfg


def synthetic_example(X: pd.DataFrame) -> pd.DataFrame:
    """One input row of per-feature medians: shaped like real input, no real customer."""
    import pandas as pd

    return pd.DataFrame([X.median().round(4)], columns=X.columns).astype("float64")


def evaluate(selected: RungResult, rungs: list[RungResult], ts: TrainingSet,
             cfg: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """The selected rung on the test customers: what the gate and the model card read.

    Intervals are customer-clustered bootstraps; the gain over recency alone is a paired
    bootstrap on the same test customers.
    """
    test = ts.part("test")
    y = test[LABEL].to_numpy(int)
    clusters = test["customer_id"].to_numpy()
    p = selected.pipeline.predict_proba(test)[:, 1]
    recency = next(r for r in rungs if r.name == cfg["benchmark_rung"])
    p_recency = recency.pipeline.predict_proba(test)[:, 1]
    boot = cfg["bootstrap"]
    n, seed = int(boot["replicates"]), int(boot["seed"])
    intervals = {name: bs.bootstrap_ci(fn, y, p, clusters, n=n, seed=seed)
                 for name, fn in (("auc", bs.auc), ("ks", bs.ks), ("brier", bs.brier),
                                  ("ece", bs.ece_decile))}
    gain = bs.paired_bootstrap_diff(bs.auc, y, p, p_recency, clusters, n=n, seed=seed)
    threshold = ev.best_f1_threshold(ts.part("validation")[LABEL].to_numpy(int),
                                     selected.val_pd)
    return {
        "rung": selected.name, "calibration": selected.method, "n": len(y),
        "pd": p, "y": y, "threshold": threshold,
        "metrics": ev.classification_metrics(y, p, threshold),
        "intervals": {k: {"estimate": v.estimate, "lo": v.lo, "hi": v.hi}
                      for k, v in intervals.items()},
        "in_the_large": reliability.in_the_large(y, p),
        "recency_auc": bs.auc(y, p_recency),
        "gain_vs_recency": {"estimate": gain.estimate, "lo": gain.lo, "hi": gain.hi},
        "by_decile": reliability.by_decile(y, p),
        "by_band": reliability.calibration_table(y, p, risk_band(p, policy)),
    }


def feature_stability(ts: TrainingSet, columns: list[str]) -> pd.DataFrame:
    """PSI of each model feature, oldest training snapshot against the evaluation date."""
    import pandas as pd

    frame = ts.frame
    early = frame[frame["as_of_date"] == min(frame["as_of_date"])]
    late = frame[frame["as_of_date"] == ts.design.eval_date]  # the newest evaluation date
    rows = [{"feature": c, "psi": psi(early[c].to_numpy(), late[c].to_numpy())}
            for c in columns]
    return pd.DataFrame(rows).sort_values("psi", ascending=False).reset_index(drop=True)


def _log_frame(frame: pd.DataFrame, workdir: Path, name: str, folder: str) -> None:
    import mlflow

    path = workdir / name
    frame.to_csv(path, index=False)
    mlflow.log_artifact(str(path), artifact_path=folder)


def _ladder_plot(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    colours = ["C2" if s else "C0" for s in table["selected"]]
    ax.bar(table["rung"], table["val_auc"], color=colours)
    lo = float(table["val_auc"].min())
    ax.set(ylim=(max(0.0, lo - 0.05), 1.0), ylabel="validation AUC",
           title="Benchmark ladder (green: selected)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _log_rung(r: RungResult, ts: TrainingSet) -> None:
    import mlflow

    mlflow.log_params({"rung": r.name, "calibration": r.method, "n_features": len(r.columns),
                       "features": ",".join(r.columns)[:5000]})
    mlflow.log_metric("val_auc", r.val_auc)
    if r.gain is not None:
        mlflow.log_metrics({"val_auc_gain": r.gain.estimate, "val_auc_gain_lo": r.gain.lo,
                            "val_auc_gain_hi": r.gain.hi})
    mlflow.set_tags({"rung": r.name, "selected": str(r.selected).lower(),
                     "data_hash": ts.fingerprint["hash"]})


def _log_parent(ts: TrainingSet, table: pd.DataFrame, report: dict[str, Any],
                sensitivity: pd.DataFrame, stability: pd.DataFrame, workdir: Path) -> None:
    import mlflow

    d = ts.design
    mlflow.log_params({"eval_dates": ",".join(t.isoformat() for t in sorted(d.eval_dates)),
                       "train_dates": ",".join(t.isoformat() for t in d.train_dates),
                       "selected_rung": report["rung"], "calibration": report["calibration"]})
    _log_frame(table, workdir, "ladder.csv", "ladder")
    mlflow.log_artifact(str(_ladder_plot(table, workdir / "ladder.png")), artifact_path="ladder")
    _log_frame(sensitivity, workdir, "label_sensitivity.csv", "labels")
    _log_frame(stability, workdir, "feature_stability.csv", "evaluation")
    _log_frame(report["by_decile"], workdir, "calibration_by_decile.csv", "evaluation")
    _log_frame(report["by_band"], workdir, "calibration_by_band.csv", "evaluation")
    (workdir / "intervals.json").write_text(json.dumps(
        {"intervals": report["intervals"], "gain_vs_recency": report["gain_vs_recency"],
         "in_the_large": report["in_the_large"]}, indent=2))
    mlflow.log_artifact(str(workdir / "intervals.json"), artifact_path="evaluation")
    _log_summary_metrics(report, stability)


def _log_summary_metrics(report: dict[str, Any], stability: pd.DataFrame) -> None:
    import mlflow

    flat = {f"test_{k}{suffix}": float(v[key]) for k, v in report["intervals"].items()
            for suffix, key in (("", "estimate"), ("_lo", "lo"), ("_hi", "hi"))}
    flat.update({"test_mean_pd": report["in_the_large"]["mean_pd"],
                 "test_bad_rate": report["in_the_large"]["bad_rate"],
                 "test_auc_recency_only": report["recency_auc"],
                 "test_auc_gain_vs_recency_lo": report["gain_vs_recency"]["lo"],
                 "feature_psi_max": float(stability["psi"].max())})
    mlflow.log_metrics(flat)


def _log_selected(r: RungResult, ts: TrainingSet, report: dict[str, Any],
                  policy: dict[str, Any], workdir: Path) -> dict[str, str]:
    """The selected rung's plots, slices, fairness, card, reference and model.

    Returns :func:`log_pipeline`'s model URI and hashes.
    """
    import mlflow

    test, cols = ts.part("test"), list(FEATURE_NAMES)
    y, p, threshold = report["y"], report["pd"], report["threshold"]
    importance, kind_of_importance = feature_importance(r.pipeline)
    sample = test[cols].iloc[:2000]
    shap = contributions(r.pipeline, sample)
    mlflow.log_metrics({f"test_{k}": float(v) for k, v in report["metrics"].items()})
    out = workdir / r.name
    for path in plot_artifacts(
        y, p, out / "plots", threshold=threshold, importance=importance,
        importance_kind=kind_of_importance, shap_values=shap,
        feature_values=sample[model_columns(r.pipeline)],
    ):
        mlflow.log_artifact(str(path), artifact_path="plots")
    evidence = _slices_and_fairness(test[cols].reset_index(drop=True), y, p, policy, out)
    card = model_card({
        "model_name": None, "version": None, "candidate": r.name,
        "run_id": mlflow.active_run().info.run_id,  # type: ignore[union-attr]
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": ts.fingerprint, "label_definition": label_doc,
        "metrics": {"test": report["metrics"]}, **evidence,
        "features": [(f.name, f.meaning, f.unit) for f in CATALOGUE
                     if f.name in model_columns(r.pipeline)],
        "promotion_floors": {}, "stability": {},
    })
    (out / "model_card.md").write_text(card)
    mlflow.log_artifact(str(out / "model_card.md"))
    train = ts.part("train")
    # monitoring compares each scored day with the model's own inputs and its PD
    (out / "reference.json").write_text(json.dumps(reference_distribution(
        train[model_columns(r.pipeline)], r.pipeline.predict_proba(train)[:, 1]), indent=1))
    mlflow.log_artifact(str(out / "reference.json"))
    mlflow.log_dict({"threshold": threshold, "features": model_columns(r.pipeline)},
                    "scoring.json")
    return log_pipeline(r.pipeline, synthetic_example(train[cols]),
                        {REFERENCE_SHA256_TAG: file_sha256(out / "reference.json")})


class _HashingSklearnFlavor:
    """``mlflow.sklearn`` as ``Model.log``'s flavor, hashing the files it saves.

    ``Model.log`` saves the model into a local folder with the flavor's ``save_model`` and
    then uploads that folder: the digest is taken here, of the bytes that are uploaded.
    """

    __name__ = "mlflow.sklearn"

    def __init__(self) -> None:
        self.digest: str | None = None

    def save_model(self, path: str, **kwargs: Any) -> None:
        import mlflow.sklearn

        mlflow.sklearn.save_model(path=path, **kwargs)
        self.digest = artifact_digest(path)


def log_pipeline(pipeline: Any, example: pd.DataFrame,
                 extra_tags: dict[str, str] | None = None) -> dict[str, str]:
    """Log ``pipeline`` (skops) under the active run; its model URI and recorded hashes.

    The store's copy is downloaded once and checked against the digest of the saved files,
    so a failed or altered upload stops training instead of registering a version that
    no loader would accept. The hashes are tags of the logged model too, so a version
    registered from it by hand verifies as well.
    """
    import mlflow
    import mlflow.artifacts
    from mlflow.models import Model, infer_signature

    flavor = _HashingSklearnFlavor()
    info = Model.log(
        artifact_path=None, name="model", flavor=flavor, sk_model=pipeline,
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=infer_signature(example, pipeline.predict_proba(example)[:, 1]),
        input_example=example, pip_requirements=PIP_REQUIREMENTS,
        pyfunc_predict_fn="predict_proba",
    )
    if flavor.digest is None:  # Model.log always calls save_model
        raise RuntimeError("MLflow logged the model without saving it through the flavor")
    with tempfile.TemporaryDirectory(prefix="creditrisk-verify-") as tmp:
        stored = artifact_digest(mlflow.artifacts.download_artifacts(
            artifact_uri=str(info.model_uri), dst_path=tmp))
    if stored != flavor.digest:
        raise RuntimeError(f"the artifact store holds other bytes than were logged for "
                           f"{info.model_uri} (sha256 {stored[:16]} vs {flavor.digest[:16]})")
    tags = {MODEL_SHA256_TAG: flavor.digest, **(extra_tags or {})}
    mlflow.MlflowClient().set_logged_model_tags(info.model_id, tags)
    return {"model_uri": str(info.model_uri), **tags}


def _slices_and_fairness(features: pd.DataFrame, y: np.ndarray, p: np.ndarray,
                         policy: dict[str, Any], out: Path) -> dict[str, Any]:
    import mlflow

    out.mkdir(parents=True, exist_ok=True)
    slices = slice_metrics(features, y, p, thin_file_max=3)
    fairness = fairness_report(features, p,
                               approve_below=float(policy["decision"]["approve_below"]))
    slices.to_csv(out / "slices.csv", index=False)
    mlflow.log_artifact(str(out / "slices.csv"), artifact_path="evaluation")
    (out / "fairness.json").write_text(json.dumps(fairness, indent=2, default=str))
    mlflow.log_artifact(str(out / "fairness.json"), artifact_path="evaluation")
    mlflow.log_metric("fairness_min_ratio", float(fairness.get("min_ratio", float("nan"))))
    return {"slices": slices, "fairness": fairness}


def _sensitivity(engine: Engine, ts: TrainingSet, cfg: dict[str, Any],
                 lookback: float) -> pd.DataFrame:
    """The label sensitivity report at the newest date every horizon's window is loaded."""
    horizons = [int(h) for h in cfg["label_report"]["horizons"]]
    last = ts.design.eval_date + dt.timedelta(days=int(cfg["dataset"]["horizon_days"]) - 1)
    at = max(min(ts.design.train_dates), last + dt.timedelta(days=1 - max(horizons)))
    share = float(ts.fingerprint.get("sample_share", 1.0))
    # bounded: the customers' last purchase ages aggregated in PostgreSQL, and only the
    # outcome windows' rows, of the training set's sampled customers
    age = last_purchase_ages(engine, at, share)
    window = load_transactions(engine, since=at, before=last + dt.timedelta(days=1),
                               sample_share=share)
    return sensitivity_table(window, at, age, horizons=horizons, lookback_days=int(lookback),
                             reference=(int(cfg["dataset"]["horizon_days"]), "silence"))


def _log_datasets(ts: TrainingSet) -> None:
    """The training and test sets as MLflow dataset inputs of the run (schema, profile and
    digest: the run page's "Datasets"; the rows themselves stay in the warehouse)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas  # mlflow.data.from_pandas

    for part, context in (("train", "training"), ("test", "testing")):
        frame = ts.part(part)
        mlflow.log_input(from_pandas(
            frame, name=f"{part} as of {ts.fingerprint.get(f'{part}_dates', '?')}",
            targets=LABEL), context=context)


def _register(client: Any, logged: dict[str, str], model_name: str, report: dict[str, Any],
              ts: TrainingSet, as_of: dt.date, parent_run_id: str, table: pd.DataFrame) -> str:
    import mlflow

    hashes = {k: v for k, v in logged.items() if k != "model_uri"}
    # the hashes are created with the version: no loader ever sees it without them
    version = str(mlflow.register_model(logged["model_uri"], model_name, tags=hashes).version)
    # what the MLflow UI shows first: the model's description and the version's card
    describe_model(client, model_name, model_description(ts.fingerprint, load_policy()))
    client.update_model_version(model_name, version, description=version_card(
        report, table, ts.fingerprint, as_of.isoformat()))
    tags = {"candidate": report["rung"], "as_of": as_of.isoformat(),
            "training_as_of": as_of.isoformat(), "gate_verdict": "not run",
            "calibration": report["calibration"], "threshold": f"{report['threshold']:.6f}",
            "training_run_id": parent_run_id,
            "label_strategy": ts.fingerprint["label_strategy"],
            "horizon_days": str(ts.fingerprint["horizon_days"]),
            **{f"test_{k}": f"{v:.6f}" for k, v in report["metrics"].items()},
            **{f"data_{k}": str(v) for k, v in ts.fingerprint.items()}}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    set_alias(client, model_name, CHALLENGER, version)
    return version


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
    """Climb the ladder on what is known before ``as_of``; register the selected rung.

    Long because it is the one place the steps meet in order (data, ladder, evaluation,
    MLflow runs, registration, gate); each step is a function of its own.

    Returns:
        Plain values: parent run id, every rung's validation AUC, the selected rung's
        test report, the registered version, and the gate's decision when ``promote``.
    """
    import mlflow
    from mlflow import MlflowClient

    cfg, policy = config or load_config(), load_policy()
    lookback = float(policy["population"]["lookback_days"])
    experiment_id = configure_mlflow(tracking_uri, role=TRAINER)
    engine = make_engine(database_url)
    try:
        check_connection(engine)
        progress.stage("training set")
        ts = build_training_set(engine, as_of, cfg["dataset"], run_id, lookback)
        log.info("training set as of %s: %s", as_of, ts.fingerprint)
        boot = cfg["bootstrap"]
        progress.stage("model ladder")
        selected, rungs = climb(cfg["ladder"], ts.parts(), n_boot=int(boot["replicates"]),
                                seed=int(boot["seed"]))
        progress.stage("test evaluation")
        report = evaluate(selected, rungs, ts, cfg, policy)
        table = ladder_table(rungs)
        sensitivity = _sensitivity(engine, ts, cfg, lookback)
        stability = feature_stability(ts, model_columns(selected.pipeline))
        progress.stage("MLflow logging")
        with tempfile.TemporaryDirectory(prefix="creditrisk-train-") as tmp, mlflow.start_run(
            experiment_id=experiment_id, run_name=f"train {as_of}",
            tags={"as_of": as_of.isoformat(), "airflow_run_id": run_id},
        ) as parent:
            workdir = Path(tmp)
            mlflow.log_params({"as_of": as_of.isoformat(),
                               **{f"data_{k}": v for k, v in ts.fingerprint.items()}})
            _log_parent(ts, table, report, sensitivity, stability, workdir)
            logged: dict[str, str] = {}
            for r in rungs:
                with mlflow.start_run(experiment_id=experiment_id, run_name=r.name, nested=True):
                    _log_rung(r, ts)
                    if r.selected:
                        logged = _log_selected(r, ts, report, policy, workdir)
            mlflow.set_tags({"selected_candidate": selected.name})
            progress.stage("registration")
            _log_datasets(ts)
            version = _register(MlflowClient(), logged, model_name, report, ts, as_of,
                                parent.info.run_id, table)
            log.info("registered %s version %s (%s, %s calibration) as challenger",
                     model_name, version, selected.name, selected.method)
        summary = _summary(as_of, parent.info.run_id, model_name, version, report, table, ts)
        if promote:
            progress.stage("promotion gate")
            summary["promotion"] = gate(
                engine, model_name=model_name, version=version, test=ts.part("test"),
                report=report, cfg=cfg["promotion"], run_id=run_id,
            )
        return summary
    finally:
        engine.dispose()


def _summary(as_of: dt.date, parent_run_id: str, model_name: str, version: str,
             report: dict[str, Any], table: pd.DataFrame, ts: TrainingSet) -> dict[str, Any]:
    return {
        "as_of": as_of.isoformat(), "parent_run_id": parent_run_id, "model_name": model_name,
        "version": version, "selected": report["rung"], "calibration": report["calibration"],
        "ladder": table.to_dict(orient="records"),
        "test": {"n": report["n"], **report["in_the_large"], "auc": report["metrics"]["roc_auc"],
                 "auc_lo": report["intervals"]["auc"]["lo"],
                 "ece": report["intervals"]["ece"]["estimate"],
                 "auc_recency_only": report["recency_auc"]},
        "fingerprint": ts.fingerprint,
    }

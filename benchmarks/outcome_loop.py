"""The outcome loop, measured: does a model trained on repayments beat the proxy model?

On a simulated world (the synthetic generator's hidden trajectories), against a real
PostgreSQL warehouse and a real MLflow store (``tests/outcome_world.py``):

1. history is loaded; a proxy-label model (``forward_window``) is trained and becomes
   ``champion``;
2. day by day the champion scores every customer (``risk_scores``), checkouts are decided
   from those scores, loans issue, repayments follow the hidden state
   (``DefaultMechanism``: trajectory, over-extension, thin liquidity), and the loans and
   repayments files go through the GX-gated ingest;
3. after ``--retrain-after`` loop days the model is retrained: once
   ``--min-matured`` loans have matured, on the ``repayment`` label; that version
   becomes champion and decides the rest of the loop;
4. at the end, as of the day after the history, two models are trained on the same
   data: one on the repayment label (``auc_repayment_model``), one on the proxy label
   (``min_matured_loans: null``, ``auc_proxy_model``). Both are scored on the same
   held-out loans (the repayment set's test part: customers hashed out of training, at
   the newest matured snapshots) and judged at predicting repayment default, with a
   paired bootstrap interval of the difference; to describe (never to score), how far
   each model's score follows the two hidden traits the proxy cannot see;
5. the band backtest of the retrained champion's own loans: how many (version, band)
   rows have the mean PD at issue inside the realized bad rate's Jeffreys interval.

Last line: ``loans=… matured=… auc_repayment_model=… auc_proxy_model=…
bands_within_interval=…/…``. PostgreSQL: ``TEST_DATABASE_URL``/``DATABASE_URL`` or an
embedded server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pg import admin_url, fresh_database  # noqa: E402

#: the features through which the over-extension and thin-liquidity parts of default
#: are visible (DefaultMechanism)
TRAIT_FEATURES = ("share_channel_pay_later", "share_airtime")


def held_out_aucs(url: str, tracking_uri: str, model_name: str, known: dt.date,
                  versions: dict[str, str], min_matured: int) -> tuple[int, dict[str, Any]]:
    """AUC of each version at predicting repayment default on the same held-out loans,
    and the repayment model's AUC minus the proxy model's with a paired bootstrap
    interval (customers resampled, both models scored on the same replicate)."""
    from sklearn.metrics import roc_auc_score

    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.evaluation.bootstrap import auc, paired_bootstrap_diff
    from creditrisk.model.dataset import build_training_set
    from creditrisk.model.explain import feature_importance
    from creditrisk.registry import ModelRef, configure_mlflow, load_pipeline
    from creditrisk.scoring.decide import load_policy
    from creditrisk.storage.db import make_engine
    from tests.outcome_world import loop_config

    engine = make_engine(url)
    try:
        lookback = float(load_policy()["population"]["lookback_days"])
        ts = build_training_set(engine, known, loop_config(min_matured)["dataset"],
                                "bench-heldout", lookback)
    finally:
        engine.dispose()
    if ts.fingerprint["label_strategy"] != "repayment":
        raise SystemExit("too few matured loans for a repayment set: raise --customers")
    test = ts.part("test")
    configure_mlflow(tracking_uri)
    aucs: dict[str, Any] = {}
    scores = {}
    y = test["is_high_risk"].astype(int).to_numpy()
    for name, version in versions.items():
        pipeline = load_pipeline(ModelRef(model_name, version, "", ""), tracking_uri)
        scores[name] = pipeline.predict_proba(test[list(FEATURE_NAMES)].astype("float64"))[:, 1]
        aucs[name] = float(roc_auc_score(y, scores[name]))
        coef = feature_importance(pipeline)[0]
        rank = coef.abs().rank(ascending=False, method="min")
        aucs[f"{name}_coef"] = [(f, float(coef.get(f, float("nan"))),
                                 int(rank.get(f, len(coef))), len(coef)) for f in TRAIT_FEATURES]
    aucs["difference"] = paired_bootstrap_diff(
        auc, y, scores["repayment"], scores["proxy"], test["customer_id"].to_numpy(), n=2000)
    aucs["bad"] = int(y.sum())
    aucs["customers"] = test["customer_id"].astype(str).to_numpy()
    aucs["y"] = y
    aucs["scores"] = scores
    return len(test), aucs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=10000)
    ap.add_argument("--days", type=int, default=200)
    ap.add_argument("--warmup-days", type=int, default=50)
    ap.add_argument("--retrain-after", type=int, default=70)
    ap.add_argument("--score-every", type=int, default=3)
    ap.add_argument("--min-matured", type=int, default=300)
    ap.add_argument("--exploration-share", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--over-extension", type=float, default=None)
    ap.add_argument("--hand-to-mouth", type=float, default=None)
    ap.add_argument("--faded-miss", type=float, default=None)
    args = ap.parse_args(argv)

    from creditrisk.landing.outcomes import LoopPolicy
    from creditrisk.model.train import train
    from tests.outcome_world import loop_config, run_loop

    t0 = time.perf_counter()
    model = "credit-risk-pd-outcome-bench"
    with admin_url() as admin, fresh_database(admin, "croutcome") as url, \
            fresh_database(admin, "croutcome_mlflow", migrated=False) as store, \
            tempfile.TemporaryDirectory(prefix="croutcome-") as tmp:
        os.environ["CREDITRISK_MLFLOW_ARTIFACT_ROOT"] = str(Path(tmp) / "artifacts")
        run = run_loop(url, store, Path(tmp) / "landing", model_name=model,
                       customers=args.customers, days=args.days,
                       warmup_days=args.warmup_days, score_every=args.score_every,
                       seed=args.seed, min_matured_loans=args.min_matured,
                       retrain_after=args.retrain_after,
                       policy=LoopPolicy(exploration_share=args.exploration_share),
                       mechanism=_mechanism(args))
        known = run.end + dt.timedelta(days=1)
        proxy = train(known, database_url=url, tracking_uri=store, model_name=model,
                      run_id="bench-proxy", config=loop_config(None))
        n_test, aucs = held_out_aucs(url, store, model, known, {
            "repayment": run.final["version"], "proxy": proxy["version"]}, args.min_matured)
        aucs["traits"] = _traits(aucs, args, run.end)
        report = _report(run, n_test, aucs, time.perf_counter() - t0)
    for line in report:
        print(line)
    return 0


def _mechanism(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from creditrisk.landing.outcomes import DefaultMechanism

    changes = {k: v for k, v in (("over_extension", args.over_extension),
                                 ("hand_to_mouth", args.hand_to_mouth),
                                 ("faded_miss", args.faded_miss)) if v is not None}
    return replace(DefaultMechanism(), **changes)


def _traits(aucs: dict[str, Any], args: argparse.Namespace, end: dt.date) -> dict[str, Any]:
    """How the held-out loans relate to the hidden traits of DefaultMechanism, read back
    from the same simulation only to describe the result, never to score: loans and bad
    loans of customers with a pay-later habit, and the Spearman correlation of each
    model's score with each trait (does the model read it?)."""
    from scipy.stats import spearmanr

    from creditrisk.landing.simulate import _simulate

    _, hidden = _simulate(customers=args.customers, days=args.days, end_date=end,
                          seed=args.seed)
    hidden = hidden.set_index("CustomerId").reindex(aucs["customers"])
    habit = (hidden["pay_later_p"] > 0).to_numpy()
    return {"habit": (int(habit.sum()), int((habit & (aucs["y"] == 1)).sum())),
            "rho": {(model, trait): float(spearmanr(score, hidden[trait]).statistic)
                    for model, score in aucs["scores"].items()
                    for trait in ("pay_later_p", "airtime_weight")}}


def _report(run: Any, n_test: int, aucs: dict[str, Any], seconds: float) -> list[str]:
    issued = sum(d["loans"] for d in run.days)
    champion = run.retrained["version"] if run.retrained else run.champion["version"]
    bands = [b for b in run.backtest["bands"]
             if b["model_version"] == champion and b["within_interval"] is not None]
    within = sum(b["within_interval"] is True for b in bands)
    lines = [f"world {run.first_day}..{run.end}; final model {run.final['selected']} on "
             f"{run.final['fingerprint']['label_strategy']}; held-out loans {n_test} "
             f"({aucs['bad']} bad); {seconds:.0f} s"]
    diff = aucs["difference"]
    lines.append(f"  AUC repayment - proxy = {diff.estimate:+.3f}, paired bootstrap 95% "
                 f"[{diff.lo:+.3f}, {diff.hi:+.3f}] over {diff.n_boot} replicates")
    traits = aucs["traits"]
    lines.append(f"  held-out loans of customers with a pay-later habit: {traits['habit'][0]} "
                 f"({traits['habit'][1]} of the {aucs['bad']} bad)")
    lines += [f"  {m} model score, Spearman with the hidden traits: pay_later_p "
              f"{traits['rho'][(m, 'pay_later_p')]:+.2f}, airtime_weight "
              f"{traits['rho'][(m, 'airtime_weight')]:+.2f}" for m in ("repayment", "proxy")]
    lines += [f"  {name} model, standardised coefficients: " + ", ".join(
        f"{f} {c:+.3f} (rank {r} of {k} by size)" for f, c, r, k in aucs[f"{name}_coef"])
        for name in ("repayment", "proxy")]
    lines += [f"  v{b['model_version']} band {b['risk_band']}: {b['bad']}/{b['loans']} bad "
              f"[{b['interval_lo']:.3f}, {b['interval_hi']:.3f}] mean PD {b['mean_pd']:.3f}"
              for b in run.backtest["bands"] if b["mean_pd"] is not None]
    lines.append(f"loans={issued} matured={run.backtest['matured']} "
                 f"auc_repayment_model={aucs['repayment']:.3f} "
                 f"auc_proxy_model={aucs['proxy']:.3f} "
                 f"bands_within_interval={within}/{len(bands)}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())

"""Forward test of the PD: trained with only what was known at T, judged on what came after.

On a generated world (default: the Xente-shaped one, the real per-customer activity of
the public file from ``tests/fixtures/xente_customer_sequence.csv``), through the public
``creditrisk`` command against a real PostgreSQL warehouse and a real MLflow store:

1. ``creditrisk generate --world ...`` writes the landing files;
2. only the days before T are loaded (``creditrisk ingest``, or the tests' fast loader
   with ``--fast-load``): nothing after T is in the warehouse yet;
3. ``creditrisk train --as-of T --promote``: the ladder, calibration and the gate;
4. ``creditrisk score --date T`` with the champion (with the challenger when the gate
   refused, so the numbers are still measured);
5. the days from T on are loaded and ``creditrisk features --as-of T`` builds T's labels
   now that their window is in;
6. the scored customers' PDs are compared with what happened: bad rate, mean PD,
   calibration error by PD decile, AUC with a bootstrap lower bound, and the AUC of
   ranking by purchase recency alone on the same customers.

Last line: ``n=… bad_rate=… mean_pd=… ece=… auc=… auc_lo=… auc_recency_only=…
gate=promoted|refused``. Targets on the Xente-shaped world: |mean PD − bad rate| ≤ 0.03,
ECE ≤ 0.05, AUC ≥ recency + 0.03, the gate promotes by itself; on ``--world null`` it
must refuse. PostgreSQL: ``TEST_DATABASE_URL``/``DATABASE_URL`` or an embedded server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
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

SEQUENCE = REPO / "tests" / "fixtures" / "xente_customer_sequence.csv"
CLI = str(Path(sys.executable).parent / "creditrisk")


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"creditrisk {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _load(env: dict[str, str], landing: Path, first: dt.date, last: dt.date,
          fast: bool) -> None:
    if fast:
        from creditrisk.schema import landing_file_name
        from tests.warehouse import load_landing_files

        files, day = [], first
        while day <= last:
            files.append(landing / landing_file_name(day))
            day += dt.timedelta(days=1)
        load_landing_files(env["DATABASE_URL"], files)
        return
    _cli(env, "ingest", "--from", first.isoformat(), "--to", last.isoformat(),
         "--landing-dir", str(landing), "--no-data-docs")


def _outcome(url: str, day: dt.date) -> Any:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT s.customer_id, s.probability_of_default, l.is_high_risk,"
                " f.purchase_recency_days FROM risk_scores s"
                " JOIN customer_labels l ON l.customer_id = s.customer_id"
                "  AND l.as_of_date = s.score_date AND l.label_strategy = 'forward_window'"
                " JOIN customer_features f ON f.customer_id = s.customer_id"
                "  AND f.as_of_date = s.score_date"
                " WHERE s.score_date = :d AND s.segment = 'scored'"), {"d": day}).all()
            cap = conn.execute(sa.text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY credit_score),"
                " avg((credit_score >= 850)::int) FROM risk_scores"
                " WHERE score_date = :d AND segment = 'scored'"), {"d": day}).one()
            print(f"credit score of the scored: median {cap[0]:.0f}, share at the 850 cap "
                  f"{float(cap[1]):.3f}", flush=True)
            gate = conn.execute(sa.text(
                "SELECT decision FROM model_promotions ORDER BY decided_at DESC LIMIT 1"
            )).scalar_one()
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["customer_id", "pd", "bad", "recency"])
    return frame, gate


def compare(frame: Any, seed: int = 0) -> dict[str, float]:
    """Outcome against the scores: the forward test's numbers."""
    import numpy as np

    from creditrisk.evaluation import bootstrap as bs

    y = frame["bad"].to_numpy(dtype=int)
    p = frame["pd"].to_numpy(dtype=float)
    auc = bs.bootstrap_ci(bs.auc, y, p, frame["customer_id"].to_numpy(), n=500, seed=seed)
    return {"n": len(y), "bad_rate": float(np.mean(y)), "mean_pd": float(np.mean(p)),
            "ece": bs.ece_decile(y, p), "auc": auc.estimate, "auc_lo": auc.lo,
            "auc_recency_only": bs.auc(y, frame["recency"].to_numpy(dtype=float))}


def oracle_auc(frame: Any, *, customers: int, days: int, end_date: dt.date, seed: int,
               as_of: dt.date) -> float:
    """The ceiling on the synthetic world: a model that sees each customer's hidden
    trajectory (kind, base rate, when it fades, how fast) as well as purchase recency,
    cross-validated on the same customers. The platform's AUC sits between recency alone
    and this."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    from creditrisk.evaluation import bootstrap as bs
    from creditrisk.landing.simulate import _simulate

    _, meta = _simulate(customers=customers, days=days, end_date=end_date, seed=seed)
    t_day = (as_of - (end_date - dt.timedelta(days=days - 1))).days
    hidden = meta.set_index("CustomerId").reindex(frame["customer_id"])
    X = pd.get_dummies(hidden["trajectory"]).astype(float).assign(
        log_rate=np.log(hidden["base_rate"].to_numpy(float)),
        faded=(hidden["change_day"].to_numpy(float) < t_day).astype(float),
        since_fade=np.clip(t_day - hidden["change_day"].to_numpy(float), 0, None),
        decay=hidden["decay_days"].to_numpy(float), growth=hidden["growth"].to_numpy(float),
        recency=frame["recency"].to_numpy(float)).fillna(0.0)
    y = frame["bad"].to_numpy(dtype=int)
    p = cross_val_predict(HistGradientBoostingClassifier(max_depth=3, random_state=0), X, y,
                          cv=5, method="predict_proba")[:, 1]
    return bs.auc(y, p)


def forward_test(*, world: str, customers: int | None, days: int, end_date: dt.date,
                 as_of: dt.date, seed: int = 42, fast_load: bool = False,
                 workdir: Path, admin: str) -> dict[str, Any]:
    """Run the forward test (see the module docstring); return its numbers and verdict."""
    from creditrisk.features.labels import DEFAULT_HORIZON_DAYS

    landing = workdir / "landing"
    with fresh_database(admin, "crforward") as warehouse, \
            fresh_database(admin, "crforward_mlflow", migrated=False) as store:
        env = {**os.environ, "DATABASE_URL": warehouse, "MLFLOW_TRACKING_URI": store,
               "CREDITRISK_MODEL_NAME": "forward-test-pd",
               "CREDITRISK_MLFLOW_ARTIFACT_ROOT": str(workdir / "mlartifacts"),
               "CREDITRISK_LANDING_DIR": str(landing), "GIT_PYTHON_REFRESH": "quiet"}
        gen = ["generate", "--world", world, "--days", str(days), "--end-date",
               end_date.isoformat(), "--out", str(landing), "--seed", str(seed)]
        if customers is not None:
            gen += ["--customers", str(customers)]
        if world == "xente":
            gen += ["--sequence", str(SEQUENCE)]
        print(_cli(env, *gen).strip(), flush=True)
        first = end_date - dt.timedelta(days=days - 1)
        t0 = time.perf_counter()
        _load(env, landing, first, as_of - dt.timedelta(days=1), fast_load)
        trained = _cli(env, "train", "--as-of", as_of.isoformat(), "--promote")
        print(trained.strip(), flush=True)
        alias = "champion" if "): promoted" in trained else "challenger"
        print(_cli(env, "score", "--date", as_of.isoformat(), "--alias", alias).strip())
        _load(env, landing, as_of, end_date, fast_load)
        _cli(env, "features", "--as-of", as_of.isoformat(), "--horizon",
             str(DEFAULT_HORIZON_DAYS))
        frame, gate = _outcome(warehouse, as_of)
        out: dict[str, Any] = compare(frame, seed)
        out["gate"] = "promoted" if gate == "promoted" else "refused"
        if world == "synthetic" and customers is not None:
            out["oracle_auc"] = oracle_auc(frame, customers=customers, days=days,
                                           end_date=end_date, seed=seed, as_of=as_of)
        out["seconds"] = time.perf_counter() - t0
        return out


def last_line(r: dict[str, Any]) -> str:
    return (f"n={r['n']} bad_rate={r['bad_rate']:.3f} mean_pd={r['mean_pd']:.3f} "
            f"ece={r['ece']:.3f} auc={r['auc']:.3f} auc_lo={r['auc_lo']:.3f} "
            f"auc_recency_only={r['auc_recency_only']:.3f} gate={r['gate']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", choices=["xente", "null", "synthetic"], default="xente")
    ap.add_argument("--customers", type=int, default=None,
                    help="default: all 3,742 real customers (xente), 3,742 (null, synthetic)")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--end-date", default="2019-02-13")
    ap.add_argument("--as-of", default=None, help="T (default: end date + 1 - horizon)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--fast-load", action="store_true",
                    help="load with the tests' COPY loader instead of creditrisk ingest")
    args = ap.parse_args()
    from creditrisk.features.labels import DEFAULT_HORIZON_DAYS

    end = dt.date.fromisoformat(args.end_date)
    as_of = (dt.date.fromisoformat(args.as_of) if args.as_of
             else end + dt.timedelta(days=1 - DEFAULT_HORIZON_DAYS))
    customers = args.customers or (None if args.world == "xente" else 3742)
    with admin_url() as admin, tempfile.TemporaryDirectory(prefix="crforward-") as tmp:
        r = forward_test(world=args.world, customers=customers, days=args.days, end_date=end,
                         as_of=as_of, seed=args.seed, fast_load=args.fast_load,
                         workdir=Path(tmp), admin=admin)
    print(f"world={args.world} T={as_of} H={DEFAULT_HORIZON_DAYS} "
          f"seconds={r['seconds']:.0f}"
          + (f" oracle_auc={r['oracle_auc']:.3f} (sees the hidden trajectories)"
             if "oracle_auc" in r else ""), flush=True)
    print(last_line(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

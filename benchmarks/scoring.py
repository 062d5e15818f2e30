"""Benchmark: batch-score 1M customers the way score_customers does, on one machine.

A logistic-regression pipeline is trained on generated history (as `train` would), then
1,000,000 customers' feature rows (generated customers' real feature vectors, resampled
with new ids) are stored in ``customer_features`` and scored through the production
path: chunks of ``chunk_customers`` rows (policy.yaml) read from PostgreSQL, PD + policy
+ reason codes (`creditrisk.scoring.batch.score_features`), COPY into the stage, then the
atomic publish. The reference measured in the same run is the bare
``pipeline.predict_proba`` of the same rows in memory.

Last line: ``customers=… seconds=… rows_per_s=… predict_floor_seconds=… ratio=…``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _pg import admin_url, fresh_database  # noqa: E402 (the script's own folder)

END = dt.date(2019, 2, 13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed-customers", type=int, default=3_000)
    args = parser.parse_args()

    import numpy as np

    from creditrisk.catalogue import FEATURE_NAMES
    from creditrisk.features.compute import compute_features
    from creditrisk.features.labels import get_strategy
    from creditrisk.landing.simulate import generate_transactions
    from creditrisk.model.pipeline import make_pipeline
    from creditrisk.model.train import load_config
    from creditrisk.schema import WAREHOUSE_COLUMNS, XENTE_COLUMNS
    from creditrisk.scoring.batch import score_features
    from creditrisk.scoring.decide import load_policy
    from creditrisk.scoring.monitoring import monitoring_row
    from creditrisk.storage import features as store
    from creditrisk.storage import scores
    from creditrisk.storage.db import make_engine

    df = generate_transactions(customers=args.seed_customers, days=90, end_date=END, seed=3)
    tx = df.rename(columns=dict(zip(XENTE_COLUMNS, WAREHOUSE_COLUMNS, strict=True)))
    t_train = dt.date(2019, 1, 10)
    feats = compute_features(tx, t_train)
    labels = get_strategy("forward_window").label(tx, feats.index, t_train, 14).frame
    y = labels["is_high_risk"].to_numpy(dtype=int)
    spec = load_config()["ladder"]["logistic_regression"]
    pipeline = make_pipeline("logistic_regression", list(spec["columns"]),
                             spec["params"]).fit(feats[list(FEATURE_NAMES)], y)

    day = END + dt.timedelta(days=1)
    pool = compute_features(tx, day)
    rng = np.random.default_rng(0)
    rows = pool.iloc[rng.integers(0, len(pool), args.customers)].copy()
    rows.index = [f"CustomerId_{i}" for i in range(args.customers)]
    rows.index.name = "customer_id"
    policy = load_policy()
    chunk = int(policy["scoring"]["chunk_customers"])
    n_chunks = max(1, -(-args.customers // chunk))

    t0 = time.perf_counter()
    pipeline.predict_proba(rows[list(FEATURE_NAMES)])
    floor = time.perf_counter() - t0
    print(f"predict_proba floor on {args.customers} rows in memory: {floor:.2f} s")

    with admin_url() as admin, fresh_database(admin, "bench_scoring") as url:
        engine = make_engine(url)
        t0 = time.perf_counter()
        store.replace_features(engine, day, rows, "bench")
        print(f"stored {args.customers} feature rows in {time.perf_counter() - t0:.1f} s "
              "(setup, not timed)")
        phases = {"read": 0.0, "score": 0.0, "stage": 0.0}
        started = time.perf_counter()
        scores.clear_stage(engine, day)
        for c in range(n_chunks):
            t = time.perf_counter()
            part = store.read_features(engine, day, where_sql=scores.chunk_predicate(c, n_chunks))
            phases["read"] += time.perf_counter() - t
            t = time.perf_counter()
            scored = score_features(pipeline, part, policy)
            phases["score"] += time.perf_counter() - t
            scored["score_date"] = day.isoformat()
            scored["model_name"], scored["model_version"] = "bench", "1"
            scored["scored_at"] = dt.datetime.now(dt.UTC).isoformat()
            scored["run_id"] = "bench"
            t = time.perf_counter()
            scores.write_stage_chunk(engine, day, c, n_chunks, scored)
            phases["stage"] += time.perf_counter() - t
        # publish as creditrisk.scoring.batch.publish does, minus the registry lookup of the
        # training reference (no MLflow here): monitoring, then the atomic swap
        t = time.perf_counter()
        staged = scores.staged_frame(engine, day)
        staged = staged[staged["segment"] == "scored"]  # as publish does: PDs only
        mon = monitoring_row(
            staged["probability_of_default"].to_numpy(), staged["risk_band"].to_numpy(),
            staged["decision"].to_numpy(), store.read_features(engine, day), None,
            float(policy["monitoring"]["psi_threshold"]),
        )
        published = scores.publish(engine, day, args.customers, mon, "bench", "1", "bench")
        phases["publish"] = time.perf_counter() - t
        seconds = time.perf_counter() - started
        engine.dispose()
    print(f"chunks={n_chunks} of {chunk}; " + " ".join(f"{k}={v:.1f}s" for k, v in phases.items()))
    print(f"published={published} in_population={mon['n_scored']} mean_pd={mon['mean_pd']:.4f}")
    print(f"customers={args.customers} seconds={seconds:.1f} "
          f"rows_per_s={int(args.customers / seconds)} predict_floor_seconds={floor:.2f} "
          f"ratio={seconds / floor:.1f}")


if __name__ == "__main__":
    main()

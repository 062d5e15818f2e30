"""Benchmark: synthetic Xente landing files, 50,000 customers x 90 days by default.

Times ``generate_landing`` (simulation and writing of the daily files), then, on the same
frame, ``write_landing`` against a plain ``DataFrame.to_csv`` of it as the reference.
The last line is ``rows=<int> seconds=<float> rows_per_s=<int>`` for generate_landing.

Usage: python benchmarks/generate.py [--customers N] [--days D] [--seed S]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from creditrisk.landing.files import write_landing
from creditrisk.landing.simulate import generate_landing, generate_transactions

END = dt.date(2019, 2, 13)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="creditrisk-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        summary = generate_landing(
            customers=args.customers,
            days=args.days,
            end_date=END,
            out_dir=root / "landing",
            seed=args.seed,
        )
        total = time.perf_counter() - start

        start = time.perf_counter()
        df = generate_transactions(
            customers=args.customers, days=args.days, end_date=END, seed=args.seed
        )
        simulate = time.perf_counter() - start

        start = time.perf_counter()
        write_landing(df, root / "ours")
        ours = time.perf_counter() - start

        start = time.perf_counter()
        df.to_csv(root / "reference.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        reference = time.perf_counter() - start

    print(f"customers={args.customers} days={args.days} files={len(summary.files)}")
    print(f"simulate_seconds={simulate:.2f} write_landing_seconds={ours:.2f}")
    print(f"pandas_to_csv_seconds={reference:.2f}")
    print("# ratio = write_landing time / DataFrame.to_csv time on the same frame (<1: faster)")
    print(f"ratio_vs_pandas_to_csv={ours / reference:.3f}")
    print(f"rows={summary.rows} seconds={total:.3f} rows_per_s={int(summary.rows / total)}")


if __name__ == "__main__":
    main()

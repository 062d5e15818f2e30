"""Benchmark: text (CSV) against binary COPY into raw_transactions, same rows, same table.

Ingestion COPYs each file's good rows straight into ``raw_transactions`` as CSV text:
the file's own lines plus the file name and run id, joined in C by ``str.join``. This
measures whether PostgreSQL's binary COPY format would load faster. The binary payload
is produced by the server itself (``COPY ... TO STDOUT (FORMAT binary)`` of the same
rows), so its client-side encoding cost is zero here: a lower bound on what a binary
loader would pay. Each format is loaded ``--repeat`` times into the emptied table of a
fresh migrated warehouse, alternating, and committed; the medians are compared.

Database: ``TEST_DATABASE_URL`` or ``DATABASE_URL`` if set, else an embedded ``pgserver``.

The last line is ``rows=<int> csv_build_s=<float> csv_copy_s=<float> binary_copy_s=<float>
binary_gain=<float>`` where ``binary_gain`` = csv_copy_s / binary_copy_s (> 1: binary faster).

Usage: python benchmarks/copy_format.py [--customers N] [--days D] [--repeat R]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import tempfile
import time
from pathlib import Path

from _pg import admin_url, fresh_database  # the script's own folder


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from creditrisk.landing.simulate import generate_landing
    from creditrisk.schema import WAREHOUSE_COLUMNS
    from creditrisk.storage.db import make_engine

    with tempfile.TemporaryDirectory(prefix="creditrisk-bench-") as tmp:
        summary = generate_landing(customers=args.customers, days=args.days,
                                   end_date=dt.date(2019, 2, 13), out_dir=Path(tmp), seed=42)
        lines = [ln for f in summary.files for ln in f.read_text().splitlines()[1:]]
    start = time.perf_counter()
    suffix = ',"bench.csv","bench"\n'
    text = suffix.join(lines) + suffix
    build = time.perf_counter() - start
    cols = ", ".join(WAREHOUSE_COLUMNS) + ", source_file, ingest_run_id"
    with admin_url() as admin, fresh_database(admin, "crbench_copyfmt") as url:
        engine = make_engine(url)
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()

            def load(fmt: str, data: io.IOBase) -> float:
                cur.execute("TRUNCATE raw_transactions")
                raw.commit()
                data.seek(0)
                begin = time.perf_counter()
                cur.copy_expert(f"COPY raw_transactions ({cols}) FROM STDIN WITH (FORMAT {fmt})",
                                data)
                raw.commit()
                return time.perf_counter() - begin

            csv_buf = io.StringIO(text)
            load("csv", csv_buf)
            binary = io.BytesIO()
            cur.copy_expert(f"COPY raw_transactions ({cols}) TO STDOUT WITH (FORMAT binary)",
                            binary)
            times: dict[str, list[float]] = {"csv": [], "binary": []}
            for _ in range(args.repeat):
                times["csv"].append(load("csv", csv_buf))
                times["binary"].append(load("binary", binary))
            print("seconds per load: " + "; ".join(
                f"{k} {', '.join(f'{s:.2f}' for s in v)}" for k, v in times.items()))
        finally:
            raw.close()
            engine.dispose()
    csv_s, bin_s = statistics.median(times["csv"]), statistics.median(times["binary"])
    print(f"rows={len(lines)} csv_build_s={build:.3f} csv_copy_s={csv_s:.3f} "
          f"binary_copy_s={bin_s:.3f} binary_gain={csv_s / bin_s:.2f}")


if __name__ == "__main__":
    main()

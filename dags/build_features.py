"""
### build_features

Computes point-in-time customer features into `customer_features` (one row per
customer and as-of date, one column per feature of `creditrisk.catalogue.CATALOGUE`),
using only transactions strictly before the as-of date. When the outcome window after
the as-of date is already loaded, it also writes the proxy labels into
`customer_labels` (strategy `forward_window` by default) and logs the Information Value
of every feature.

**When.** Whenever `ingest_transactions` updates the `raw_transactions` asset, and also
daily at 04:00 UTC (an asset-or-time schedule). An asset-triggered run builds the day
after the newest loaded transaction day, so the features include everything ingested
so far; a daily run builds its logical date's day. Trigger by hand with
`{"as_of": "2019-02-14"}` (a date picker in the form) to build another date, and
`label_strategy` (`forward_window` or `rfm_kmeans`) or `horizon_days` (1–365) to change
the label; other values are refused when the run is triggered.

**Backfill.** The daily schedule makes the DAG backfillable: `airflow backfill create
--dag-id build_features --from-date 2019-01-01 --to-date 2019-01-31` builds one as-of
date per day (add `--dry-run` to list them first). Unpausing starts no run for a past
04:00.

**Incremental.** The build reads no transaction history: ingestion keeps per-customer
daily aggregates, and a date starts from the previous date's cumulative state plus the
days in between (docs/data.md, "Features and labels"), one hash chunk of customers at a
time (one chunk per 200,000 customers), so memory is bounded by the chunk.

**Limits.** Owner `creditrisk-platform`. `build` is stopped (and retried) after 30
minutes per try; see docs/benchmarks.md for the measured times at 1M transactions.

**Re-runs.** The date's rows are replaced in one transaction (chunks are staged first):
a re-run never duplicates, a crash between chunks leaves the previous date whole, and
readers see the old or the new date, never a mix. The same step by hand:
`creditrisk features --as-of 2019-02-14` (`--rebuild` recomputes the aggregates from
`raw_transactions` first).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, Param, dag, task
from dag_common.assets import CUSTOMER_FEATURES, RAW_TRANSACTIONS
from dag_common.conventions import daily, date_param, default_args, timeout

DAG_ID = "build_features"


@dag(
    dag_id=DAG_ID,
    # Asset-triggered after each ingest, and periodic (daily) so that it can be backfilled.
    schedule=AssetOrTimeSchedule(timetable=daily("0 4 * * *"), assets=[RAW_TRANSACTIONS]),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=2)),
    tags=["creditrisk", "features"],
    params={
        "as_of": date_param("Feature date (YYYY-MM-DD); empty: the newest loaded day + 1"),
        "label_strategy": Param("forward_window", type="string",
                                enum=["forward_window", "rfm_kmeans"],
                                description="How the proxy default label is made"),
        # the platform's label horizon (creditrisk.features.labels.DEFAULT_HORIZON_DAYS)
        "horizon_days": Param(14, type="integer", minimum=1, maximum=365,
                              description="Outcome window after the as-of date, in days"),
    },
    doc_md=__doc__,
)
def build_features() -> None:
    @task(outlets=[CUSTOMER_FEATURES], multiple_outputs=False,
          execution_timeout=timeout(DAG_ID, "build"))
    def build(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.dates import feature_as_of
        from creditrisk.tasks import build_from_settings

        params = context["params"]
        return build_from_settings(
            as_of=feature_as_of(str(context["dag_run"].run_type), context.get("logical_date"),
                                params.get("as_of")),
            run_id=context["run_id"],
            label_strategy=params["label_strategy"],
            horizon_days=int(params["horizon_days"]),
        )

    build()


build_features()

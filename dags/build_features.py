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

**Incremental.** The build reads no transaction history: ingestion marks the days it
loads, `plan` first re-aggregates those days into per-customer daily aggregates (one
pass, however many files came in), and a date starts from the previous date's
cumulative state plus the days in between (docs/data.md, "Features and labels"). `plan`
then chooses that state and
splits the customers into hash chunks (one per 200,000 customers, or the `chunks`
param); each chunk is folded, computed and staged by a mapped `build_chunk` task of its
own, so the work fans out across workers and memory is bounded by the chunk. `publish`
checks every chunk is staged (and still folded: a refresh by another build meanwhile
refuses it), then swaps the date in with its labels.

**Limits.** Owner `creditrisk-platform`. Each try is stopped (and retried) after: `plan`
10 min, `chunk_ids` 5 min, `build_chunk` 30 min, `publish` 30 min; see
docs/benchmarks.md for the measured times at 1M transactions.

**Re-runs.** The date's rows are replaced in one transaction by `publish`, which refuses
while a chunk of the plan is missing: a re-run never duplicates, a failed chunk leaves
the previous date whole, and readers see the old or the new date, never a mix. A
retried or cleared `build_chunk` replaces what its earlier try staged. The same steps
in one process: `creditrisk features --as-of 2019-02-14` (`--rebuild` recomputes the
aggregates from `raw_transactions` first).
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
        "chunks": Param(None, type=["null", "integer"], minimum=1, maximum=4096,
                        description="Hash chunks of customers, one build_chunk task each; "
                                    "empty: one per 200,000 customers"),
    },
    doc_md=__doc__,
)
def build_features() -> None:
    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "plan"))
    def plan(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.dates import feature_as_of
        from creditrisk.tasks import plan_features_from_settings

        params = context["params"]
        return plan_features_from_settings(
            as_of=feature_as_of(str(context["dag_run"].run_type), context.get("logical_date"),
                                params.get("as_of")),
            label_strategy=params["label_strategy"],
            horizon_days=int(params["horizon_days"]),
            chunks=params.get("chunks"),
            run_id=context["run_id"],
        )

    @task(execution_timeout=timeout(DAG_ID, "chunk_ids"))
    def chunk_ids(plan: dict) -> list[int]:
        return list(range(int(plan["chunks"])))

    @task(multiple_outputs=False, execution_timeout=timeout(DAG_ID, "build_chunk"))
    def build_chunk(chunk: int, plan: dict, **context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import feature_chunk_from_settings

        return feature_chunk_from_settings(plan, chunk, run_id=context["run_id"])

    @task(outlets=[CUSTOMER_FEATURES], multiple_outputs=False,
          execution_timeout=timeout(DAG_ID, "publish"))
    def publish(plan: dict, staged: list[dict], **context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import publish_features_from_settings

        return publish_features_from_settings(plan, list(staged), run_id=context["run_id"])

    planned = plan()
    publish(planned, build_chunk.partial(plan=planned).expand(chunk=chunk_ids(planned)))


build_features()

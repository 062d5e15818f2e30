"""
### build_features

Computes point-in-time customer features into `customer_features` (one row per
customer and as-of date, one column per feature of `creditrisk.catalogue.CATALOGUE`),
using only transactions strictly before the as-of date. When the outcome window after
the as-of date is already loaded, it also writes the proxy labels into
`customer_labels` (strategy `forward_window` by default) and logs the Information Value
of every feature.

**When.** Runs whenever `ingest_transactions` updates the `raw_transactions` asset. The
as-of date is the day after the newest loaded transaction day, so the features include
everything ingested so far. Trigger by hand with `{"as_of": "2019-02-14"}` to build
another date (and `label_strategy`, `horizon_days` to change the label).

**Re-runs.** The date's rows are replaced in one transaction: a re-run never
duplicates, and readers see the old or the new date, never a mix. The same step by
hand: `creditrisk features --as-of 2019-02-14`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from dag_common.alerting import on_task_failure
from dag_common.assets import CUSTOMER_FEATURES, RAW_TRANSACTIONS


@dag(
    dag_id="build_features",
    schedule=[RAW_TRANSACTIONS],
    start_date=dt.datetime(2018, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2),
                  "on_failure_callback": on_task_failure},
    tags=["creditrisk", "features"],
    params={
        "as_of": Param(None, type=["null", "string"], description="Feature date (YYYY-MM-DD)"),
        "label_strategy": Param("forward_window", type="string",
                                enum=["forward_window", "rfm_kmeans"]),
        # the platform's label horizon (creditrisk.features.labels.DEFAULT_HORIZON_DAYS)
        "horizon_days": Param(14, type="integer", minimum=1),
    },
    doc_md=__doc__,
)
def build_features() -> None:
    @task(outlets=[CUSTOMER_FEATURES], multiple_outputs=False)
    def build(**context) -> dict:  # type: ignore[no-untyped-def]
        from creditrisk.tasks import build_from_settings

        params = context["params"]
        return build_from_settings(
            as_of=params.get("as_of"),
            run_id=context["run_id"],
            label_strategy=params["label_strategy"],
            horizon_days=int(params["horizon_days"]),
        )

    build()


build_features()

"""Sync a Microsoft 365 tenant's inventory (users, licences, Teams, members, channels, installed apps, directory
roles) into Parquet under ``MSTEAMS_DATA_ROOT``, incrementally after the first run.

One DAG per connected tenant: ``msteams_sync`` for the ``msteams_default`` connection and ``msteams_sync__<conn_id>``
for each connection id listed in ``MSTEAMS_TENANTS``.

* ``plan`` resolves the tenant, reads ``{root}/{tenant_id}/latest.json`` and decides full or incremental (Param
  ``full_refresh`` forces a full run).
* One task per table; fan-out tables (installed apps per user, members and channels per team) are mapped over
  ``MSTEAMS_GRAPH_POOL_SLOTS`` shards (4; read where the DAG file is parsed, so the shard count is part of the DAG)
  that run in the ``msteams_graph`` pool (``python -m teamsops_airflow.setup`` creates it), each pacing at 1/shards
  of Graph's limits so that together they stay at, not over, the tenant's throttling ceiling.
* ``publish`` checks counts and keys, writes the run manifest and then ``latest.json``; it alone emits the
  ``msteams://{conn_id}/{table}`` assets, so nothing downstream starts on data that was never published. A failed
  run leaves ``latest.json`` (and the deltaLinks it points to) as it was; re-running it overwrites its own files.

Layout: ``{root}/{tenant_id}/{table}/run_id=.../part-*.parquet``, ``{root}/{tenant_id}/runs/{run_id}/manifest.json``,
``{root}/{tenant_id}/latest.json``. Tuning by environment: see ``teamsops_airflow.sync_tasks``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ExceptionRetryPolicy, Param, RetryAction, RetryRule, get_current_context, task

from teamsops_airflow.dag_defaults import (DATA_ROOT_RETRY_RULE, DEFAULT_ARGS, GRAPH_RETRY_POLICY, Tag,
                                          table_asset_uri, tenant_connection_ids, tenant_dag_id)
from teamsops_airflow.sync_tasks import FANOUT_TABLES, GRAPH_POOL, TABLE_ORDER, TABLE_PARENTS, pool_slots

DAG_ID = Path(__file__).stem

# Settings errors cannot heal by retrying; everything else follows the project's Graph retry policy.
SYNC_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        DATA_ROOT_RETRY_RULE,
        RetryRule(exception="teamsops_airflow.sync_tasks.SyncSettingsError", action=RetryAction.FAIL,
                  reason="Invalid sync setting in the environment: fix it and re-run"),
        *GRAPH_RETRY_POLICY.rules,
    ],
)  # fmt: skip


def table_asset(conn_id: str, table: str) -> Asset:
    return Asset(table_asset_uri(conn_id, table))


def build(conn_id: str) -> DAG:
    """The sync DAG of one tenant connection."""
    # A fixed list: Airflow creates the mapped shards with the run, instead of after a task that computes the list
    # (one more process on the way to the first installedApps request). The plan receives the same number.
    shards = list(range(pool_slots()))
    with DAG(
        dag_id=tenant_dag_id(DAG_ID, conn_id),
        description=f"Sync the inventory of the tenant behind connection {conn_id} into Parquet",
        doc_md=__doc__,
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=12),
        default_args={**DEFAULT_ARGS, "retry_policy": SYNC_RETRY_POLICY},
        params={"full_refresh": Param(False, type="boolean",
                                      description="Re-read everything instead of applying changes since the last run")},
        tags=[Tag.MSTEAMS.value, Tag.SYNC.value],
    ) as dag:  # fmt: skip

        @task(task_id="plan")
        def plan_run() -> dict[str, Any]:
            from teamsops_airflow import sync_tasks

            context = get_current_context()
            return sync_tasks.plan(conn_id, context["run_id"], full_refresh=context["params"]["full_refresh"],
                                   shards=len(shards))

        @task
        def extract(run: dict[str, Any], table: str, shard: int = 0) -> dict[str, Any]:
            from teamsops_airflow import sync_tasks

            return sync_tasks.extract(run, table, shard)

        @task(task_id="publish", outlets=[table_asset(conn_id, t) for t in TABLE_ORDER])
        def publish(run: dict[str, Any], results: list[Any]) -> dict[str, Any]:
            from teamsops_airflow import sync_tasks

            summary = sync_tasks.publish(run, results)
            events = get_current_context()["outlet_events"]
            for table, info in summary["tables"].items():
                events[table_asset(conn_id, table)].extra = {
                    "tenant_id": summary["tenant_id"], "run_id": summary["run_id"], "mode": summary["mode"], **info,
                }  # fmt: skip
            return summary

        run = plan_run()
        tasks: dict[str, Any] = {}
        for table in TABLE_ORDER:
            if table in FANOUT_TABLES:
                tasks[table] = extract.override(task_id=table, pool=GRAPH_POOL, map_index_template="shard {{ shard }}") \
                    .partial(run=run, table=table).expand(shard=shards)  # fmt: skip
            else:
                tasks[table] = extract.override(task_id=table)(run, table)
        for table in TABLE_ORDER:
            for parent in TABLE_PARENTS[table]:
                tasks[parent] >> tasks[table]
        publish(run, list(tasks.values()))
    return dag


for _conn_id in tenant_connection_ids():
    globals()[tenant_dag_id(DAG_ID, _conn_id)] = build(_conn_id)

"""Report on a Microsoft 365 tenant each time its sync publishes: Parquet tables and one self-contained HTML page.

One DAG per connected tenant: ``msteams_reports`` for the ``msteams_default`` connection and
``msteams_reports__<conn_id>`` for each connection id listed in ``MSTEAMS_TENANTS``. Each is scheduled on the assets
``msteams://{conn_id}/{table}`` that the sync's ``publish`` task emits for the tables the report reads, so it runs
only on data that was published.

The page covers licence utilisation per SKU, licence waste (licences on disabled accounts and guests, with the
users), ownerless and single-owner teams, teams with guests and guests by team, the app inventory (custom and
sideloaded apps flagged), privileged role holders, and the users added, disabled and removed since the previous run.

Output: ``{root}/{tenant_id}/reports/run_id=<sync run>/{table}.parquet`` and ``report.html``, then
``{root}/{tenant_id}/reports/latest.json``. ``MSTEAMS_REPORT_KEEP_RUNS`` (default 30) report runs are kept.
A manual run reports on the latest published sync.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetAll, ExceptionRetryPolicy, RetryAction, RetryRule, get_current_context, task

from teamsops_airflow.dag_defaults import (DATA_ROOT_RETRY_RULE, DEFAULT_ARGS, GRAPH_RETRY_POLICY, Tag,
                                          table_asset_uri, tenant_connection_ids, tenant_dag_id)
from teamsops_airflow.reports_tasks import READ_TABLES

DAG_ID = Path(__file__).stem

# Nothing published yet, or bad settings: retrying the same inputs gives the same answer.
REPORT_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(exception="teamsops.reports.errors.ReportSettingsError", action=RetryAction.FAIL,
                  reason="Invalid report setting in the environment: fix it and re-run"),
        DATA_ROOT_RETRY_RULE,
        *GRAPH_RETRY_POLICY.rules,
    ],
)  # fmt: skip


def build(conn_id: str) -> DAG:
    """The reports DAG of one tenant connection."""
    with DAG(
        dag_id=tenant_dag_id(DAG_ID, conn_id),
        description=f"Report on the tenant behind connection {conn_id} when its sync publishes",
        doc_md=__doc__,
        schedule=AssetAll(*(Asset(table_asset_uri(conn_id, t)) for t in READ_TABLES)),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=2),
        default_args={**DEFAULT_ARGS, "retry_policy": REPORT_RETRY_POLICY},
        tags=[Tag.MSTEAMS.value, Tag.REPORT.value],
    ) as dag:  # fmt: skip

        @task(task_id="report")
        def report() -> dict[str, Any]:
            from teamsops_airflow import reports_tasks

            events = get_current_context().get("triggering_asset_events")
            return reports_tasks.build(conn_id, events)

        report()
    return dag


for _conn_id in tenant_connection_ids():
    globals()[tenant_dag_id(DAG_ID, _conn_id)] = build(_conn_id)

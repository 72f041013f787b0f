"""Check every connected tenant's App Registration: a token can be acquired and it carries every permission needed.

For each connection (``msteams_default`` plus the ids in ``MSTEAMS_TENANTS``) this acquires an app-only token and
compares its ``roles`` with the Graph application permissions the sync (and, for ``access=read_write``, the actions)
need. A wrong or expired secret, an unknown tenant or a missing permission fails the task with one sentence that says
what to fix and where (Entra admin center).
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from teamsops_airflow.dag_defaults import DEFAULT_ARGS, Tag, tenant_connection_ids


@dag(
    dag_id=Path(__file__).stem,
    description=__doc__.partition(".")[0],
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[Tag.MSTEAMS.value, Tag.HEALTH.value],
)
def msteams_connection_check() -> None:
    @task(retries=0)
    def check(conn_id: str) -> dict:
        """Fail with the hook's explanation when the connection cannot do its job."""
        from airflow.sdk.exceptions import AirflowFailException

        from teamsops_airflow.hooks import MSTeamsHook

        hook = MSTeamsHook(conn_id)
        try:
            ok, message = hook.test_connection()
        finally:
            hook.close()
        if not ok:
            raise AirflowFailException(f"{conn_id}: {message}")
        return {"conn_id": conn_id, "message": message}

    check.expand(conn_id=tenant_connection_ids())


msteams_connection_check()

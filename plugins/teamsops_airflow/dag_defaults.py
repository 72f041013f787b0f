"""Defaults every project DAG shares: owner, retries, the retry policy and the controlled tag vocabulary.

Kept import-light (no Graph client, no connection lookups) because DAG files import it at parse time.
"""

from __future__ import annotations

import os
from datetime import timedelta
from enum import Enum

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

OWNER = "it-ops"
DEFAULT_CONN_ID = "msteams_default"


class Tag(str, Enum):
    """The only tags project DAGs may carry (checked by tests/dags/test_dag_integrity.py)."""

    MSTEAMS = "msteams"
    SYNC = "sync"
    ACTION = "action"
    HEALTH = "health"
    REPORT = "report"


# Fail fast where a retry cannot help (bad credentials, missing permission, bad configuration, a refused write);
# retry throttling, outages and connection errors, which Graph documents as transient.
GRAPH_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(exception="teamsops.graph.errors.GraphAuthError", action=RetryAction.FAIL,
                  reason="Authentication failed: fix the connection's credentials"),
        RetryRule(exception="teamsops.graph.errors.GraphForbidden", action=RetryAction.FAIL,
                  reason="Missing Graph permission: grant it and re-run"),
        RetryRule(exception="teamsops.graph.errors.GraphConfigError", action=RetryAction.FAIL,
                  reason="Invalid connection settings"),
        RetryRule(exception="teamsops.graph.errors.ReadOnlyError", action=RetryAction.FAIL,
                  reason="The connection is read-only"),
        RetryRule(exception="teamsops.graph.errors.GraphThrottled", action=RetryAction.RETRY,
                  retry_delay=timedelta(minutes=2), reason="Throttled by Graph beyond the client's retry budget"),
        RetryRule(exception="teamsops.graph.errors.GraphServerError", action=RetryAction.RETRY,
                  retry_delay=timedelta(minutes=1), reason="Graph outage"),
        RetryRule(exception="teamsops.graph.errors.GraphConnectionError", action=RetryAction.RETRY,
                  retry_delay=timedelta(minutes=1), reason="Network error"),
    ],
)  # fmt: skip

# Shared by the DAGs that write under MSTEAMS_DATA_ROOT (sync, reports): a root that cannot be used stays so.
DATA_ROOT_RETRY_RULE = RetryRule(exception="teamsops_airflow.storage.DataRootError", action=RetryAction.FAIL,
                                 reason="MSTEAMS_DATA_ROOT cannot be used: fix it and re-run")  # fmt: skip

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "retry_policy": GRAPH_RETRY_POLICY,
}


def tenant_connection_ids() -> list[str]:
    """``msteams_default`` plus every connection id listed in ``MSTEAMS_TENANTS`` (comma-separated).

    Reading one environment variable with a default is cheap and safe at parse time (no connection is resolved).
    """
    extra = [c.strip() for c in os.getenv("MSTEAMS_TENANTS", "").split(",") if c.strip()]
    return [DEFAULT_CONN_ID] + [c for c in dict.fromkeys(extra) if c != DEFAULT_CONN_ID]


def tenant_dag_id(base: str, conn_id: str) -> str:
    """The DAG id of a per-tenant DAG: ``base`` for ``msteams_default``, ``base__<conn_id>`` for the others."""
    return base if conn_id == DEFAULT_CONN_ID else f"{base}__{conn_id}"


def table_asset_uri(conn_id: str, table: str) -> str:
    """The asset a sync DAG's ``publish`` task emits for one table of one tenant connection (the reports DAGs are
    scheduled on these)."""
    return f"msteams://{conn_id}/{table}"

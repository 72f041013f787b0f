"""Task callables of the ``msteams_reports`` DAGs: which tenant, which data root, how many runs to keep.

The report itself is built by :func:`teamsops.reports.build_report` (Airflow-free). This module

* finds the tenant: from the sync's asset events (their ``extra`` carries ``tenant_id``), or - for a manual run -
  from the connection (a GUID ``tenant_id`` as it is, otherwise the ``tid`` of an access token);
* reads the data root the way the sync does (``MSTEAMS_DATA_ROOT``, :mod:`teamsops_airflow.storage`);
* reads ``MSTEAMS_REPORT_KEEP_RUNS`` [30] (report runs kept per tenant; older report folders are deleted);
* returns paths and counts only (XCom stays small).

Heavy imports (pandas, pyarrow, matplotlib) happen inside the functions: the DAG file imports this at parse time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from teamsops.reports.names import READ_TABLES

__all__ = ["READ_TABLES", "build", "tenant_ids"]

log = logging.getLogger(__name__)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _event_tenants(events: Mapping[Any, Iterable[Any]] | None) -> list[str]:
    found: dict[str, None] = {}
    for asset_events in (events or {}).values():
        for event in asset_events:
            tenant = (getattr(event, "extra", None) or {}).get("tenant_id")
            if tenant:
                found[str(tenant).lower()] = None
    return list(found)


def tenant_ids(conn_id: str, events: Mapping[Any, Iterable[Any]] | None = None) -> list[str]:
    """The tenant(s) to report on: named by the triggering sync events, else resolved from the connection."""
    from_events = _event_tenants(events)
    if from_events:
        return from_events
    from teamsops_airflow.hooks import MSTeamsHook

    configured = MSTeamsHook(conn_id).settings.tenant_id
    if _GUID.match(configured or ""):
        return [configured.lower()]
    # The connection names its tenant by domain: the data folder is the GUID, which only a token tells.
    from teamsops.sync.plan import tenant_of
    from teamsops_airflow.sync_tasks import graph_client

    with graph_client(conn_id) as client:
        return [tenant_of(client)]


def build(conn_id: str, events: Mapping[Any, Iterable[Any]] | None = None) -> dict[str, Any]:
    """Build the report of every tenant concerned; return per tenant the report's URL, its run and row counts."""
    from teamsops.reports import build_report, keep_runs_from_env
    from teamsops_airflow.storage import data_root

    keep = keep_runs_from_env()
    root = data_root()
    reports = {}
    for tenant_id in tenant_ids(conn_id, events):
        summary = build_report(root, tenant_id, keep_runs=keep)
        reports[tenant_id] = {
            "run_id": summary["run_id"],
            "report": summary["report"],
            "previous_run_id": summary["previous_run_id"],
            "tables": {name: {"path": t["path"], "rows": t["rows"]} for name, t in summary["tables"].items()},
            "kept_runs": len(summary["kept_runs"]),
            "deleted_runs": len(summary["deleted_runs"]),
        }
        log.info("Report for %s (tenant %s, sync run %s): %s", conn_id, tenant_id, summary["run_id"],
                 summary["report"])
    return {"conn_id": conn_id, "root": str(root), "reports": reports}

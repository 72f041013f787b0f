"""The tenant inventory sync, without Airflow: plan a run, extract tables into Parquet, validate and publish.

.. code-block:: python

    from teamsops.sync import TABLE_ORDER, SyncConfig, plan_run, publish, run_table, table_frame

    plan = plan_run(client, root, "manual__1")                  # tenant, mode (full / incremental) and why
    results = [run_table(client, root, plan, t, config=SyncConfig()) for t in TABLE_ORDER]  # parents first
    manifest = publish(root, plan, results)                     # validates, then writes latest.json last
    users = table_frame(root, plan.tenant_id, "users")

or, concurrently and sharded like the DAG, ``sync_tenant(make_client, root, run_id, config=...)``.

``root`` is a ``upath.UPath`` or Airflow ``ObjectStoragePath`` (``file://``, ``abfs://conn@container/...``); the
layout under it is described in :mod:`teamsops.sync.storage`. Tables and columns: :data:`TABLES`. An orchestrator
runs the tables in dependency order (``TABLES[name].parents``), fan-out tables once per shard, and hands every
:class:`TableResult` to :func:`publish`. Nothing but ``publish`` writes ``latest.json``, so a failed or killed
run never changes what readers see nor the deltaLinks the next run starts from.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from teamsops.sync.names import FANOUT_TABLES, TABLE_ORDER, TABLE_PARENTS

if TYPE_CHECKING:
    from teamsops.sync.errors import SyncError, SyncValidationError
    from teamsops.sync.local import sync_tenant
    from teamsops.sync.models import RunPlan, SyncConfig, TableResult
    from teamsops.sync.plan import plan_run, read_latest
    from teamsops.sync.publishing import publish, table_frame
    from teamsops.sync.run import run_table
    from teamsops.sync.tables import TABLES, Link, TableSpec

__all__ = [
    "FANOUT_TABLES",
    "TABLES",
    "TABLE_ORDER",
    "TABLE_PARENTS",
    "Link",
    "RunPlan",
    "SyncConfig",
    "SyncError",
    "SyncValidationError",
    "TableResult",
    "TableSpec",
    "plan_run",
    "publish",
    "read_latest",
    "run_table",
    "sync_tenant",
    "table_frame",
]

# Arrow's allocator is chosen once, when pyarrow is first imported, from this variable. The pyarrow wheels default to
# mimalloc, which reserves 1 GiB arenas and keeps what the engine's threads free for reuse: at 10,000 users it held
# ~100 MB the sync no longer used (bench/README.md, "Memory"). The C library's allocator gives memory back. Set here,
# before any engine module imports pyarrow; a value the deployment set wins. (Only an environment default: nothing is
# imported or allocated, so DAG files may still import this package at parse time.)
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

# The engine needs pyarrow and pandas; importing them costs seconds, so names are resolved on first use (a DAG file
# may import teamsops.sync at parse time for TABLE_ORDER / TABLE_PARENTS / FANOUT_TABLES without paying for them).
_LAZY = {
    "SyncError": "errors", "SyncValidationError": "errors", "sync_tenant": "local", "RunPlan": "models",
    "SyncConfig": "models", "TableResult": "models", "plan_run": "plan", "read_latest": "plan",
    "publish": "publishing", "table_frame": "publishing", "run_table": "run", "TABLES": "tables", "Link": "tables",
    "TableSpec": "tables",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'teamsops.sync' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"teamsops.sync.{module}"), name)
    globals()[name] = value
    return value

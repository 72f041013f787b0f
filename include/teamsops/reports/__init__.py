"""Tenant reports, without Airflow: from a published sync run to Parquet tables and one self-contained HTML page.

.. code-block:: python

    from teamsops.reports import build_report

    summary = build_report(root, tenant_id, keep_runs=30)   # reads {root}/{tenant_id}/latest.json
    summary["report"]                                       # .../reports/run_id=<run>/report.html
    summary["metrics"]["waste.total.licences"]

Modules: ``names`` (plain Python, cheap at DAG parse time), ``compute`` (the tables, pandas), ``charts``
(matplotlib, inline SVG), ``render`` (the page), ``build`` (storage, history, retention).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from teamsops.reports.errors import ReportError, ReportSettingsError
from teamsops.reports.names import DEFAULT_KEEP_RUNS, KEEP_RUNS_ENV, READ_TABLES, REPORT_TABLES

if TYPE_CHECKING:
    from teamsops.reports.build import build_report, keep_runs_from_env, read_history, read_report_latest
    from teamsops.reports.compute import SCHEMAS

__all__ = ["DEFAULT_KEEP_RUNS", "KEEP_RUNS_ENV", "READ_TABLES", "REPORT_TABLES", "SCHEMAS", "ReportError",
           "ReportSettingsError", "build_report", "keep_runs_from_env", "read_history",
           "read_report_latest"]  # fmt: skip

# pandas, pyarrow and matplotlib cost seconds to import: resolved on first use, like teamsops.sync.
_LAZY = {"build_report": "build", "keep_runs_from_env": "build", "read_history": "build",
         "read_report_latest": "build", "SCHEMAS": "compute"}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'teamsops.reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"teamsops.reports.{module}"), name)
    globals()[name] = value
    return value

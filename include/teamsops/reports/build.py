"""``build_report``: read a tenant's latest published sync, write the report tables, the HTML page and the index.

Layout under ``{root}/{tenant_id}/reports/``::

    run_id={run_key}/{table}.parquet   the report tables (:data:`teamsops.reports.compute.SCHEMAS`)
    run_id={run_key}/report.html       the self-contained page
    run_id={run_key}/meta.json         what the run was built from (lets the history be rebuilt)
    history.json                       the kept report runs, oldest first
    latest.json                        the newest report; written after everything it points to

``run_key`` is the sync run's folder key, so a report belongs to exactly one published sync run and building it
again (a retried task) overwrites its own files. Storage is duck-typed like the sync's (``upath.UPath`` or Airflow's
``ObjectStoragePath``: ``file://``, ``abfs://``).

The previous run, for "what changed", is the newest kept report whose sync run finished before this one; its
``users_snapshot.parquet`` is kept with it, because the sync may have deleted that run's own files by now. With no
report yet, the sync manifest's own ``previous`` run is used if its users files still exist.

Retention keeps the newest ``keep_runs`` report runs: the index is trimmed and ``latest.json`` written first, then
older ``run_id=...`` folders are deleted, so a reader never finds ``latest.json`` pointing at a deleted folder.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from teamsops.reports.compute import SCHEMAS, compute_all, to_arrow
from teamsops.reports.errors import ReportError, ReportSettingsError
from teamsops.reports.names import DEFAULT_KEEP_RUNS, KEEP_RUNS_ENV, READ_TABLES
from teamsops.reports.render import DEFAULT_MAX_ROWS, render_report
from teamsops.sync.storage import list_parts, read_json, resolve, run_key_for, tenant_dir, write_json_atomic

__all__ = ["REPORT_FORMAT", "build_report", "keep_runs_from_env", "read_history", "read_report_latest",
           "reports_dir"]  # fmt: skip

log = logging.getLogger(__name__)

REPORT_FORMAT = 1
_RUN_PREFIX = "run_id="


def keep_runs_from_env() -> int:
    """``MSTEAMS_REPORT_KEEP_RUNS`` (default 30): how many report runs to keep."""
    raw = os.environ.get(KEEP_RUNS_ENV, "").strip()
    if not raw:
        return DEFAULT_KEEP_RUNS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ReportSettingsError(f"{KEEP_RUNS_ENV}={raw!r} is invalid: expected an integer >= 1 (the number of "
                                  f"report runs to keep; default {DEFAULT_KEEP_RUNS}).")
    return value


def reports_dir(root: Any, tenant_id: str) -> Any:
    return tenant_dir(root, tenant_id) / "reports"


def _run_dir(root: Any, tenant_id: str, run_key: str) -> Any:
    return reports_dir(root, tenant_id) / f"{_RUN_PREFIX}{run_key}"


def read_report_latest(root: Any, tenant_id: str) -> dict[str, Any] | None:
    """``reports/latest.json`` of a tenant, or None before the first report."""
    return read_json(reports_dir(root, tenant_id) / "latest.json")


# ---------------------------------------------------------------------------------------------- reading the sync
def _published(root: Any, tenant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``latest.json`` of the sync and the manifest it points to."""
    from teamsops.sync import read_latest

    latest = read_latest(root, tenant_id)
    if latest is None:
        raise ReportError(f"nothing has been published for tenant {tenant_id} under {tenant_dir(root, tenant_id)}: "
                          "run the msteams_sync DAG first; the report runs when it publishes")
    missing = [t for t in READ_TABLES if t not in latest.get("tables", {})]
    if missing:
        raise ReportError(f"the published sync run {latest.get('run_id')} of tenant {tenant_id} lacks the table(s) "
                          f"{', '.join(missing)}: run a full sync (Param full_refresh) with this version")
    manifest_rel = latest.get("manifest_relative_path") or f"runs/{run_key_for(latest['run_id'])}/manifest.json"
    manifest = read_json(resolve(root, tenant_id, manifest_rel)) or {}
    return latest, manifest


def _read_table(root: Any, tenant_id: str, table: str, relative: str, rows: int | None = None) -> pd.DataFrame:
    from teamsops.sync import TABLES

    schema = TABLES[table].schema
    parts = list_parts(resolve(root, tenant_id, relative))
    frames = []
    for part in parts:
        with part.open("rb") as handle:
            frames.append(pq.read_table(handle, schema=schema))
    data = pa.concat_tables(frames) if frames else schema.empty_table()
    if rows is not None and data.num_rows != rows:
        raise ReportError(f"{table}: the sync published {rows:,} rows in {relative} but {data.num_rows:,} were read; "
                          "its files changed after publishing (retention, or a rerun in progress): run the report "
                          "again once the sync has finished")
    return data.to_pandas()


def _sync_frames(root: Any, tenant_id: str, latest: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Every table the report reads, from the one published run ``latest`` names (never mixing two runs)."""
    return {t: _read_table(root, tenant_id, t, latest["tables"][t]["relative_path"], latest["tables"][t]["rows"])
            for t in READ_TABLES}


# ---------------------------------------------------------------------------------------------- history
def read_history(root: Any, tenant_id: str) -> list[dict[str, Any]]:
    """The kept report runs, oldest first. Rebuilt from the runs' ``meta.json`` if the index is lost."""
    try:
        index = read_json(reports_dir(root, tenant_id) / "history.json")
    except ValueError:
        log.warning("reports/history.json of tenant %s is not valid JSON; rebuilding it from the report runs",
                    tenant_id)
        index = None
    if index is not None:
        return list(index.get("runs", []))
    folder = reports_dir(root, tenant_id)
    runs = []
    for path in folder.iterdir() if folder.exists() else []:
        if path.name.startswith(_RUN_PREFIX):
            try:
                meta = read_json(path / "meta.json")
            except ValueError:
                meta = None
            if meta and meta.get("run_key"):
                runs.append(_history_entry(meta))
    return _ordered(runs)


def _history_entry(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta.get(k) for k in ("run_key", "run_id", "finished_at", "built_at", "mode")}


def _ordered(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda r: (str(r.get("finished_at") or ""), str(r.get("built_at") or "")))


def _previous_users(root: Any, tenant_id: str, run_key: str, finished_at: str, manifest: dict[str, Any],
                    history: list[dict[str, Any]]) -> tuple[pd.DataFrame | None, str | None]:  # fmt: skip
    """The users of the previous run (see the module docstring) and its sync run id, or (None, None)."""
    from teamsops.reports.compute import users_snapshot

    earlier = [r for r in history if r["run_key"] != run_key and str(r.get("finished_at") or "") < finished_at]
    for entry in reversed(earlier):
        path = _run_dir(root, tenant_id, entry["run_key"]) / "users_snapshot.parquet"
        if path.exists():
            with path.open("rb") as handle:
                return pq.read_table(handle).to_pandas(), entry["run_id"]
        log.warning("report run %s has no users snapshot; comparing with an older one", entry["run_id"])
    previous = manifest.get("previous") or {}
    if previous.get("manifest"):
        old = read_json(resolve(root, tenant_id, previous["manifest"])) or {}
        entry = (old.get("tables") or {}).get("users")
        if entry and list_parts(resolve(root, tenant_id, entry["relative_path"])):
            users = _read_table(root, tenant_id, "users", entry["relative_path"], entry.get("rows"))
            return users_snapshot(users), old.get("run_id")
    return None, None


def _apply_retention(root: Any, tenant_id: str, kept: list[dict[str, Any]]) -> list[str]:
    """Delete the ``run_id=...`` folders that are not kept; returns the run keys deleted."""
    keep = {r["run_key"] for r in kept}
    folder = reports_dir(root, tenant_id)
    deleted = []
    for path in list(folder.iterdir()) if folder.exists() else []:
        key = path.name[len(_RUN_PREFIX):] if path.name.startswith(_RUN_PREFIX) else None
        if key is None or key in keep:
            continue
        _remove_tree(path)
        deleted.append(key)
    if deleted:
        log.info("report retention for tenant %s: kept %d run(s), deleted %s", tenant_id, len(keep),
                 ", ".join(sorted(deleted)))
    return sorted(deleted)


def _remove_tree(path: Any) -> None:
    """Delete a folder with everything in it, through the path's own filesystem (local, abfs, ...)."""
    fs = getattr(path, "fs", None)
    if fs is not None:
        fs.rm(path.path, recursive=True)
    else:
        path.rmdir(recursive=True)


# ---------------------------------------------------------------------------------------------- writing
def _write_parquet(path: Any, table: pa.Table) -> None:
    with path.open("wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(root: Any, tenant_id: str, *, keep_runs: int = DEFAULT_KEEP_RUNS,
                 max_rows: int = DEFAULT_MAX_ROWS) -> dict[str, Any]:  # fmt: skip
    """Build the report of the tenant's latest published sync run; returns what ``latest.json`` holds.

    :param keep_runs: report runs to keep (this one included); older ``run_id=...`` folders are deleted.
    :param max_rows: rows per list shown in the page (the Parquet tables always hold every row).
    :raises ReportError: nothing was published yet, or the published files are incomplete.
    """
    if keep_runs < 1:
        raise ReportSettingsError(f"keep_runs={keep_runs!r}: keep at least the report being built (>= 1)")
    tenant_id = tenant_id.lower()
    latest, manifest = _published(root, tenant_id)
    run_id, finished_at = latest["run_id"], str(latest.get("finished_at") or "")
    run_key = run_key_for(run_id)
    frames = _sync_frames(root, tenant_id, latest)
    history = read_history(root, tenant_id)
    previous_users, previous_run_id = _previous_users(root, tenant_id, run_key, finished_at, manifest, history)
    tables = compute_all(frames, previous_users)

    run_dir = _run_dir(root, tenant_id, run_key)
    run_dir.mkdir(parents=True, exist_ok=True)
    relative = f"reports/{_RUN_PREFIX}{run_key}"
    written: dict[str, dict[str, Any]] = {}
    for name in SCHEMAS:
        _write_parquet(run_dir / f"{name}.parquet", to_arrow(name, tables[name]))
        written[name] = {"path": str(run_dir / f"{name}.parquet"), "relative_path": f"{relative}/{name}.parquet",
                         "rows": len(tables[name])}
    organization = frames["organization"]["displayName"].dropna()
    meta = {"format": REPORT_FORMAT, "tenant_id": tenant_id, "run_id": run_id, "run_key": run_key,
            "organization": str(organization.iloc[0]) if len(organization) else None, "finished_at": finished_at,
            "mode": latest.get("mode"), "built_at": _now(), "previous_run_id": previous_run_id}
    page = render_report(tables, meta, {n: w["path"] for n, w in written.items()}, max_rows=max_rows)
    with (run_dir / "report.html").open("wb") as handle:
        handle.write(page.encode("utf-8"))
    write_json_atomic(run_dir / "meta.json", meta)

    kept = _ordered([r for r in history if r["run_key"] != run_key] + [_history_entry(meta)])[-keep_runs:]
    if run_key not in {r["run_key"] for r in kept}:
        kept = kept[1:] + [_history_entry(meta)]  # an older sync run reported late is still kept, as the newest
    write_json_atomic(reports_dir(root, tenant_id) / "history.json", {"format": REPORT_FORMAT, "runs": kept})
    metrics = dict(zip(tables["metrics"]["metric"], (int(v) for v in tables["metrics"]["value"]), strict=True))
    summary = {**meta, "report": str(run_dir / "report.html"), "report_relative_path": f"{relative}/report.html",
               "tables": written, "metrics": metrics, "kept_runs": [r["run_id"] for r in kept]}
    write_json_atomic(reports_dir(root, tenant_id) / "latest.json", summary)
    summary["deleted_runs"] = _apply_retention(root, tenant_id, kept)
    log.info("report of tenant %s for sync run %s: %s (compared with %s)", tenant_id, run_id, summary["report"],
             previous_run_id or "nothing: first report")
    return summary

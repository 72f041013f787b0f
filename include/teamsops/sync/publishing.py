"""``publish``: validate a run, write its manifest, then ``latest.json`` LAST - and the readers of what was published.

Checks before anything is written (every failure is collected; one :class:`SyncValidationError` lists them all):

* completeness: every table has a result, fan-out tables one per shard, all of THIS run;
* the files: each reported part exists and holds the reported number of rows (Parquet footer);
* counts against Graph's ``@odata.count`` where Graph gave one (team members);
* links: every link table's keys exist in their parent (``team_members.user_id`` in ``users.id``, ...).

Then files of failed earlier attempts are removed from the run's folders (so a folder read with
``pandas.read_parquet`` holds exactly this run), the manifest is written, and ``latest.json`` is replaced
atomically. A run that fails anywhere before that line leaves ``latest.json`` - and so the deltaLinks the next run
starts from - untouched.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from teamsops.sync.errors import SyncError, SyncValidationError
from teamsops.sync.models import RunPlan, TableResult
from teamsops.sync.plan import DELTA_TABLES, now_iso, read_latest
from teamsops.sync.storage import (
    iter_batches,
    list_parts,
    manifest_rel,
    parquet_rows,
    part_rel,
    resolve,
    table_run_rel,
    tenant_dir,
    write_json_atomic,
)
from teamsops.sync.tables import FORMAT_VERSION, TABLES, table_spec

if TYPE_CHECKING:  # pandas costs ~45 MB of resident memory: only table_frame's callers pay for it
    import pandas as pd

__all__ = ["publish", "read_latest", "table_frame"]

log = logging.getLogger(__name__)

_SAME_ACROSS_SHARDS = frozenset({"shards", "cycle", "buckets", "reason"})
_EXAMPLES = 3


def publish(root: Any, plan: RunPlan | dict[str, Any], results: list[TableResult | dict[str, Any]]) -> dict[str, Any]:
    """Validate the run's results, write ``runs/{run_key}/manifest.json`` and then ``latest.json``.

    :returns: the manifest.
    :raises SyncValidationError: a check failed; nothing was published.
    """
    plan = RunPlan.coerce(plan)
    by_table, problems = _collect(plan, [TableResult.coerce(r) for r in results])
    if not problems:
        problems += _check_parts(root, plan, by_table)
    if not problems:
        problems += _check_delta_links(by_table)
        problems += _check_counts(by_table)
        problems += _check_links(root, plan, by_table)
    if problems:
        for problem in problems:
            log.error("validation: %s", problem)
        raise SyncValidationError(problems)
    _remove_strays(root, plan, by_table)
    manifest = _manifest(root, plan, by_table)
    write_json_atomic(resolve(root, plan.tenant_id, manifest_rel(plan.run_key)), manifest)
    latest = {
        "format": FORMAT_VERSION,
        "tenant_id": plan.tenant_id,
        "run_id": plan.run_id,
        "finished_at": manifest["finished_at"],
        "mode": manifest["mode"],
        "tables": {name: {"path": entry["path"], "relative_path": entry["relative_path"], "rows": entry["rows"]}
                   for name, entry in manifest["tables"].items()},
        "manifest": str(resolve(root, plan.tenant_id, manifest_rel(plan.run_key))),
        "manifest_relative_path": manifest_rel(plan.run_key),
    }
    write_json_atomic(tenant_dir(root, plan.tenant_id) / "latest.json", latest)
    log.info("published run %s of tenant %s (%s): %s", plan.run_id, plan.tenant_id, manifest["mode"],
             ", ".join(f"{name} {entry['rows']:,}" for name, entry in manifest["tables"].items()))
    return manifest


# ---------------------------------------------------------------------------------------------- checks
def _collect(plan: RunPlan, results: list[TableResult]) -> tuple[dict[str, list[TableResult]], list[str]]:
    """Group results by table; report missing tables and shards, duplicates and results of other runs."""
    problems: list[str] = []
    by_table: dict[str, list[TableResult]] = defaultdict(list)
    for result in results:
        if result.mode == "skipped":
            continue
        if result.table not in TABLES:
            problems.append(f"{result.table}: not a table of the sync (known: {', '.join(TABLES)})")
            continue
        if result.file != part_rel(result.table, plan.run_key, result.shard):
            problems.append(f"{result.table}: a result for {result.file!r} is not from run {plan.run_id}")
            continue
        by_table[result.table].append(result)
    for name, spec in TABLES.items():
        got = sorted(r.shard for r in by_table.get(name, []))
        if not got:
            problems.append(f"{name}: no result to publish (its task did not run or its result was not passed)")
            continue
        shards = int(by_table[name][0].extra.get("shards", 1)) if spec.fanout else 1
        if got != list(range(shards)):
            problems.append(f"{name}: expected results for shards 0..{shards - 1}, got shards {got}")
    return dict(by_table), problems


def _check_parts(root: Any, plan: RunPlan, by_table: dict[str, list[TableResult]]) -> list[str]:
    problems = []
    for name, results in by_table.items():
        for result in results:
            path = resolve(root, plan.tenant_id, result.file or "")
            if not path.exists():
                problems.append(f"{name}: the part {result.file} reported with {result.rows:,} rows does not exist")
                continue
            found = parquet_rows(path)
            if found != result.rows:
                problems.append(f"{name}: the task reported {result.rows:,} rows but {result.file} holds {found:,} "
                                "(a stale result of another attempt?)")
    return problems


def _check_delta_links(by_table: dict[str, list[TableResult]]) -> list[str]:
    """Delta tables always return the link for the next run; publishing without it would silently force the next
    runs to be full."""
    return [f"{name}: the result carries no deltaLink to store for the next run" for name in DELTA_TABLES
            if not any(r.delta_link for r in by_table.get(name, []))]


def _check_counts(by_table: dict[str, list[TableResult]]) -> list[str]:
    """Rows read against the ``@odata.count`` Graph announced on the same listings."""
    problems = []
    for name, results in by_table.items():
        counted = [r for r in results if "odata_count" in r.extra]
        if not counted:
            continue
        announced = sum(int(r.extra["odata_count"]) for r in counted)
        read = sum(int(r.extra.get("counted_items", 0)) for r in counted)
        if announced != read:
            listings = sum(int(r.extra.get("counted_listings", 0)) for r in counted)
            problems.append(f"{name}: Graph's @odata.count totals {announced:,} for the {listings:,} listings read, "
                            f"but {read:,} items were returned")
    return problems


def _check_links(root: Any, plan: RunPlan, by_table: dict[str, list[TableResult]]) -> list[str]:
    problems = []
    parents: dict[tuple[str, str], pa.Array] = {}
    for name, spec in TABLES.items():
        for link in spec.links:
            key = (link.parent, link.parent_column)
            if key not in parents:
                parents[key] = _column_values(root, plan, link.parent, link.parent_column)
            missing, total, examples = _orphans(root, plan, name, link.column, parents[key])
            if missing:
                problems.append(f"{name}: {missing:,} of {total:,} rows have a {link.column} that is not in "
                                f"{link.parent}.{link.parent_column} (e.g. {', '.join(examples)})")
    return problems


def _run_parts(root: Any, plan: RunPlan, table: str) -> list[Any]:
    return list_parts(resolve(root, plan.tenant_id, table_run_rel(table, plan.run_key)))


def _column_values(root: Any, plan: RunPlan, table: str, column: str) -> pa.Array:
    chunks = [batch.column(0) for batch in iter_batches(_run_parts(root, plan, table), [column])]
    if not chunks:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array(chunks, pa.string()).combine_chunks())


def _orphans(root: Any, plan: RunPlan, table: str, column: str, parent: pa.Array) -> tuple[int, int, list[str]]:
    missing, total, examples = 0, 0, []
    for batch in iter_batches(_run_parts(root, plan, table), [column]):
        values = batch.column(0)
        total += len(values)
        orphan = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=parent)))
        bad = values.filter(orphan)
        missing += len(bad)
        examples += [repr(v) for v in bad.slice(0, _EXAMPLES - len(examples)).to_pylist()]
    return missing, total, examples


# ---------------------------------------------------------------------------------------------- writing
def _remove_strays(root: Any, plan: RunPlan, by_table: dict[str, list[TableResult]]) -> None:
    """Delete files a failed attempt left in this run's table folders (e.g. a part of a shard that no longer exists),
    so that reading the folder gives exactly the published rows."""
    for name, results in by_table.items():
        folder = resolve(root, plan.tenant_id, table_run_rel(name, plan.run_key))
        expected = {r.file.rsplit("/", 1)[-1] for r in results if r.file}
        for path in list(folder.iterdir()) if folder.exists() else []:
            if path.name not in expected:
                log.warning("%s: removing %s, left by an earlier attempt of run %s", name, path.name, plan.run_id)
                path.unlink()


def _merge_extra(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """One table's figures over its shards: lists concatenated, numbers summed, settings taken once."""
    merged: dict[str, Any] = {}
    for extra in extras:
        for key, value in extra.items():
            if key not in merged:
                merged[key] = list(value) if isinstance(value, list) else value
            elif isinstance(value, list):
                merged[key] = [*merged[key], *value]
            elif isinstance(value, int | float) and not isinstance(value, bool) and key not in _SAME_ACROSS_SHARDS:
                merged[key] += value
    return merged


def _manifest(root: Any, plan: RunPlan, by_table: dict[str, list[TableResult]]) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    resyncs: dict[str, str] = {}
    delta_links: dict[str, str] = {}
    for name in TABLES:
        results = sorted(by_table[name], key=lambda r: r.shard)
        relative = table_run_rel(name, plan.run_key)
        extra = _merge_extra([r.extra for r in results])
        modes = {r.mode for r in results}
        tables[name] = {
            "path": str(resolve(root, plan.tenant_id, relative)),
            "relative_path": relative,
            "rows": sum(r.rows for r in results),
            "mode": modes.pop() if len(modes) == 1 else "mixed",
            "requests": sum(r.requests for r in results),
            "throttled": sum(r.throttled for r in results),
            "seconds": round(max(r.seconds for r in results), 3),
            "parts": [{"shard": r.shard, "file": r.file, "rows": r.rows} for r in results],
            "extra": extra,
        }
        if extra.get("resync"):
            resyncs[name] = extra["resync"]
        link = next((r.delta_link for r in results if r.delta_link), None)
        if link:
            delta_links[name] = link
    mode = "full" if plan.mode == "full" or resyncs else "incremental"
    return {
        "format": FORMAT_VERSION,
        "run_id": plan.run_id,
        "run_key": plan.run_key,
        "tenant_id": plan.tenant_id,
        "mode": mode,
        "plan_mode": plan.mode,
        "reason": plan.reason if not resyncs else f"{plan.reason}; resynced: {', '.join(resyncs)}",
        "resyncs": resyncs,
        "started_at": plan.started_at,
        "finished_at": now_iso(),
        "previous": ({"run_id": plan.previous_run_id, "manifest": plan.previous_manifest}
                     if plan.previous_run_id else None),
        "delta_links": delta_links,
        "tables": tables,
        "totals": {"rows": sum(t["rows"] for t in tables.values()),
                   "requests": sum(t["requests"] for t in tables.values()),
                   "throttled": sum(t["throttled"] for t in tables.values())},
    }


# ---------------------------------------------------------------------------------------------- readers
def table_frame(root: Any, tenant_id: str, table: str) -> pd.DataFrame:
    """The published rows of ``table`` (per ``latest.json``) as a DataFrame with the table's columns.

    :raises SyncError: nothing was published for the tenant yet.
    """
    spec = table_spec(table)
    latest = read_latest(root, tenant_id)
    if latest is None:
        raise SyncError(f"nothing has been published for tenant {tenant_id} under {tenant_dir(root, tenant_id)}: "
                        "run the sync first")
    entry = latest["tables"][table]
    parts = list_parts(resolve(root, tenant_id, entry["relative_path"]))
    frames = []
    for part in parts:
        with part.open("rb") as handle:
            frames.append(pq.read_table(handle, schema=spec.schema))
    data = pa.concat_tables(frames) if frames else spec.schema.empty_table()
    return data.to_pandas()

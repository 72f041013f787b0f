"""``TableJob``: everything one ``run_table`` call needs - client, storage, plan, config - and the paths it uses.

Extractors receive a job and return a :class:`~teamsops.sync.models.TableResult` through :meth:`TableJob.result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from teamsops.sync.errors import SyncError
from teamsops.sync.models import RunPlan, SyncConfig, TableResult
from teamsops.sync.progress import Progress
from teamsops.sync.storage import (
    ParquetSink,
    list_parts,
    part_rel,
    read_column,
    read_json,
    resolve,
    state_rel,
    table_run_rel,
    write_json_atomic,
)
from teamsops.sync.tables import TableSpec

__all__ = ["TableJob", "shard_slice"]


def shard_slice(ids: pa.Array, shard: int, shards: int) -> list[str]:
    """One shard's parents: the distinct non-null ``ids`` sorted, dealt round-robin (``sorted[shard::shards]``).

    Dealt rather than hashed: every shard gets ``ceil(n / shards)`` or ``floor(n / shards)`` parents, so shards that
    each pace at ``limit / shards`` finish together (with a hash the table ends with the busiest shard, ~2 % later at
    10,000 users). Every shard task reads the same parent table of the run, so the shards partition it exactly.
    Sorting and slicing happen in Arrow; only this shard's ids become Python strings.
    """
    distinct = pc.unique(ids.drop_null())
    ordered = pc.take(distinct, pc.sort_indices(distinct))
    if shards > 1:
        ordered = pc.take(ordered, pa.array(range(shard, len(ordered), shards), pa.int64()))
    return ordered.to_pylist()


@dataclass
class TableJob:
    client: Any
    root: Any
    plan: RunPlan
    spec: TableSpec
    config: SyncConfig
    shard: int = 0
    progress: Progress | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------------------ naming
    @property
    def label(self) -> str:
        if self.spec.fanout and self.config.shards > 1:
            return f"{self.spec.name}[shard {self.shard + 1}/{self.config.shards}]"
        return self.spec.name

    def start_progress(self, total: int | None = None, unit: str = "rows") -> Progress:
        self.progress = Progress(self.label, self.client.stats, total=total, unit=unit,
                                 interval=self.config.progress_interval)
        return self.progress

    # ------------------------------------------------------------------------------------------ paths
    def path(self, relative: str) -> Any:
        return resolve(self.root, self.plan.tenant_id, relative)

    @property
    def part_relative(self) -> str:
        return part_rel(self.spec.name, self.plan.run_key, self.shard)

    def sink(self) -> ParquetSink:
        """A streaming writer of this job's part file (overwrites: a rerun replaces its own output)."""
        return ParquetSink(self.path(self.part_relative), self.spec.schema)

    def run_parts(self, table: str) -> list[Any]:
        """The part files of ``table`` written by THIS run (a parent must have run first)."""
        parts = list_parts(self.path(table_run_rel(table, self.plan.run_key)))
        if not parts:
            raise SyncError(f"{self.spec.name} reads the {table} table of run {self.plan.run_id}, which has not been "
                            f"written: run {table} before {self.spec.name}")
        return parts

    def previous_parts(self, table: str) -> list[Any] | None:
        """Part files of ``table`` in the run this one builds on (None in full mode or when that run had none)."""
        entry = self.plan.previous(table)
        if entry is None:
            return None
        parts = list_parts(self.path(entry["relative_path"]))
        return parts or None

    def parent_ids(self, table: str, column: str = "id") -> list[str]:
        """This shard's parents: the sorted ids of ``table`` (this run) dealt round-robin (:func:`shard_slice`)."""
        return shard_slice(read_column(self.run_parts(table), column), self.shard, self.config.shards)

    # ------------------------------------------------------------------------------------------ run state
    def write_state(self, data: dict[str, Any]) -> None:
        """Tell later tasks of this run what happened to this table (e.g. which teams' membership changed)."""
        write_json_atomic(self.path(state_rel(self.plan.run_key, self.spec.name)), data)

    def read_state(self, table: str) -> dict[str, Any]:
        state = read_json(self.path(state_rel(self.plan.run_key, table)))
        if state is None:
            raise SyncError(f"{self.spec.name} needs the outcome of {table} in run {self.plan.run_id}, which has not "
                            f"run yet: run {table} before {self.spec.name}")
        return state

    # ------------------------------------------------------------------------------------------ result
    def result(self, rows: int, *, mode: str, delta_link: str | None = None,
               extra: dict[str, Any] | None = None) -> TableResult:
        progress = self.progress or self.start_progress()
        progress.finish()
        counts = progress.counters()
        return TableResult(table=self.spec.name, shard=self.shard, path=str(self.path(self.part_relative)),
                           rows=rows, requests=counts["requests"], throttled=counts["throttled"],
                           seconds=round(progress.seconds(), 3), delta_link=delta_link,
                           extra={"shards": self.config.shards if self.spec.fanout else 1, **(extra or {})},
                           mode=mode, file=self.part_relative)

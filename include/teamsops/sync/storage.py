"""Where a sync writes, and how: the per-tenant layout, streaming Parquet parts, column reads, atomic JSON.

Storage is duck-typed: ``root`` is anything that behaves like ``upath.UPath`` or Airflow's ``ObjectStoragePath``
(``root / "x"``, ``.open()``, ``.exists()``, ``.mkdir()``, ``.iterdir()``, ``.unlink()``; ``str(path)`` is a URL).

Layout under ``{root}/{tenant_id}/``::

    {table}/run_id={run_key}/part-{shard:05d}.parquet   one part per shard (non-fan-out tables: part-00000)
    runs/{run_key}/state/{table}.json                    what a task tells later tasks of the same run
    runs/{run_key}/manifest.json                         written by publish
    latest.json                                          written LAST by publish, atomically

Paths stored in plans, results and manifests are relative to the tenant folder (``users/run_id=.../``), so they
are re-resolved through the caller's ``root`` (which carries the storage credentials); absolute URLs are stored
next to them for readers such as ``pandas.read_parquet``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "ParquetSink",
    "iter_batches",
    "list_parts",
    "read_column",
    "read_column_set",
    "read_json",
    "run_key_for",
    "write_json_atomic",
]

log = logging.getLogger(__name__)

# The system allocator (see teamsops/sync/__init__.py). If pyarrow was imported before the engine, Arrow's C++ code
# keeps the pool it started with, but what pyarrow allocates for the engine (tables built from rows, compute results)
# still goes to the system allocator. A pool the deployment chose explicitly is left alone.
if os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "system") == "system":
    pa.set_memory_pool(pa.system_memory_pool())


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for the sync process (what ``MALLOC_ARENA_MAX=2`` does at start-up).

    glibc gives threads that allocate at the same time arenas of their own (up to 8 per core), and memory freed in an
    arena is reused only there; a sync runs ~100 threads (12 fan-out tasks x 8) that each parse pages, so every
    arena grows to the size of its busiest moment. Applies to arenas created from now on; a deployment's
    MALLOC_ARENA_MAX (read by glibc at start) wins, and other C libraries are left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt: not glibc
        return
    mallopt(-8, arenas)  # M_ARENA_MAX


_fewer_malloc_arenas()

ROW_GROUP_ROWS = 5_000  # rows buffered before a row group is written (bounded memory)
READ_BATCH_ROWS = 10_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LOCAL_PROTOCOLS = {"", "file", "local"}


def run_key_for(run_id: str) -> str:
    """A folder-safe form of an Airflow run id (``manual__2024-01-01T00:00:00+00:00`` ->
    ``manual__2024-01-01T00_00_00_00_00``): object stores and URLs handle it without escaping."""
    key = _UNSAFE.sub("_", run_id).strip("._")
    if not key:
        raise ValueError(f"run id {run_id!r} has no usable characters for a folder name")
    return key


# ---------------------------------------------------------------------------------------------- layout
def tenant_dir(root: Any, tenant_id: str) -> Any:
    return root / tenant_id


def table_run_rel(table: str, run_key: str) -> str:
    return f"{table}/run_id={run_key}"


def part_rel(table: str, run_key: str, shard: int) -> str:
    return f"{table_run_rel(table, run_key)}/part-{shard:05d}.parquet"


def state_rel(run_key: str, table: str) -> str:
    return f"runs/{run_key}/state/{table}.json"


def manifest_rel(run_key: str) -> str:
    return f"runs/{run_key}/manifest.json"


def resolve(root: Any, tenant_id: str, relative: str) -> Any:
    """``{root}/{tenant_id}/{relative}`` (relative paths use ``/``)."""
    path = tenant_dir(root, tenant_id)
    for part in relative.strip("/").split("/"):
        path = path / part
    return path


# ---------------------------------------------------------------------------------------------- Parquet
class ParquetSink:
    """Stream rows into one Parquet file: rows are buffered and written as row groups of ``row_group_rows``.

    The file is written in place (a rerun of the same task overwrites it). If writing fails, the partial file is
    removed so that no reader ever sees a truncated part.
    """

    def __init__(self, path: Any, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path = path
        self.schema = schema
        self.row_group_rows = row_group_rows
        self.rows = 0
        self._buffer: list[dict[str, Any]] = []
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._writer = pq.ParquetWriter(self._file, self.schema, compression="zstd")
        return self

    def write(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.row_group_rows:
            self.flush()

    @property
    def total(self) -> int:
        """Rows accepted so far (written or still buffered)."""
        return self.rows + len(self._buffer)

    def write_many(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def write_table(self, table: pa.Table) -> None:
        """Write rows that are already Arrow data (carried over from a previous run) without a Python round trip."""
        self.flush()
        if table.num_rows:
            assert self._writer is not None
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))
            self.rows += table.num_rows

    def flush(self) -> None:
        if not self._buffer:
            return
        assert self._writer is not None
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
        self.rows += len(self._buffer)
        self._buffer = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            if self._writer is not None:
                self._writer.close()
            if self._file is not None:
                self._file.close()
            self._writer = self._file = None
            pa.default_memory_pool().release_unused()  # the writer's buffers go back to the OS, not to a cache
        if exc_type is not None:
            _remove_quietly(self.path)


def _remove_quietly(path: Any) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # noqa: BLE001 - cleanup of a failed write must not hide the original error
        log.debug("could not remove the partial file %s", path, exc_info=True)


def list_parts(directory: Any) -> list[Any]:
    """The Parquet part files of a table run directory (sorted; none when the directory does not exist)."""
    if not directory.exists():
        return []
    return sorted((p for p in directory.iterdir() if p.name.endswith(".parquet") and not p.name.startswith((".", "_"))),
                  key=lambda p: p.name)


def iter_batches(paths: list[Any], columns: list[str] | None = None,
                 batch_size: int = READ_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Stream record batches (only ``columns``) from part files, one row group at a time.

    Decoded in the calling thread: the engine reads a column or a few at a time, which Arrow's decode threads do not
    speed up, and those threads kept buffers of their own (publish's key checks at 100,000 users: +47 MB left behind).
    """
    for path in paths:
        with path.open("rb") as handle:
            yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def read_column(paths: list[Any], column: str) -> pa.Array:
    """One column of part files as a single Arrow array (no Python objects: 100,000 GUIDs take ~4 MB instead of
    ~10 MB of Python strings)."""
    chunks = [batch.column(0) for batch in iter_batches(paths, [column])]
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


def read_column_set(paths: list[Any], column: str) -> set[str]:
    """All non-null values of one column (e.g. the parents' ids of a fan-out), read column-wise."""
    values: set[str] = set()
    for batch in iter_batches(paths, [column]):
        values.update(v for v in batch.column(0).to_pylist() if v is not None)
    return values


def parquet_rows(path: Any) -> int:
    """Rows in a Parquet file, from its footer (nothing else is read)."""
    with path.open("rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


# ---------------------------------------------------------------------------------------------- JSON
def read_json(path: Any) -> Any | None:
    """The JSON at ``path``, or None when it does not exist."""
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def write_json_atomic(path: Any, data: Any) -> None:
    """Write JSON so that readers see the old or the new document, never a torn one.

    Local files: a temporary sibling, then ``os.replace`` (atomic on POSIX). Object stores (abfs, s3, gcs): one
    PUT of the whole object, which the store makes visible atomically (they have no atomic rename).
    """
    payload = json.dumps(data, indent=2, sort_keys=True, default=str).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if getattr(path, "protocol", "") in _LOCAL_PROTOCOLS:
        final = path.path if hasattr(path, "path") else str(path)
        temp = f"{final}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        return
    with path.open("wb") as handle:
        handle.write(payload)

"""The small, JSON-able values that travel between the steps of a sync (and through Airflow XCom).

* :class:`SyncConfig` - how to run (shards, threads, rolling installed-apps fraction, page size).
* :class:`RunPlan` - what :func:`~teamsops.sync.plan_run` decided: tenant, mode, the previous run to build on and its
  deltaLinks. Only paths and links, never data.
* :class:`TableResult` - what one :func:`~teamsops.sync.run_table` call wrote: path, rows, requests, 429s.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["RunPlan", "SyncConfig", "TableResult"]


def _from_mapping(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} got unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


@dataclass(frozen=True)
class SyncConfig:
    """How to run a sync.

    :param shards: how many shards a fan-out table is split into (the Airflow side maps one task per shard and
        builds each shard's client with ``RateLimiter(share=shards)``).
    :param workers_per_shard: threads of one shard sharing its GraphClient (and rate limiter).
    :param installed_apps_fraction: share of users whose installed apps are re-read per incremental run (1.0: all).
    :param installed_apps_full_every: with a fraction < 1, every user is re-read at least every N runs.
    :param page_size: ``Prefer: odata.maxpagesize`` of delta rounds (1..999).
    :param progress_interval: seconds between progress lines in the log.
    :param rate_headroom: the fraction of Graph's documented limits the sync's rate limiters pace at
        (``RateLimiter(headroom=...)``, built by the caller's ``make_client`` / the DAG's tasks). Lower than 1 because
        Graph counts requests when they arrive, and network jitter between send and arrival can bunch evenly paced
        requests into one of Graph's 1-second windows. With 4 shards x 8 threads at 150 +- 50 ms, 0.94 gets 0.02 % of
        requests answered 429 and the sync within 1.10 x the throttle bound (bench/README.md).
    """

    shards: int = 1
    workers_per_shard: int = 8
    installed_apps_fraction: float = 1.0
    installed_apps_full_every: int = 7
    page_size: int = 999
    progress_interval: float = 5.0
    rate_headroom: float = 0.94

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards must be at least 1, not {self.shards}")
        if self.workers_per_shard < 1:
            raise ValueError(f"workers_per_shard must be at least 1, not {self.workers_per_shard}")
        if not 0 < self.installed_apps_fraction <= 1:
            raise ValueError(f"installed_apps_fraction must be in (0, 1], not {self.installed_apps_fraction}")
        if self.installed_apps_full_every < 1:
            raise ValueError(f"installed_apps_full_every must be at least 1, not {self.installed_apps_full_every}")
        if not 0 < self.rate_headroom <= 1:
            raise ValueError(f"rate_headroom must be in (0, 1], not {self.rate_headroom}")
        if not 1 <= self.page_size <= 999:
            raise ValueError(f"page_size must be between 1 and 999 (Graph's maximum), not {self.page_size}")

    @property
    def installed_apps_buckets(self) -> int:
        """Users are split into this many buckets and one bucket is re-read per incremental run: ``1/fraction``
        rounded up, but never more than ``installed_apps_full_every`` (so every user is covered in time)."""
        return max(1, min(math.ceil(1 / self.installed_apps_fraction - 1e-9), self.installed_apps_full_every))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyncConfig:
        return _from_mapping(cls, dict(values))


@dataclass
class RunPlan:
    """What a run does (JSON-able; ``to_dict`` / ``from_dict`` for XCom).

    :param run_id: the orchestrator's run id; ``run_key`` is its folder-safe form used in paths.
    :param tenant_id: the tenant GUID (the token's ``tid``), the top folder of the tenant's data.
    :param mode: ``"full"`` or ``"incremental"``; ``reason`` says why.
    :param tenant_url: ``str({root}/{tenant_id})`` when planned (informational; paths are re-resolved via root).
    :param previous_run_id: the published run this one builds on (None for a full run without history).
    :param previous_manifest: its manifest, relative to the tenant folder.
    :param previous_tables: ``{table: {"relative_path", "rows", "extra"}}`` of that run.
    :param delta_links: ``{"users": link, "teams": link}`` stored by that run (incremental mode only).
    """

    run_id: str
    run_key: str
    tenant_id: str
    mode: str
    reason: str
    started_at: str
    tenant_url: str
    format_version: int
    previous_run_id: str | None = None
    previous_manifest: str | None = None
    previous_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    delta_links: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunPlan:
        return _from_mapping(cls, dict(values))

    @classmethod
    def coerce(cls, value: RunPlan | dict[str, Any]) -> RunPlan:
        return value if isinstance(value, RunPlan) else cls.from_dict(value)

    def previous(self, table: str) -> dict[str, Any] | None:
        """The previous run's entry of a table, in incremental mode only."""
        if self.mode != "incremental":
            return None
        return self.previous_tables.get(table)


@dataclass
class TableResult:
    """What one ``run_table`` call wrote (JSON-able; ``to_dict`` / ``from_dict`` for XCom).

    :param path: URL of the part file written (None when the call had nothing to do, e.g. shard > 0 of a table
        that is not sharded); ``file`` is the same path relative to the tenant folder.
    :param rows: rows in that part file.
    :param requests: HTTP requests the client sent during the call (retries included); ``throttled``: how many
        were answered 429. Exact when the client is not shared with another table running at the same time (each
        Airflow task builds its own client).
    :param delta_link: the deltaLink to store for the next run (delta tables only).
    :param mode: ``"full"``, ``"incremental"`` or ``"skipped"`` for this table in this run.
    :param extra: table-specific figures (counts Graph reported, carried-over rows, resync reasons, ...).
    """

    table: str
    shard: int
    path: str | None
    rows: int
    requests: int
    throttled: int
    seconds: float
    delta_link: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    mode: str = "full"
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TableResult:
        return _from_mapping(cls, dict(values))

    @classmethod
    def coerce(cls, value: TableResult | dict[str, Any]) -> TableResult:
        return value if isinstance(value, TableResult) else cls.from_dict(value)

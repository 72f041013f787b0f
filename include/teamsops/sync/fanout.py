"""Fan-out tables, read per parent object: ``team_members`` and ``channels`` (per team), ``user_installed_apps``
(per user).

Each call handles one shard: the parents of THIS run (read column-wise from the parent table), sorted and dealt
round-robin to the shards (:func:`teamsops.sync.job.shard_slice`: equal shares, so the shards finish together).
``workers_per_shard`` threads share the job's GraphClient, so its RateLimiter paces them all at the documented limits
(at ``limit / shards`` when the caller built it with ``share=shards``) instead of letting them run into 429s.
Results are written in parent order (a bounded window of in-flight parents keeps memory flat and the output
deterministic).

What is re-read in an incremental run:

* ``team_members``: only teams that are new, whose members or owners changed (groups delta), that hold a user whose
  ``userType`` changed, or that could not be read last time; the rest is carried over from the previous run.
* ``channels``: every team (there is no change feed for channels).
* ``user_installed_apps``: every user by default; with ``installed_apps_fraction < 1`` one bucket of users per run
  (plus new users), the rest carried over, so every user is re-read at least every ``installed_apps_full_every`` runs.

A parent that disappeared between the parent table and the fan-out (404) is skipped with a WARNING and listed in
``extra["skipped"]``, so the next incremental run reads it again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from teamsops.graph.errors import GraphNotFound
from teamsops.sync import convert
from teamsops.sync.job import TableJob
from teamsops.sync.models import TableResult
from teamsops.sync.storage import ParquetSink, iter_batches, read_column_set

__all__ = ["extract_channels", "extract_team_members", "extract_user_installed_apps", "installed_apps_bucket"]

log = logging.getLogger(__name__)

_SHARED_CHANNELS = {"Prefer": "include-unknown-enum-members"}  # else shared channels read 'unknownFutureValue'
# Only what a team_members row needs (convert.member_row): the members' JSON is then 57 % of its size - with 8 threads
# per shard reading pages of up to 999 members at once, the pages in flight are a large share of the sync's memory.
MEMBER_SELECT = "id,userId,roles"


@dataclass
class Fetched:
    """What was read for one parent."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    items: int = 0
    odata_count: int | None = None
    skipped: bool = False


@dataclass
class Selection:
    """Which of the shard's parents are read from Graph, which are carried over, and why."""

    fetch: list[str]
    carry: set[str]
    mode: str
    reason: str


# ---------------------------------------------------------------------------------------------- shared machinery
def _fan_out(job: TableJob, parents: list[str], fetch: Callable[[str], Fetched], sink: ParquetSink) -> dict[str, Any]:
    """Read every parent with ``workers_per_shard`` threads; write rows in parent order. Returns figures."""
    figures: dict[str, Any] = {"fetched_parents": 0, "fetched_rows": 0, "odata_count": 0, "counted_items": 0,
                               "counted_listings": 0, "skipped": []}
    progress = job.progress
    workers = job.config.workers_per_shard
    window: deque[tuple[str, Future[Fetched]]] = deque()

    def consume() -> None:
        parent, future = window.popleft()
        got = future.result()
        sink.write_many(got.rows)
        figures["fetched_parents"] += 1
        figures["fetched_rows"] += len(got.rows)
        if got.skipped:
            figures["skipped"].append(parent)
        if got.odata_count is not None:
            figures["odata_count"] += got.odata_count
            figures["counted_items"] += got.items
            figures["counted_listings"] += 1
        if progress is not None:
            progress.add(pages=got.pages, rows=len(got.rows), done=1)

    failed = threading.Event()

    def guarded(parent: str) -> Fetched:
        # After the first failure no further request is started: a 403 or an exhausted retry budget fails the
        # task at once instead of being repeated for every queued parent.
        if failed.is_set():
            return Fetched(skipped=True)
        try:
            return fetch(parent)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"sync-{job.spec.name}") as pool:
        try:
            for parent in parents:
                window.append((parent, pool.submit(guarded, parent)))
                if len(window) >= workers * 2:
                    consume()
            while window:
                consume()
        except BaseException:
            for _, future in window:
                future.cancel()
            raise
    if not figures["counted_listings"]:  # Graph announced no @odata.count on these listings: nothing to check
        for key in ("odata_count", "counted_items", "counted_listings"):
            del figures[key]
    return figures


def _pages(job: TableJob, path: str, to_rows: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
           params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
           what: str = "object") -> Fetched:
    """All pages of one parent's collection; a 404 (the parent is gone) gives a skipped result."""
    got = Fetched()
    try:
        for page in job.client.pages(path, params=params, headers=headers):
            got.pages += 1
            if got.odata_count is None and "@odata.count" in page:
                got.odata_count = int(page["@odata.count"])
            values = page.get("value", [])
            got.items += len(values)
            got.rows.extend(to_rows(values))
    except GraphNotFound as err:
        log.warning("%s: %s is gone (%s); skipped, it will be read again next run", job.label, what, err.summary())
        return Fetched(pages=got.pages, skipped=True)
    return got


def _carry_over(job: TableJob, table: str, column: str, keep: set[str], sink: ParquetSink) -> int:
    """Copy the previous run's rows whose ``column`` is in ``keep`` (Arrow filter, batch by batch)."""
    if not keep:
        return 0
    wanted = pa.array(sorted(keep), pa.string())
    before = sink.rows
    for batch in iter_batches(job.previous_parts(table) or []):
        mask = pc.is_in(batch.column(column), value_set=wanted)
        sink.write_table(pa.Table.from_batches([batch]).filter(mask))
    return sink.rows - before


def _previously_skipped(job: TableJob) -> set[str]:
    entry = job.plan.previous(job.spec.name) or {}
    return set((entry.get("extra") or {}).get("skipped") or [])


def _run(job: TableJob, parents: list[str], selection: Selection, fetch: Callable[[str], Fetched],
         carry_column: str, extra: dict[str, Any] | None = None) -> TableResult:
    log.info("%s: %d parent(s) in this shard; reading %d, carrying %d over (%s)", job.label, len(parents),
             len(selection.fetch), len(selection.carry), selection.reason)
    job.start_progress(total=len(selection.fetch), unit="parents")
    with job.sink() as sink:
        carried = _carry_over(job, job.spec.name, carry_column, selection.carry, sink)
        figures = _fan_out(job, selection.fetch, fetch, sink)
    return job.result(sink.rows, mode=selection.mode,
                      extra={"parents": len(parents), "carried_rows": carried, "reason": selection.reason,
                             **figures, **(extra or {})})


# ---------------------------------------------------------------------------------------------- team members
def extract_team_members(job: TableJob) -> TableResult:
    teams = job.parent_ids("teams")
    selection = _select_teams(job, teams)

    def fetch(team_id: str) -> Fetched:
        return _pages(job, f"/teams/{team_id}/members",
                      lambda values: [r for r in (convert.member_row(team_id, v) for v in values) if r],
                      params={"$select": MEMBER_SELECT}, what=f"team {team_id}")

    return _run(job, teams, selection, fetch, "team_id")


def _select_teams(job: TableJob, teams: list[str]) -> Selection:
    everything = Selection(teams, set(), "full", "full run")
    if job.plan.mode != "incremental" or job.previous_parts("team_members") is None:
        return everything
    teams_state = job.read_state("teams")
    if teams_state["mode"] == "full":
        everything.reason = "the teams table was resynced in full, so membership changes are unknown"
        return everything
    users_state = job.read_state("users")
    if users_state["mode"] == "full":
        everything.reason = "the users table was resynced in full, so userType (guest role) changes are unknown"
        return everything
    known = read_column_set(job.previous_parts("teams") or [], "id")
    refetch = set(teams_state["membership_changed"]) | _previously_skipped(job)
    refetch |= _teams_of_users(job, set(users_state["user_type_changed"]))
    fetch = [t for t in teams if t not in known or t in refetch]
    return Selection(fetch, set(teams) - set(fetch), "incremental",
                     "teams that are new or whose members, owners or members' userType changed")


def _teams_of_users(job: TableJob, users: set[str]) -> set[str]:
    """Teams (of the previous run) that hold any of ``users``."""
    if not users:
        return set()
    wanted = pa.array(sorted(users), pa.string())
    found: set[str] = set()
    for batch in iter_batches(job.previous_parts("team_members") or [], ["team_id", "user_id"]):
        mask = pc.is_in(batch.column(1), value_set=wanted)
        found.update(batch.column(0).filter(mask).to_pylist())
    return found


# ---------------------------------------------------------------------------------------------- channels
def extract_channels(job: TableJob) -> TableResult:
    teams = job.parent_ids("teams")

    def fetch(team_id: str) -> Fetched:
        return _pages(job, f"/teams/{team_id}/channels",
                      lambda values: [convert.channel_row(team_id, v) for v in values],
                      headers=_SHARED_CHANNELS, what=f"team {team_id}")

    return _run(job, teams, Selection(teams, set(), "full", "channels have no change feed: read in full"),
                fetch, "team_id")


# ---------------------------------------------------------------------------------------------- installed apps
def installed_apps_bucket(user_id: str, buckets: int) -> int:
    """The rolling bucket of a user (a hash, independent of how users are dealt to shards, so every shard gets a
    fair share of each bucket and the buckets together cover every user whatever the shard count)."""
    digest = hashlib.blake2b(f"installed-apps:{user_id.lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def extract_user_installed_apps(job: TableJob) -> TableResult:
    users = job.parent_ids("users")
    selection, cycle = _select_users(job, users)

    def fetch(user_id: str) -> Fetched:
        return _pages(job, f"/users/{user_id}/teamwork/installedApps", 
                      lambda values: [convert.installed_app_row(user_id, v) for v in values],
                      params={"$expand": "teamsApp"}, what=f"user {user_id}")

    return _run(job, users, selection, fetch, "user_id",
                extra={"cycle": cycle, "buckets": job.config.installed_apps_buckets})


def _select_users(job: TableJob, users: list[str]) -> tuple[Selection, int]:
    buckets = job.config.installed_apps_buckets
    previous = job.plan.previous(job.spec.name)
    if buckets == 1 or previous is None or job.previous_parts(job.spec.name) is None:
        reason = "all users (installed_apps_fraction = 1)" if buckets == 1 else "full run"
        return Selection(users, set(), "full", reason), 0
    cycle = int((previous.get("extra") or {}).get("cycle", -1)) + 1
    known = read_column_set(job.previous_parts("users") or [], "id")
    again = _previously_skipped(job)
    fetch = [u for u in users
             if u not in known or u in again or installed_apps_bucket(u, buckets) == cycle % buckets]
    reason = f"rolling: bucket {cycle % buckets + 1} of {buckets} plus new users"
    return Selection(fetch, set(users) - set(fetch), "incremental", reason), cycle

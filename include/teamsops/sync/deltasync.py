"""``users`` and ``teams``: tables kept current through Graph delta queries (graph-facts §3).

* **Full** (first run, ``full_refresh``, or a resync): the initial round without a token. Items are streamed into
  the part file as they arrive; the round's deltaLink is stored for the next run.
* **Incremental**: the stored deltaLink returns only what changed. The changes are collected first (so a 410 on
  any page leaves nothing half-written), then the previous run's table is streamed through, changed rows updated,
  removed rows (``@removed``) dropped, and new objects appended: the result equals a full round at this moment.
* A refused token (410 ``syncStateNotFound`` / ``resyncRequired``, :class:`DeltaResyncRequired`) -> a full round
  for that table, with a WARNING saying why; the result's ``mode`` is ``"full"`` and ``extra["resync"]`` the reason.

Graph may repeat an object within a round (a big group comes once per chunk of ``members@delta``; replays happen):
copies are merged by id - later properties win, relationship annotations accumulate.

Users select ``manager`` so ``manager@delta`` keeps ``manager_id`` current. Groups select ``members`` and
``owners``: a team whose membership or ownership changed is listed in the run state (``teams.json``) so that only
those teams' members are re-read. ``users.json`` lists users whose ``userType`` changed (a guest's team role).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from teamsops.graph.errors import DeltaResyncRequired
from teamsops.sync import convert
from teamsops.sync.job import TableJob
from teamsops.sync.models import TableResult
from teamsops.sync.storage import ParquetSink, iter_batches

__all__ = ["extract_teams", "extract_users", "merge_item"]

log = logging.getLogger(__name__)

USER_FIELDS = ("userPrincipalName", "displayName", "mail", "accountEnabled", "userType", "department", "jobTitle",
               "createdDateTime", "givenName", "surname", "companyName", "officeLocation", "usageLocation",
               "employeeId", "creationType", "externalUserState", "onPremisesSyncEnabled", "assignedLicenses")
USER_SELECT = ",".join(("id", *USER_FIELDS, "manager"))
GROUP_FIELDS = ("displayName", "description", "visibility", "createdDateTime", "mail", "mailNickname",
                "classification")
GROUP_SELECT = ",".join(("id", *GROUP_FIELDS, "resourceProvisioningOptions", "members", "owners"))
_LINK_KEYS = ("manager@delta", "members@delta", "owners@delta")
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "createdDateTime": convert.parse_timestamp,
    "assignedLicenses": convert.json_text,
    "visibility": convert.team_visibility,
}
MAX_ROUND_RESTARTS = 2  # an initial round whose skiptoken expires mid-way is started again, at most this often

Apply = Callable[[dict[str, Any] | None, dict[str, Any]], dict[str, Any] | None]


# ---------------------------------------------------------------------------------------------- item merging
def merge_item(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Merge two copies of one object from a delta round (or from consecutive rounds, oldest first)."""
    if old is None or "@removed" in old or "@removed" in new:
        return dict(new)
    merged = {**old, **{k: v for k, v in new.items() if k not in _LINK_KEYS}}
    for key in _LINK_KEYS:
        if key in new:
            merged[key] = [*(old.get(key) or []), *new[key]]
    return merged


def _fill(row: dict[str, Any], item: dict[str, Any], names: Iterable[str]) -> None:
    """Copy the properties present in ``item`` (absent ones keep the previous value, as with return=minimal)."""
    for name in names:
        if name in item:
            convert_value = _CONVERTERS.get(name)
            row[name] = convert_value(item[name]) if convert_value else item[name]


def apply_user(columns: list[str]) -> Apply:
    def apply(previous: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any] | None:
        if "@removed" in item:
            return None
        row = dict(previous) if previous else dict.fromkeys(columns)
        row["id"] = item["id"]
        _fill(row, item, USER_FIELDS)
        for entry in item.get("manager@delta") or []:
            # Entries come in change order, but ordering is not guaranteed: a removal clears only the manager it
            # names, so "removed old, added new" and "added new, removed old" both end with the new manager.
            if not str(entry.get("@odata.type") or "#microsoft.graph.user").endswith(".user"):
                continue  # a manager may be an organizational contact: manager_id names users only
            if "@removed" not in entry:
                row["manager_id"] = entry.get("id")
            elif row.get("manager_id") == entry.get("id"):
                row["manager_id"] = None
        return row

    return apply


def _is_team(item: dict[str, Any]) -> bool | None:
    """True / False from resourceProvisioningOptions, None when this copy does not carry the property."""
    if "resourceProvisioningOptions" not in item:
        return None
    return "Team" in (item.get("resourceProvisioningOptions") or [])


def apply_team(columns: list[str]) -> Apply:
    def apply(previous: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any] | None:
        team = _is_team(item)
        if "@removed" in item or team is False or (previous is None and not team):
            return None
        row = dict(previous) if previous else dict.fromkeys(columns)
        row["id"] = item["id"]
        _fill(row, item, GROUP_FIELDS)
        return row

    return apply


# ---------------------------------------------------------------------------------------------- rounds
def _consecutive_merged(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Merge copies of one object that follow each other (a big group split over pages)."""
    pending: dict[str, Any] | None = None
    for item in items:
        if pending is not None and item.get("id") == pending.get("id"):
            pending = merge_item(pending, item)
            continue
        if pending is not None:
            yield pending
        pending = item
    if pending is not None:
        yield pending


def _without_membership(item: dict[str, Any]) -> dict[str, Any]:
    """An initial round lists every member of every group; the teams table does not need them (the members come
    from /teams/{id}/members), so they are dropped at once instead of piling up while copies are merged."""
    if "members@delta" not in item and "owners@delta" not in item:
        return item
    return {k: v for k, v in item.items() if k not in ("members@delta", "owners@delta")}


def _counting(stream: Any, job: TableJob) -> Iterator[dict[str, Any]]:
    """Items of a delta stream, reporting pages to the progress line as they are fetched."""
    progress = job.progress
    pages = 0
    for item in stream:
        if stream.pages != pages and progress is not None:
            progress.add(pages=stream.pages - pages)
            pages = stream.pages
        yield item
    if progress is not None and stream.pages != pages:
        progress.add(pages=stream.pages - pages)


def _headers(job: TableJob) -> dict[str, str]:
    return {"Prefer": f"odata.maxpagesize={job.config.page_size}"}


def _full_round(job: TableJob, start: str, select: str, apply: Apply) -> tuple[int, str]:
    """Stream the initial round into the part file; returns (rows, deltaLink)."""
    for attempt in range(MAX_ROUND_RESTARTS + 1):
        try:
            return _write_full_round(job, start, select, apply)
        except DeltaResyncRequired as err:
            if attempt == MAX_ROUND_RESTARTS:
                raise
            log.warning("%s: the initial delta round was interrupted (%s: %s); starting it again", job.label,
                        err.reason, err.message)
    raise AssertionError("unreachable")


def _write_full_round(job: TableJob, start: str, select: str, apply: Apply) -> tuple[int, str]:
    stream = job.client.iter_delta(start, params={"$select": select}, headers=_headers(job))
    written: set[str] = set()
    late: dict[str, dict[str, Any]] = {}  # objects repeated after their row was written: fixed afterwards
    progress = job.progress
    with job.sink() as sink:
        for item in _consecutive_merged(_without_membership(i) for i in _counting(stream, job)):
            object_id = item["id"]
            if object_id in written:
                late[object_id] = merge_item(late.get(object_id), item)
                continue
            row = apply(None, item)
            if row is not None:
                sink.write(row)
                written.add(object_id)
                if progress is not None:
                    progress.add(rows=1)
    if not stream.delta_link:
        raise RuntimeError(f"{job.label}: the delta round ended without @odata.deltaLink")
    rows = _fix_late_copies(job, late, apply) if late else sink.rows
    return rows, stream.delta_link


def _fix_late_copies(job: TableJob, late: dict[str, dict[str, Any]], apply: Apply) -> int:
    """Rewrite the part with objects that came again later in the round (replays) merged into their row; returns
    the rows of the rewritten part. Rare, so the simple way: through a scratch file next to the part."""
    log.info("%s: %d object(s) came more than once in the round; merging the later copies", job.label, len(late))
    part = job.path(job.part_relative)
    scratch = part.parent / f".{part.name}.rewrite"  # a dot name: readers of the folder ignore it
    with ParquetSink(scratch, job.spec.schema) as sink:
        _merge_rows(iter_batches([part]), dict(late), apply, sink)
    with ParquetSink(part, job.spec.schema) as sink:
        for batch in iter_batches([scratch]):
            sink.write_table(pa.Table.from_batches([batch]))
    scratch.unlink()
    return sink.rows


def _merge_rows(batches: Iterable[pa.RecordBatch], changes: dict[str, dict[str, Any]], apply: Apply,
                sink: ParquetSink, on_update: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None
                ) -> None:
    """Stream previous rows into ``sink``, applying ``changes`` (popped as they are used) to the rows they name.

    Batches without any changed id are copied as Arrow data, without a Python round trip."""
    wanted = pa.array(list(changes), pa.string())
    for batch in batches:
        hits = pc.is_in(batch.column("id"), value_set=wanted)
        if not pc.any(hits).as_py():
            sink.write_table(pa.Table.from_batches([batch]))
            continue
        for row in batch.to_pylist():
            change = changes.pop(row["id"], None)
            if change is None:
                sink.write(row)
                continue
            new = apply(row, change)
            if on_update is not None:
                on_update(row, new)
            if new is not None:
                sink.write(new)


def _collect_changes(job: TableJob, link: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Every change since ``link``, merged by id; nothing is written until the round is complete."""
    stream = job.client.iter_delta(link, headers=_headers(job))
    changes: dict[str, dict[str, Any]] = {}
    for item in _counting(stream, job):
        changes[item["id"]] = merge_item(changes.get(item["id"]), item)
    if not stream.delta_link:
        raise RuntimeError(f"{job.label}: the delta round ended without @odata.deltaLink")
    return changes, stream.delta_link


def _incremental(job: TableJob, apply: Apply,
                 on_update: Callable[[dict[str, Any], dict[str, Any] | None], None]) -> tuple[int, str, dict[str, Any]]:
    """Previous table + changes since its deltaLink. Returns (rows, new deltaLink, figures)."""
    name = job.spec.name
    changes, link = _collect_changes(job, job.plan.delta_links[name])
    figures = {"changes": len(changes), "removed": sum(1 for c in changes.values() if "@removed" in c)}
    pending = dict(changes)
    with job.sink() as sink:
        _merge_rows(iter_batches(job.previous_parts(name) or []), pending, apply, sink, on_update)
        added = 0
        for item in pending.values():  # objects the previous table did not have
            row = apply(None, item)
            if row is not None:
                sink.write(row)
                added += 1
                on_update({}, row)
    figures["added"] = added
    if job.progress is not None:
        job.progress.add(rows=sink.rows)
    return sink.rows, link, figures


def _run_delta_table(job: TableJob, start: str, select: str, apply: Apply,
                     on_update: Callable[[dict[str, Any], dict[str, Any] | None], None]
                     ) -> tuple[int, str, str, dict[str, Any]]:
    """Incremental when the plan allows it, else (or after a refused token) a full round.
    Returns (rows, deltaLink, mode, extra)."""
    name = job.spec.name
    previous = job.plan.previous_tables.get(name)
    job.start_progress(total=previous["rows"] if previous else None)
    if job.plan.mode == "incremental" and job.plan.delta_links.get(name) and job.previous_parts(name) is not None:
        try:
            rows, link, figures = _incremental(job, apply, on_update)
            return rows, link, "incremental", figures
        except DeltaResyncRequired as err:
            reason = f"Graph refused the stored deltaLink ({err.status} {err.reason or err.code}): {err.message}"
            log.warning("%s: %s; running a full resync of %s", job.label, reason, name)
            rows, link = _full_round(job, start, select, apply)
            return rows, link, "full", {"resync": reason}
    rows, link = _full_round(job, start, select, apply)
    return rows, link, "full", {}


# ---------------------------------------------------------------------------------------------- tables
def extract_users(job: TableJob) -> TableResult:
    """``users`` from ``/users/delta``; the run state lists users whose ``userType`` changed."""
    user_type_changed: list[str] = []

    def on_update(old: dict[str, Any], new: dict[str, Any] | None) -> None:
        if old and new is not None and old.get("userType") != new.get("userType"):
            user_type_changed.append(new["id"])

    rows, link, mode, extra = _run_delta_table(job, "/users/delta", USER_SELECT, apply_user(job.spec.columns),
                                               on_update)
    job.write_state({"mode": mode, "user_type_changed": user_type_changed})
    return job.result(rows, mode=mode, delta_link=link, extra={**extra, "user_type_changed": len(user_type_changed)})


def extract_teams(job: TableJob) -> TableResult:
    """``teams`` from ``/groups/delta``; the run state lists teams whose members or owners changed."""
    membership_changed: list[str] = []
    removed: list[str] = []

    def on_update(old: dict[str, Any], new: dict[str, Any] | None) -> None:
        if new is None:
            removed.append(old["id"])

    apply = apply_team(job.spec.columns)

    def tracking_apply(previous: dict[str, Any] | None, item: dict[str, Any]) -> dict[str, Any] | None:
        row = apply(previous, item)
        if row is not None and previous and ("members@delta" in item or "owners@delta" in item):
            membership_changed.append(row["id"])
        return row

    rows, link, mode, extra = _run_delta_table(job, "/groups/delta", GROUP_SELECT, tracking_apply, on_update)
    if mode == "full":
        membership_changed = []
    job.write_state({"mode": mode, "membership_changed": membership_changed, "removed": removed})
    return job.result(rows, mode=mode, delta_link=link,
                      extra={**extra, "membership_changed": len(membership_changed), "removed_teams": len(removed)})

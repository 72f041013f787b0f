"""``/users/delta`` and ``/groups/delta`` (graph-facts §3).

A *round* starts with a request without a token (initial: every object) or with a ``$deltatoken`` (incremental:
objects whose tracked properties or relationships changed since that token). The round's items are fixed when it
starts and kept server-side; ``$skiptoken`` nextLinks walk through them and the last page carries the
``@odata.deltaLink`` for the next round. Tokens are opaque and encode the original ``$select`` / ``$filter``.

* Users: ``$select`` may include ``manager`` (emits ``manager@delta``); soft-deleted users come back as
  ``{"id", "@removed": {"reason": "changed"}}``, permanently deleted ones with ``"deleted"``.
* Groups: ``$select`` may include ``members`` / ``owners`` (emit ``members@delta`` / ``owners@delta``). A big group is
  repeated on consecutive pages, each copy carrying the next chunk of members; clients must merge them. After a
  membership change the next round returns the group with only the changed members (removed ones carry
  ``@removed: {"reason": "deleted"}``).
* Page size: 200 users / 100 groups, or the ``Prefer: odata.maxpagesize=N`` header (which also caps member chunks).
* ``$deltatoken=latest`` gives an empty page and a deltaLink "from now".
* Expiry: tokens older than 7 days, or invalidated by ``Directory.expire_delta_tokens``, answer 410 Gone either with
  code ``syncStateNotFound`` or (mode ``reset410``) with code ``resyncRequired`` and a ``Location`` header holding the
  delta URL with an empty ``$deltatoken`` (plus the original ``$select``), which restarts a full round.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from teamsops.simulator.graph import perms
from teamsops.simulator.graph.base import Call, GraphFailure, json_response, select_context, select_option
from teamsops.simulator.graph.schema import (
    GROUP_DEFAULT,
    GROUP_PROPERTIES,
    GROUP_TYPE,
    USER_DEFAULT,
    USER_PROPERTIES,
    USER_TYPE,
)
from teamsops.simulator.http import SimResponse
from teamsops.simulator.model import DELTA_TOKEN_LIFETIME, Tenant
from teamsops.simulator.odata import (
    QueryError,
    decode_token,
    encode_token,
    parse_expand,
    parse_filter,
    project,
)

PAGE_SIZE = {"user": 200, "group": 100}
MEMBER_CHUNK = 500  # members@delta entries per group copy
MAX_SESSIONS = 256  # open rounds kept per tenant (oldest evicted; an evicted skiptoken answers syncStateNotFound)
_COLLECTION = {"user": "users", "group": "groups"}
_LINKS = {"user": ("manager",), "group": ("members", "owners")}


@dataclass
class _Unit:
    """One object to emit. ``props`` None = the whole object (initial round / created / restored)."""

    object_id: str
    props: frozenset[str] | None = None
    links: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # relationship -> [(target, added)]


@dataclass
class _Round:
    kind: str
    select: list[str] | None
    ids: list[str] | None
    watermark: int
    epoch: int
    units: list[_Unit]


def users_delta(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    return _delta(call, "user")


def groups_delta(call: Call) -> SimResponse:
    call.require(perms.GROUPS_READ)
    return _delta(call, "group")


def _delta(call: Call, kind: str) -> SimResponse:
    tenant, query = call.tenant, call.query
    with tenant.lock:
        if query.get("$skiptoken"):
            round_, index = _resume(call, kind, query["$skiptoken"])
        elif query.get("$deltatoken") and query["$deltatoken"].lower() != "latest":
            select, ids, since = _open_token(call, kind, query["$deltatoken"])
            round_, index = _start(call, kind, select, ids, since), 0
        else:
            select, ids = _parse_options(call, kind)
            if (query.get("$deltatoken") or "").lower() == "latest":
                return _latest(call, kind, select, ids)
            round_, index = _start(call, kind, select, ids, None), 0
        return _page(call, round_, index)


# ------------------------------------------------------------------------------------------------ options and tokens


def _parse_options(call: Call, kind: str) -> tuple[list[str] | None, list[str] | None]:
    schema = (*USER_PROPERTIES, "manager") if kind == "user" else (*GROUP_PROPERTIES, "members", "owners")
    type_name = USER_TYPE if kind == "user" else GROUP_TYPE
    select = select_option(call, schema, type_name)
    expand = [n.lower() for n in parse_expand(call.query.get("$expand"))]
    if expand and not (kind == "group" and expand == ["members"]):  # delta-query-groups.md allows $expand=members
        raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")
    if expand:
        select = [*(select or GROUP_DEFAULT), "members"]
    if call.query.get("$orderby") or call.query.get("$search"):
        raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")
    if "$top" in call.query:  # user-delta.md: $top is not supported; page size comes from the Prefer header
        raise GraphFailure(
            400,
            "Request_UnsupportedQuery",
            "Unsupported Query: $top is not supported by delta queries; "
            "send the header 'Prefer: odata.maxpagesize={n}' to choose the page size.",
        )
    ids = None
    if call.query.get("$filter"):
        try:
            ids = parse_filter(call.query["$filter"]).id_equalities()
        except QueryError as error:
            raise GraphFailure.from_query(error) from None
        if ids is None or len(ids) > 50:  # delta supports only "id eq '..' or id eq '..'", up to 50 ids
            raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")
        ids = [i.lower() for i in ids]
    return select, ids


def _delta_token(round_: _Round) -> str:
    return encode_token(
        {
            "k": round_.kind,
            "s": round_.select,
            "f": round_.ids,
            "w": round_.watermark,
            "e": round_.epoch,
            "t": int(time.time()),
        }
    )


def _open_token(call: Call, kind: str, token: str) -> tuple[list[str] | None, list[str] | None, int]:
    payload = decode_token(token)
    if not payload or payload.get("k") != kind or not isinstance(payload.get("w"), int):
        raise GraphFailure(
            400,
            "Request_BadRequest",
            "The delta token is not valid for this request: use the "
            "@odata.deltaLink exactly as a previous round returned it.",
        )
    if payload.get("e") != call.tenant.delta_epoch:
        raise _expired(call, kind, call.tenant.delta_expired_modes.get(payload.get("e"), "syncStateNotFound"), payload)
    if time.time() - payload.get("t", 0) > DELTA_TOKEN_LIFETIME.total_seconds():
        raise _expired(call, kind, "syncStateNotFound", payload)
    return payload.get("s"), payload.get("f"), payload["w"]


def _resume(call: Call, kind: str, token: str) -> tuple[_Round, int]:
    payload = decode_token(token)
    if not payload or payload.get("k") != kind or not isinstance(payload.get("i"), int):
        raise GraphFailure(
            400,
            "Request_BadRequest",
            "The skip token is not valid for this request: follow the "
            "@odata.nextLink exactly as the previous page returned it.",
        )
    tenant = call.tenant
    if payload.get("e") != tenant.delta_epoch:
        raise _expired(call, kind, tenant.delta_expired_modes.get(payload.get("e"), "syncStateNotFound"), {})
    round_ = tenant.delta_sessions.get(payload.get("r"))
    if round_ is None:
        raise _expired(call, kind, "syncStateNotFound", {})
    return round_, payload["i"]


def _expired(call: Call, kind: str, mode: str, payload: dict[str, Any]) -> GraphFailure:
    if mode == "reset410":
        select = payload.get("s")
        query = f"$select={quote(','.join(select), safe=',')}&" if select else ""
        location = f"{call.base}/{_COLLECTION[kind]}/delta?{query}$deltatoken="
        return GraphFailure(
            410,
            "resyncRequired",
            "The synchronization state was reset. Discard the delta token and run a full synchronization "
            "from the URL in the Location header.",
            headers={"Location": location},
        )
    return GraphFailure(
        410,
        "syncStateNotFound",
        "The sync state generation is not found: the delta or skip token has expired. Start a new "
        "synchronization with a delta request that has no $deltatoken or $skiptoken.",
    )


def _latest(call: Call, kind: str, select: list[str] | None, ids: list[str] | None) -> SimResponse:
    round_ = _Round(kind, select, ids, call.tenant.change_seq, call.tenant.delta_epoch, [])
    link = f"{call.base}/{_COLLECTION[kind]}/delta?$deltatoken={_delta_token(round_)}"
    context = call.context_url(select_context(_COLLECTION[kind], select))
    return json_response(200, {"@odata.context": context, "@odata.deltaLink": link, "value": []})


# ------------------------------------------------------------------------------------------------ rounds


def _start(call: Call, kind: str, select: list[str] | None, ids: list[str] | None, since: int | None) -> _Round:
    """Fix the round's items now; big relationship lists are split into chunks, one copy of the object each, so
    every page is a pure function of (round, position) and a retried page returns the same items."""
    tenant = call.tenant
    units = (
        _initial_units(tenant, kind, select, ids) if since is None else _changed_units(tenant, kind, select, ids, since)
    )
    chunk = _page_size(call, kind) if call.prefer_value("odata.maxpagesize") else MEMBER_CHUNK
    return _Round(kind, select, ids, tenant.change_seq, tenant.delta_epoch, _chunked(units, chunk))


def _chunked(units: list[_Unit], chunk: int) -> list[_Unit]:
    result = []
    for unit in units:
        entries = [(rel, target, added) for rel, pairs in unit.links.items() for target, added in pairs]
        if len(entries) <= chunk:
            result.append(unit)
            continue
        for start in range(0, len(entries), chunk):
            links: dict[str, list[tuple[str, bool]]] = {}
            for rel, target, added in entries[start : start + chunk]:
                links.setdefault(rel, []).append((target, added))
            result.append(_Unit(unit.object_id, unit.props, links))
    return result


def _tracked_links(kind: str, select: list[str] | None) -> tuple[str, ...]:
    return tuple(link for link in _LINKS[kind] if select and link in select)


def _initial_units(tenant: Tenant, kind: str, select: list[str] | None, ids: list[str] | None) -> list[_Unit]:
    objects = tenant.users if kind == "user" else tenant.groups
    wanted = [i for i in ids if i in objects] if ids is not None else list(objects)
    links = _tracked_links(kind, select)
    if kind == "user":
        return [
            _Unit(
                uid,
                None,
                {"manager": [(tenant.manager_of[uid], True)]}
                if "manager" in links and uid in tenant.manager_of
                else {},
            )
            for uid in wanted
        ]
    units = []
    for gid in wanted:
        rels = {}
        if "members" in links:
            rels["members"] = [(uid, True) for uid in tenant.group_members.get(gid, {})]
        if "owners" in links:
            rels["owners"] = [(uid, True) for uid in tenant.group_owners.get(gid, {})]
        units.append(_Unit(gid, None, rels))
    return units


def _changed_units(
    tenant: Tenant, kind: str, select: list[str] | None, ids: list[str] | None, since: int
) -> list[_Unit]:
    """Aggregate the change log after ``since`` into one unit per object that has a *tracked* change."""
    tracked = set(select or (USER_DEFAULT if kind == "user" else GROUP_DEFAULT)) - set(_LINKS[kind])
    links = _tracked_links(kind, select)
    wanted = set(ids) if ids is not None else None
    found: dict[str, _Unit] = {}
    for change in tenant.changes[since:]:
        if change.kind != kind or (wanted is not None and change.object_id not in wanted):
            continue
        relevant = [(rel, target, added) for rel, target, added in change.links if rel in links]
        if not (change.lifecycle or change.props & tracked or relevant):
            continue
        unit = found.pop(change.object_id, None) or _Unit(change.object_id, frozenset(), {})
        found[change.object_id] = unit  # re-insert: units are ordered by their latest change
        unit.props = None if change.lifecycle or unit.props is None else unit.props | (change.props & tracked)
        for rel, target, added in relevant:
            entries = [e for e in unit.links.setdefault(rel, []) if e[0] != target]
            unit.links[rel] = [*entries, (target, added)]
    return list(found.values())


def _page(call: Call, round_: _Round, index: int) -> SimResponse:
    kind = round_.kind
    page_size = _page_size(call, kind)
    items, refs, position = [], 0, index
    chunk = max(page_size, MEMBER_CHUNK) if not call.prefer_value("odata.maxpagesize") else page_size
    while position < len(round_.units) and len(items) < page_size and refs < chunk:
        unit = round_.units[position]
        items.append(_render(call, round_, unit))
        refs += sum(len(pairs) for pairs in unit.links.values())
        position += 1
    collection = _COLLECTION[kind]
    body: dict[str, Any] = {"@odata.context": call.context_url(select_context(collection, round_.select))}
    if position < len(round_.units):
        session = _keep_session(call.tenant, round_)
        token = encode_token({"k": kind, "r": session, "i": position, "e": round_.epoch})
        body["@odata.nextLink"] = f"{call.base}/{collection}/delta?$skiptoken={token}"
    else:
        body["@odata.deltaLink"] = f"{call.base}/{collection}/delta?$deltatoken={_delta_token(round_)}"
    body["value"] = items
    return json_response(200, body)


def _page_size(call: Call, kind: str) -> int:
    value = call.prefer_value("odata.maxpagesize")
    if value and value.isdigit() and 1 <= int(value) <= 999:
        return int(value)
    return PAGE_SIZE[kind]


def _keep_session(tenant: Tenant, round_: _Round) -> str:
    for key, value in tenant.delta_sessions.items():
        if value is round_:
            return key
    key = secrets.token_urlsafe(12)
    tenant.delta_sessions[key] = round_
    while len(tenant.delta_sessions) > MAX_SESSIONS:
        tenant.delta_sessions.popitem(last=False)
    return key


def _render(call: Call, round_: _Round, unit: _Unit) -> dict[str, Any]:
    """The JSON for one unit: the object (current state), or an ``@removed`` stub when it is gone."""
    tenant = call.tenant
    objects = tenant.users if round_.kind == "user" else tenant.groups
    obj = objects.get(unit.object_id)
    if obj is None:
        reason = "changed" if unit.object_id in tenant.deleted_users else "deleted"
        return {"id": unit.object_id, "@removed": {"reason": reason}}
    names = [
        n
        for n in (round_.select or (USER_DEFAULT if round_.kind == "user" else GROUP_DEFAULT))
        if n not in _LINKS[round_.kind] and n != "id"
    ]
    if unit.props is not None and call.prefer("return=minimal"):
        names = [n for n in names if n in unit.props]
    item = {"id": unit.object_id, **project(obj, names)}
    for rel, pairs in unit.links.items():
        if pairs:
            item[f"{rel}@delta"] = [_link_entry(target, added) for target, added in pairs]
    return item


def _link_entry(target: str, added: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"@odata.type": f"#{USER_TYPE}", "id": target}
    if not added:
        entry["@removed"] = {"reason": "deleted"}
    return entry

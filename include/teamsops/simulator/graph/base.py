"""Shared pieces of the Graph v1.0 routes: the per-request :class:`Call`, Graph-shaped errors, permission checks,
the OData query options read the same way by every resource (``$select``, ``$filter``, ``$search``, ``$top``,
``$orderby``, parameterised by the resource's property sets), and the one paging routine every collection uses
(``$top``, ``$filter``, ``$count``, opaque ``$skiptoken`` nextLinks that embed the original query, graph-facts §2.1).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl

from teamsops.simulator.http import CallContext, Headers, SimRequest, SimResponse
from teamsops.simulator.model import Directory, RuleViolation, Tenant, is_guid, utcnow
from teamsops.simulator.odata import (
    Filter,
    QueryError,
    decode_token,
    encode_token,
    is_eventual,
    parse_filter,
    parse_orderby,
    parse_search,
    parse_select,
    parse_top,
    project,
    query_without,
)

DIRECTORY = "directory"  # Entra ID workload: Request_* / Authorization_RequestDenied codes
TEAMS = "teams"  # Teams workload: NotFound / Forbidden / BadRequest codes

_RULE_CODES = {
    DIRECTORY: {
        "invalid": (400, "Request_BadRequest"),
        "not_found": (404, "Request_ResourceNotFound"),
        "conflict": (409, "Request_BadRequest"),
        "forbidden": (403, "Authorization_RequestDenied"),
    },
    TEAMS: {
        "invalid": (400, "BadRequest"),
        "not_found": (404, "NotFound"),
        "conflict": (409, "Conflict"),
        "forbidden": (403, "Forbidden"),
    },
}
INSUFFICIENT_PRIVILEGES = "Insufficient privileges to complete the operation."


class GraphFailure(Exception):
    """Stops a route with a Graph error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    @classmethod
    def from_rule(cls, violation: RuleViolation, workload: str) -> GraphFailure:
        status, code = _RULE_CODES[workload][violation.kind]
        return cls(status, code, violation.message)

    @classmethod
    def from_query(cls, error: QueryError) -> GraphFailure:
        return cls(error.status, error.code, error.message)


def error_response(
    status: int,
    code: str,
    message: str,
    ctx: CallContext,
    headers: dict[str, str] | None = None,
    now: datetime | None = None,
) -> SimResponse:
    """Graph's error body (graph-facts §2.3): ``innerError.date`` has no ``Z`` and no fractions."""
    inner = {
        "date": (now or utcnow()).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": ctx.request_id,
        "client-request-id": ctx.client_request_id,
    }
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return SimResponse(status, body, Headers(headers or {}))


def not_found(ref: str) -> GraphFailure:
    return GraphFailure(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref}' does not exist or one of its queried reference-property objects are not present.",
    )


def team_not_found(team_id: str) -> GraphFailure:
    return GraphFailure(404, "NotFound", f"No team found with Group Id {team_id}")


@dataclass
class Call:
    """One Graph request being served: request, caller, the caller's tenant and the matched path parameters."""

    req: SimRequest
    ctx: CallContext
    tenant: Tenant
    directory: Directory
    params: dict[str, str] = field(default_factory=dict)
    workload: str = DIRECTORY

    @property
    def base(self) -> str:
        return self.req.base_url.rstrip("/") + "/v1.0"

    @cached_property
    def query(self) -> dict[str, str]:
        """Query options with case-insensitive ``$`` names folded to lower case (``$Select`` == ``$select``)."""
        return {(k.lower() if k.startswith("$") else k): v for k, v in self.req.query.items()}

    @cached_property
    def now(self) -> datetime:
        return utcnow()

    def context_url(self, fragment: str) -> str:
        return f"{self.base}/$metadata#{fragment}"

    # ------------------------------------------------------------------ permissions
    def require(self, allowed: Iterable[str], workload: str | None = None) -> None:
        """403 unless the token has one of ``allowed`` (application permissions, least privileged first)."""
        allowed = list(allowed)
        if self.ctx.roles & set(allowed):
            return
        if (workload or self.workload) == TEAMS:
            raise GraphFailure(
                403,
                "Forbidden",
                f"Missing role permissions on the request. API requires one of '{', '.join(allowed)}'. "
                f"Roles on the request '{', '.join(sorted(self.ctx.roles))}'.",
            )
        raise GraphFailure(403, "Authorization_RequestDenied", INSUFFICIENT_PRIVILEGES)

    # ------------------------------------------------------------------ bodies
    def body(self) -> dict[str, Any]:
        """The JSON object body of a write (Graph's OData errors for an empty or malformed payload)."""
        if not self.req.body or not self.req.body.strip():
            raise GraphFailure(400, "BadRequest", "Empty Payload. JSON content expected.")
        try:
            value = json.loads(self.req.body)
        except ValueError:
            raise GraphFailure(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type "
                "header is set and payload is of valid JSON format.",
            ) from None
        if not isinstance(value, dict):
            raise GraphFailure(400, "BadRequest", "The request payload must be a JSON object.")
        return value

    # ------------------------------------------------------------------ lookups
    def user(self, ref: str | None = None) -> dict[str, Any]:
        """``/users/{id | userPrincipalName}``: 400 for something that is neither, 404 when absent."""
        ref = ref if ref is not None else self.params["user"]
        if "@" not in ref and not is_guid(ref):
            raise GraphFailure(400, "Request_BadRequest", f"Invalid object identifier '{ref}'.")
        user = self.tenant.resolve_user(ref)
        if user is None:
            raise not_found(ref)
        return user

    def team_id(self) -> str:
        team_id = self.params["team"]
        if team_id not in self.tenant.teams:
            raise team_not_found(team_id)
        return team_id

    def prefer(self, token: str) -> bool:
        return token.lower() in [p.strip().lower() for p in (self.req.headers.get("Prefer") or "").split(",")]

    def prefer_value(self, name: str) -> str | None:
        for part in (self.req.headers.get("Prefer") or "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    # ------------------------------------------------------------------ writes
    def journal(self, status: int, target: str | None) -> None:
        """Record an applied write (exactly once, after applying it)."""
        self.directory.record_write(
            tenant_id=self.tenant.id,
            app_id=self.ctx.app_id,
            method=self.req.method,
            path=self.req.path,
            status=status,
            request_id=self.ctx.request_id,
            client_request_id=self.ctx.client_request_id,
            target=target,
        )


def check_options(call: Call, allowed: Iterable[str]) -> None:
    """Refuse OData system query options the API does not support (Graph answers 400, e.g. ``$skip`` on /users),
    rather than silently ignoring them."""
    accepted = {name.lower() for name in allowed} | {"$skiptoken"}
    for key in call.query:
        if key.startswith("$") and key not in accepted:
            code = "BadRequest" if call.workload == TEAMS else "Request_BadRequest"
            raise GraphFailure(400, code, f"The query parameter '{key}' is not supported.")


# ------------------------------------------------------------------ query options
# One reader per option for every resource; the resource's property sets are the parameters. Each turns the
# parser's QueryError into the Graph error it describes.

_T = TypeVar("_T")


def _parsed(parse: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    try:
        return parse(*args, **kwargs)
    except QueryError as error:
        raise GraphFailure.from_query(error) from None


class FilterRules(NamedTuple):
    """What ``$filter`` may use on one resource (without an advanced query), and the names Graph's errors quote.

    :param properties: every property of the type; any other name is unknown.
    :param filterable: the properties (or property paths such as ``signInActivity/lastSignInDateTime``) that
        support ``$filter``.
    :param resource: the resource name in the "unsupported filter clause" message (``User``).
    :param type_name: the type in the "could not find a property" message (``microsoft.graph.user``).
    """

    properties: Collection[str]
    filterable: Collection[str]
    resource: str
    type_name: str

    def check(self, flt: Filter) -> None:
        """Refuse filters on unknown or non-filterable properties, with Graph's two messages."""
        known = {name.lower() for name in self.properties}
        allowed = {name.lower() for name in self.filterable}
        for path in flt.properties:
            root = path.split("/")[0]
            if root.lower() not in known:
                raise GraphFailure(
                    400, "Request_BadRequest", f"Could not find a property named '{root}' on type '{self.type_name}'."
                )
            if path.lower() not in allowed and root.lower() not in allowed:
                raise GraphFailure(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported or invalid query filter clause specified for property '{root}' "
                    f"of resource '{self.resource}'.",
                )


def select_option(
    call: Call, schema: Collection[str], type_name: str, code: str = "Request_BadRequest"
) -> list[str] | None:
    """``$select`` against ``schema`` (None when absent); ``code`` is the workload's error code for unknown names."""
    return _parsed(parse_select, call.query.get("$select"), schema, type_name, code=code)


def filter_option(call: Call, rules: FilterRules | None = None) -> Filter | None:
    """``$filter`` (None when absent), checked against the resource's ``rules`` when it has any."""
    raw = call.query.get("$filter")
    if raw is None:
        return None
    flt = _parsed(parse_filter, raw)
    if rules is not None:
        rules.check(flt)
    return flt


def search_option(call: Call, searchable: Collection[str]) -> Callable[[dict[str, Any]], bool] | None:
    """``$search`` over the ``searchable`` properties (None when absent); needs ``ConsistencyLevel: eventual``."""
    raw = call.query.get("$search")
    if raw is None:
        return None
    return _parsed(parse_search, raw, searchable, call.req.headers)


def top_option(call: Call, maximum: int, default: int, strict: bool = True) -> int:
    """The page size: ``$top`` (refused outside 1..maximum, or clamped when not ``strict``), else ``default``."""
    return _parsed(parse_top, call.query.get("$top"), maximum, strict=strict) or default


def orderby_option(
    call: Call, schema: Collection[str], type_name: str, orderable: Collection[str]
) -> list[tuple[str, bool]]:
    """``$orderby`` as ``[(property, descending)]``; a known property outside ``orderable`` is an unsupported
    query, as Graph answers it."""
    keys = _parsed(parse_orderby, call.query.get("$orderby"), schema, type_name)
    if any(name not in orderable for name, _ in keys):
        raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")
    return keys


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(status, body, Headers(headers or {}))


def no_content() -> SimResponse:
    return SimResponse(204, None)


@dataclass
class Listing:
    """How to page one collection.

    :param source: the raw sequence (ids or dicts), in the order Graph would list it.
    :param full: raw element -> the full Graph object (all properties), or None to skip it.
    :param render: full object -> the JSON item (projection, ``@odata.type``, expansions).
    :param context: ``@odata.context`` URL.
    :param page_size: items per page (the caller applied ``$top``).
    :param flt: a parsed ``$filter`` evaluated on the full object.
    :param count: add ``@odata.count`` (first page only).
    :param search: a ``$search`` predicate evaluated on the full object.
    """

    source: Sequence[Any]
    full: Callable[[Any], dict[str, Any] | None]
    render: Callable[[dict[str, Any]], dict[str, Any]]
    context: str
    page_size: int
    flt: Filter | None = None
    count: bool = False
    search: Callable[[dict[str, Any]], bool] | None = None

    def accepts(self, raw: Any) -> dict[str, Any] | None:
        """The full object when it passes ``$filter`` and ``$search``, else None."""
        obj = self.full(raw)
        if obj is None or (self.flt is not None and not self.flt.matches(obj)):
            return None
        return obj if self.search is None or self.search(obj) else None


def page_response(call: Call, listing: Listing) -> SimResponse:
    """One page of a collection. The skiptoken holds the position in ``source`` (plus a checksum of the query so a
    token can't be replayed against another query); the nextLink repeats the original query, as Graph's do."""
    offset = _skip_offset(call)
    source, items, position = listing.source, [], offset
    while position < len(source) and len(items) < listing.page_size:
        obj = listing.accepts(source[position])
        position += 1
        if obj is not None:
            items.append(listing.render(obj))
    # A nextLink only when another item follows (Graph may also end with an empty page; clients handle both).
    more = any(listing.accepts(source[i]) is not None for i in range(position, len(source)))
    body: dict[str, Any] = {"@odata.context": listing.context}
    if listing.count and offset == 0:
        body["@odata.count"] = sum(1 for raw in source if listing.accepts(raw) is not None)
    if more:
        body["@odata.nextLink"] = _next_link(call, position)
    body["value"] = items
    return json_response(200, body)


def _query_checksum(call: Call) -> int:
    """A checksum of the decoded query options (not their raw spelling, which clients may re-encode)."""
    options = sorted(
        (k.lower(), v) for k, v in parse_qsl(call.req.raw_query, keep_blank_values=True) if k.lower() != "$skiptoken"
    )
    return zlib.crc32(json.dumps([call.req.path.lower(), options]).encode())


def _skip_offset(call: Call) -> int:
    token = call.query.get("$skiptoken")
    if token is None:
        return 0
    payload = decode_token(token)
    if not payload or payload.get("q") != _query_checksum(call) or not isinstance(payload.get("o"), int):
        raise GraphFailure(
            400,
            "Directory_ExpiredPageToken",
            "The specified page token value has expired and can no longer be included in your request.",
        )
    return payload["o"]


def _next_link(call: Call, position: int) -> str:
    kept = query_without(call.req.raw_query, "$skiptoken")
    token = encode_token({"o": position, "q": _query_checksum(call)})
    path = call.req.path
    return f"{call.req.base_url.rstrip('/')}{path}?{kept + '&' if kept else ''}$skiptoken={token}"


def select_context(collection: str, selected: list[str] | None, entity: bool = False) -> str:
    """The ``@odata.context`` fragment: ``users``, ``users(id,displayName)``, ``users/$entity``..."""
    fragment = f"{collection}({','.join(selected)})" if selected else collection
    return fragment + ("/$entity" if entity else "")


def count_requires_eventual(call: Call, flt: Filter | None, advanced_ops: Iterable[str], orderby: bool = False) -> None:
    """Advanced queries (``ne``, ``not``, ``endsWith``, ``$filter`` with ``$orderby``) need
    ``ConsistencyLevel: eventual`` and ``$count=true`` (aad-advanced-queries.md); otherwise 400 Unsupported Query."""
    needs = bool(flt and flt.operators & set(advanced_ops)) or (orderby and flt is not None)
    if needs and not (is_eventual(call.req.headers) and call.query.get("$count", "").lower() == "true"):
        raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")


def projection(
    selected: list[str] | None, defaults: Sequence[str] | None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A render function for ``$select`` (or the default property set when there is none)."""
    names = selected or defaults
    if names is None:
        return dict
    return lambda obj: project(obj, names)

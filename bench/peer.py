"""The sequential peer of the sync benchmark, and the wire accounting both sides of ``bench/sync.py`` use.

**The peer** reads the same tables the way existing connectors do: Microsoft's own Graph SDK for Python
(msgraph-sdk + azure-identity + kiota), one request at a time, following ``@odata.nextLink`` page by page -
organization, subscribedSkus, role definitions and assignments, users, teams (groups with the Teams filter), then
members and channels per team and installed apps per user. Its time is request count x round trip, so it is
linear by construction: it may be timed on a *slice* of the fan-out (every k-th team and user, e.g. 2,000 of
10,000 users) and the fan-out part scaled by k; :func:`run_peer` reports both the measured and the scaled figures.

**Wire accounting** (:class:`WireCounter`, :class:`CountingTransport`, :class:`AsyncCountingTransport`) sits at the
bottom of an httpx client - below the SDK's retry middleware and below our GraphClient's retry loop - so it sees
every HTTP attempt, retries and 429s included. Each attempt is attributed to a table (``/users/delta`` -> users,
``/teams/{id}/members`` -> team_members, ...) and to the throttling limit class the simulator itself charges
(:func:`teamsops.simulator.throttling.classify`), which is what the throttle lower bound is computed from.

Standalone, against a simulator started with the CLI (``python -m teamsops.simulator serve ...``)::

    .venv/bin/python bench/peer.py --connection-file .sim/connections.json [--fraction 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
USER_SELECT = ["id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType", "department",
               "jobTitle", "createdDateTime", "assignedLicenses"]
TEAMS_FILTER = "resourceProvisioningOptions/Any(x:x eq 'Team')"

# (first path segments, lower case) -> table; the fan-out tables are matched by their last segment.
_TABLE_PATHS = {
    ("users", "delta"): "users",
    ("users",): "users",
    ("groups", "delta"): "teams",
    ("groups",): "teams",
    ("organization",): "organization",
    ("subscribedskus",): "subscribed_skus",
    ("rolemanagement", "directory", "roledefinitions"): "role_definitions",
    ("rolemanagement", "directory", "roleassignments"): "role_assignments",
}


def table_of(method: str, path: str) -> str:
    """The sync table a Graph request reads (``"other"`` for anything else, e.g. writes)."""
    segs = [unquote(s).lower() for s in urlsplit(path).path.split("/") if s]
    if segs and segs[0] in ("v1.0", "beta"):
        segs = segs[1:]
    if method.upper() != "GET":
        return "other"
    if len(segs) == 3 and segs[0] == "teams" and segs[2] == "members":
        return "team_members"
    if len(segs) == 3 and segs[0] == "teams" and segs[2] == "channels":
        return "channels"
    if len(segs) == 4 and segs[0] == "users" and segs[2:] == ["teamwork", "installedapps"]:
        return "user_installed_apps"
    return _TABLE_PATHS.get(tuple(segs), "other")


# ---------------------------------------------------------------------------------------------- wire accounting
@dataclass
class WireCounts:
    """What went over the wire (JSON-able through :meth:`to_dict`)."""

    requests: int = 0
    throttled: int = 0
    by_table: Counter = field(default_factory=Counter)
    throttled_by_table: Counter = field(default_factory=Counter)
    accepted_by_class: Counter = field(default_factory=Counter)  # limit class -> requests not answered 429
    accepted_by_team: Counter = field(default_factory=Counter)  # team id -> Teams requests not answered 429
    resource_units: int = 0  # identity requests not answered 429, in resource units
    by_client: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> requests, tables, first, last
    first_at: dict[str, float] = field(default_factory=dict)  # table -> wall clock of its first request
    last_at: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        busiest = self.accepted_by_team.most_common(1)
        return {"requests": self.requests, "throttled": self.throttled, "by_table": dict(self.by_table),
                "throttled_by_table": dict(self.throttled_by_table),
                "accepted_by_class": dict(self.accepted_by_class), "resource_units": self.resource_units,
                "busiest_team": list(busiest[0]) if busiest else None,
                "by_client": {k: {**v, "tables": dict(v["tables"])} for k, v in self.by_client.items()},
                "first_at": dict(self.first_at), "last_at": dict(self.last_at)}


class WireCounter:
    """Thread-safe tally of HTTP attempts per table and per throttling limit class (a ``$batch`` counts each item,
    as Graph does)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = WireCounts()

    def record(self, request: httpx.Request, response: httpx.Response, label: str = "") -> None:
        items = _batch_items(request, response) if request.url.path.endswith("/$batch") else None
        if items is None:
            items = [(request.method, request.url.path, dict(request.url.params), response.status_code)]
        now = time.time()
        with self._lock:
            client = self.counts.by_client.setdefault(label, {"requests": 0, "tables": Counter(), "first": now})
            client["requests"] += len(items)
            client["last"] = now
            for method, path, query, status in items:
                client["tables"][table_of(method, path)] += 1
                self._add(method, path, query, status, now)

    def _add(self, method: str, path: str, query: dict[str, str], status: int, now: float) -> None:
        from teamsops.simulator.throttling import IDENTITY, classify

        counts, table = self.counts, table_of(method, path)
        counts.requests += 1
        counts.by_table[table] += 1
        counts.first_at.setdefault(table, now)
        counts.last_at[table] = now
        if status == 429:
            counts.throttled += 1
            counts.throttled_by_table[table] += 1
            return
        limit = classify(method, path, query)
        counts.accepted_by_class[limit.limit_class] += 1
        if limit.limit_class == IDENTITY:
            counts.resource_units += limit.cost
        if limit.team_id:
            counts.accepted_by_team[limit.team_id.lower()] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.counts.to_dict()))


def _batch_items(request: httpx.Request, response: httpx.Response) -> list[tuple[str, str, dict, int]] | None:
    """The inner requests of a ``$batch`` with their statuses (None when the envelope itself failed)."""
    if response.status_code != 200:
        return None
    try:
        sent = {r["id"]: r for r in json.loads(request.content)["requests"]}
        answered = {r["id"]: r["status"] for r in json.loads(response.content)["responses"]}
    except (ValueError, KeyError, TypeError):
        return None
    items = []
    for item_id, item in sent.items():
        url = urlsplit("/v1.0/" + item["url"].lstrip("/"))
        items.append((item.get("method", "GET"), url.path, dict(parse_qsl(url.query)),
                      int(answered.get(item_id, 424))))
    return items


class CountingTransport(httpx.BaseTransport):
    """An httpx transport that records every attempt in a :class:`WireCounter` (for GraphClient); ``label``
    names the client in ``by_client`` (requests, tables read, first and last request time)."""

    def __init__(self, counter: WireCounter, inner: httpx.BaseTransport, label: str = "") -> None:
        self.counter, self.inner, self.label = counter, inner, label

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/$batch"):
            response.read()  # the inner statuses are in the body
        self.counter.record(request, response, self.label)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncCountingTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`CountingTransport` (for the SDK, which is async)."""

    def __init__(self, counter: WireCounter, inner: httpx.AsyncBaseTransport) -> None:
        self.counter, self.inner = counter, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/$batch"):
            await response.aread()
        self.counter.record(request, response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# ---------------------------------------------------------------------------------------------- the peer
@dataclass
class PeerPhase:
    name: str
    seconds: float
    requests: int
    rows: int
    parents_read: int = 0  # fan-out phases: teams / users actually read
    parents_total: int = 0  # ... of how many in the tenant


def _sdk_client(connection: dict[str, Any], counter: WireCounter) -> tuple[Any, Any]:
    """A GraphServiceClient pointed at the simulator (as tests/fidelity/test_msgraph_sdk.py does), counting."""
    from azure.identity.aio import ClientSecretCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    extra = connection["extra"]
    base = extra["graph_url"].rstrip("/")
    verify = ssl.create_default_context(cafile=extra["verify"])
    credential = ClientSecretCredential(extra["tenant_id"], connection["login"], connection["password"],
                                        authority=extra["authority_host"], disable_instance_discovery=True,
                                        connection_verify=extra["verify"])  # fmt: skip
    host = urlsplit(base).hostname or "127.0.0.1"
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host])
    transport = AsyncCountingTransport(counter, httpx.AsyncHTTPTransport(verify=verify))
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(transport=transport,
                                                                                      timeout=120))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{base}/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential


async def _all(builder: Any, config: Any = None) -> list[Any]:
    """Every item of a collection: the first page, then ``@odata.nextLink`` one page at a time."""
    page = await builder.get(request_configuration=config)
    items = list(page.value or [])
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get()
        items.extend(page.value or [])
    return items


def _slice(ids: list[str], fraction: float) -> list[str]:
    """Every k-th id (k = round(1 / fraction)): a deterministic sample spread over the whole listing."""
    return ids[:: max(1, round(1 / fraction))]


async def _peer(connection: dict[str, Any], fraction: float, counter: WireCounter) -> list[PeerPhase]:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
    from msgraph.generated.users.item.teamwork.installed_apps.installed_apps_request_builder import (
        InstalledAppsRequestBuilder,
    )
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    client, credential = _sdk_client(connection, counter)
    phases: list[PeerPhase] = []

    async def timed(name: str, work: Any, parents: tuple[int, int] = (0, 0)) -> Any:
        before, started = counter.snapshot()["requests"], time.perf_counter()
        result = await work
        rows = result if isinstance(result, int) else len(result)
        phases.append(PeerPhase(name, time.perf_counter() - started, counter.snapshot()["requests"] - before, rows,
                                *parents))
        return result

    async def per_parent(ids: list[str], builder_of: Any, config: Any = None) -> int:
        total = 0
        for parent in ids:  # one parent after the other, one page after the other
            total += len(await _all(builder_of(parent), config))
        return total

    try:
        await credential.get_token(GRAPH_SCOPE)  # the token first, so no phase pays for it
        directory = client.role_management.directory
        await timed("organization", _all(client.organization))
        await timed("subscribed_skus", _all(client.subscribed_skus))
        await timed("role_definitions", _all(directory.role_definitions))
        await timed("role_assignments", _all(directory.role_assignments))
        users_query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=USER_SELECT, top=999)
        users = await timed("users", _all(client.users, RequestConfiguration(query_parameters=users_query)))
        teams_query = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
            filter=TEAMS_FILTER, select=["id", "displayName", "description", "visibility"], top=999)
        teams = await timed("teams", _all(client.groups, RequestConfiguration(query_parameters=teams_query)))
        team_ids, user_ids = [t.id for t in teams], [u.id for u in users]
        team_slice, user_slice = _slice(team_ids, fraction), _slice(user_ids, fraction)
        await timed("team_members", per_parent(team_slice, lambda t: client.teams.by_team_id(t).members),
                    (len(team_slice), len(team_ids)))
        await timed("channels", per_parent(team_slice, lambda t: client.teams.by_team_id(t).channels),
                    (len(team_slice), len(team_ids)))
        apps_query = InstalledAppsRequestBuilder.InstalledAppsRequestBuilderGetQueryParameters(expand=["teamsApp"])
        await timed("user_installed_apps",
                    per_parent(user_slice, lambda u: client.users.by_user_id(u).teamwork.installed_apps,
                               RequestConfiguration(query_parameters=apps_query)),
                    (len(user_slice), len(user_ids)))
    finally:
        await credential.close()
    return phases


def run_peer(connection: dict[str, Any], fraction: float = 1.0) -> dict[str, Any]:
    """Run the sequential peer; returns measured and whole-tenant (scaled) figures.

    :param connection: the ``msteams`` connection dict (``sim.connection()`` or an entry of connections.json).
    :param fraction: share of teams and users whose fan-out (members, channels / installed apps) is read; each
        fan-out phase's time and requests are scaled by ``parents_total / parents_read``, the rest counted once.
    :returns: ``{"fraction", "measured_s", "scaled_s", "requests_measured", "requests_scaled", "phases", "wire"}``;
        ``wire`` is the :class:`WireCounter` snapshot of the measured run (every attempt, 429s included).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    counter = WireCounter()
    started = time.perf_counter()
    phases = asyncio.run(_peer(connection, fraction, counter))
    measured = time.perf_counter() - started
    overhead = measured - sum(p.seconds for p in phases)  # client set-up and the token: paid once either way
    scaled_s, scaled_requests = overhead, 0.0
    rows = []
    for entry in phases:
        factor = entry.parents_total / entry.parents_read if entry.parents_read else 1.0
        scaled_s += entry.seconds * factor
        scaled_requests += entry.requests * factor
        rows.append({**entry.__dict__, "scale": factor})
    wire = counter.snapshot()
    return {"fraction": fraction, "measured_s": measured, "scaled_s": scaled_s,
            "requests_measured": wire["requests"], "requests_scaled": math.ceil(scaled_requests),
            "phases": rows, "wire": wire}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--connection-file", required=True, help="connections.json written by the simulator CLI")
    parser.add_argument("--conn-id", default="msteams_default")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of teams/users whose fan-out is read")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with open(args.connection_file, encoding="utf-8") as handle:
        connection = json.load(handle)[args.conn_id]
    result = run_peer(connection, args.fraction)
    for entry in result["phases"]:
        print(f"{entry['name']:<20} {entry['requests']:>7,} requests {entry['seconds']:>9.1f} s"
              + (f"  ({entry['parents_read']:,} of {entry['parents_total']:,} parents, x{entry['scale']:.2f})"
                 if entry["parents_read"] else ""))
    print(f"measured {result['measured_s']:.1f} s, {result['requests_measured']:,} requests, "
          f"{result['wire']['throttled']:,} answered 429; scaled to the whole tenant: {result['scaled_s']:.1f} s, "
          f"{result['requests_scaled']:,} requests")


if __name__ == "__main__":
    main()

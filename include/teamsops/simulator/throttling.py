"""Graph and Bot Framework throttling, modelled on the published limits (graph-facts §5).

Two families of limits apply to a Graph request, chosen by :func:`classify` (the ONE place that maps an endpoint to
its limit; the Graph client helper imports it to pace itself client-side):

* **Identity and access** (users, groups, directory, organization, subscribedSkus, roleManagement, ...): a
  resource-unit (RU) token bucket per (app, tenant) sized by the tenant's user count (S < 50, M 50-500, L > 500
  users: 3,500 / 5,000 / 8,000 RU per 10 s), a write bucket (3,000 per 150 s per app+tenant), plus the app-wide
  (150,000 RU / 20 s, 70,000 writes / 5 min) and tenant-wide (18,000 writes / 5 min) buckets. Each request costs RU
  from the documented cost table, adjusted by ``$select`` (-1), ``$expand`` (+1), ``$top`` < 20 (-1), never < 1.
* **Microsoft Teams**: requests per second per app per tenant for each endpoint class (GET members 60, GET channels
  60, GET installedApps 30, GET team / joinedTeams 30, POST members 30, other GET 30, other 30, ...), the per-app
  all-tenants rps, max 4 rps per app on one team, and POST /teams/{id}/members 4 per minute per team.

Bot connector requests get 30 rps per app per tenant and the per-conversation limits (send/create 7/1 s, 8/2 s,
60/30 s, 1800/h; get members 14/1 s, 16/2 s, 120/30 s, 3600/h).

Profiles: ``"off"`` (nothing is throttled; ``x-ms-resource-unit`` is still reported) and ``"documented"`` (the real
numbers). ``scale`` multiplies every limit: the demo runs documented x 10, tests use small factors (e.g. 0.01) so a
429 is reached in a handful of requests. A scaled window keeps its *rate* exact: a limit that would fall below one
request is stretched in time instead (60 rps x 0.01 => 1 request per 1.67 s).

Semantics worth knowing:
* Token buckets refill continuously; Teams and bot limits are sliding windows over exact timestamps, so "N per
  window" holds for every window, not just aligned ones. ``Retry-After`` is the exact time until the request would
  fit (fractional seconds, rounded up to the millisecond).
* A rejected request is not charged (Graph documents that throttled requests still accrue; not charging them keeps
  Retry-After exact, so a client that honours it always succeeds on its next try).
* All state is guarded by one lock, so concurrent requests from many threads see a consistent budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import unquote

PROFILES = ("off", "documented")

# --- identity and access service (graph-facts §5.3) --------------------------------------------------------------
RESOURCE_UNIT_QUOTA = {"S": 3_500, "M": 5_000, "L": 8_000}  # per app+tenant, per RU_WINDOW_S
RU_WINDOW_S = 10.0
WRITE_QUOTA, WRITE_WINDOW_S = 3_000, 150.0  # per app+tenant
APP_RU_QUOTA, APP_RU_WINDOW_S = 150_000, 20.0  # per app, all tenants
APP_WRITE_QUOTA, APP_WRITE_WINDOW_S = 70_000, 300.0  # per app, all tenants
TENANT_WRITE_QUOTA, TENANT_WRITE_WINDOW_S = 18_000, 300.0  # per tenant, all apps
GLOBAL_APP_RPS = 2_000  # any Graph request, per app across all tenants (throttling.md)

IDENTITY = "identity"
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class TeamsLimit:
    """One row of the Teams service-limits table: requests per second for an endpoint class."""

    limit_class: str
    description: str
    per_app_tenant_rps: float
    per_app_rps: float


def _teams_limits(*rows: tuple[str, str, float, float]) -> dict[str, TeamsLimit]:
    return {name: TeamsLimit(name, desc, tenant, app) for name, desc, tenant, app in rows}


# graph-facts §5.4 (newest includes/throttling-teams.md); per app per tenant rps, per app (all tenants) rps.
TEAMS_LIMITS: dict[str, TeamsLimit] = _teams_limits(
    ("teams.get_team", "GET /teams/{id} (and /groups/{id}/team)", 30, 300),
    ("teams.get_joined_teams", "GET /users/{id}/joinedTeams", 30, 300),
    ("teams.get_members", "GET /teams/{id}/members[/{id}]", 60, 1200),
    ("teams.post_members", "POST /teams/{id}/members", 30, 300),
    ("teams.get_channels", "GET /teams/{id}/channels", 60, 1200),
    ("teams.get_channel", "GET /teams/{id}/channels/{id}", 30, 600),
    ("teams.get_channel_members", "GET /teams/{id}/channels/{id}/members", 60, 1200),
    ("teams.post_channel", "POST /teams/{id}/channels", 30, 300),
    ("teams.patch_channel", "PATCH /teams/{id}/channels/{id}", 30, 300),
    ("teams.delete_channel", "DELETE /teams/{id}/channels/{id}", 15, 150),
    ("teams.get_installed_apps", "GET installedApps (user, team)", 30, 600),
    ("teams.post_installed_apps", "POST installedApps (user, team), POST appCatalogs", 30, 300),
    ("teams.delete_installed_apps", "DELETE installedApps / appCatalogs", 15, 150),
    ("teams.get_app_catalog", "GET /appCatalogs/...", 30, 600),
    ("teams.post_teams", "POST /teams", 10, 100),
    ("teams.put_group_team", "PUT /groups/{id}/team, POST /teams/{id}/clone", 6, 150),
    ("teams.patch_team", "PATCH /teams/{id}", 30, 300),
    ("teams.get_messages", "GET channel / chat messages", 20, 200),
    ("teams.post_channel_message", "POST channel message", 50, 500),
    ("teams.post_chat_message", "POST chat message", 20, 200),
    ("teams.other_get", "other GET Teams calls", 30, 1500),
    ("teams.other", "other Teams calls", 30, 300),
)
TEAM_RPS = 4  # max 4 requests per second per app on a given team
POST_MEMBERS_PER_TEAM = (4, 60.0)  # POST /teams/{id}/members: 4 per minute per team ("per resource" column)

# --- Bot Framework (graph-facts §5.5) ----------------------------------------------------------------------------
BOT_APP_TENANT_RPS = 30
BOT_CONVERSATION_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "bot.send": ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0)),  # send to / create conversation, per thread
    "bot.get": ((14, 1.0), (16, 2.0), (120, 30.0), (3600, 3600.0)),  # get members / conversations, per thread
}


class Classification(NamedTuple):
    """Which limit a Graph request counts against: ``identity`` (with its RU ``cost``) or a ``teams.*`` class
    (cost 1), and the team it addresses (for the per-team limit), if any."""

    limit_class: str
    cost: int
    team_id: str | None


class BotClassification(NamedTuple):
    limit_class: str  # "bot.create", "bot.send" or "bot.get"
    conversation_id: str | None


def size_class(user_count: int) -> str:
    """The tenant size class of the RU quota: S < 50 users, M 50-500, L > 500."""
    if user_count < 50:
        return "S"
    return "M" if user_count <= 500 else "L"


def classify(method: str, path: str, query: dict[str, str] | None = None) -> Classification:
    """Map a Graph request to its limit class and cost.

    :param path: the request path with or without the ``/v1.0`` prefix (``/v1.0/teams/{id}/members``).
    :param query: decoded query parameters (``$select``, ``$expand``, ``$top`` change the RU cost).
    """
    segs = _segments(path)
    verb = method.upper()
    head = segs[0].lower() if segs else ""
    if head == "teams":
        return _classify_teams(verb, segs)
    second = segs[2].lower() if len(segs) > 2 else ""
    if head == "users" and second == "joinedteams":
        return Classification("teams.get_joined_teams" if verb == "GET" else "teams.other", 1, None)
    if head == "users" and second == "teamwork":
        return Classification(_installed_apps_class(verb), 1, None)
    if head == "appcatalogs":
        return Classification(_app_catalog_class(verb), 1, None)
    if head == "chats":
        return Classification(_chats_class(verb, segs), 1, None)
    if head == "groups" and second == "team":
        name = {"GET": "teams.get_team", "PUT": "teams.put_group_team", "PATCH": "teams.patch_team"}
        return Classification(name.get(verb, "teams.other"), 1, segs[1])
    return Classification(IDENTITY, resource_unit_cost(verb, segs, query or {}), None)


def classify_bot(method: str, path: str) -> BotClassification:
    """Map a Bot connector request (``/v3/...``, service-url prefix already stripped) to its limit class."""
    segs = _segments(path)
    if segs and segs[0].lower() == "v3":
        segs = segs[1:]
    verb = method.upper()
    if len(segs) <= 1:
        return BotClassification("bot.create" if verb == "POST" else "bot.get", None)
    conversation = segs[1]
    if len(segs) > 2 and segs[2].lower() in ("members", "pagedmembers") and verb == "GET":
        return BotClassification("bot.get", conversation)
    return BotClassification("bot.send" if verb != "GET" else "bot.get", conversation)


def write_cost(method: str, path: str) -> int:
    """Write-quota cost of an identity request: 1 for POST/PATCH/PUT/DELETE except the read-like POST actions."""
    if method.upper() not in _WRITE_METHODS:
        return 0
    last = _segments(path)[-1].lower() if _segments(path) else ""
    return 0 if last in _READ_LIKE_POSTS else 1


_READ_LIKE_POSTS = {
    "getbyids": 3, "getobjectsbyid": 3, "ismemberof": 4, "checkmembergroups": 4, "checkmemberobjects": 4,
    "getmembergroups": 2, "getmemberobjects": 2,
}  # fmt: skip


def resource_unit_cost(method: str, segs: list[str], query: dict[str, str]) -> int:
    """RU cost of an identity request (graph-facts §5.3 table + modifiers; never below 1)."""
    cost = _base_cost(method.upper(), [s.lower() for s in segs])
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = query.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def _base_cost(verb: str, segs: list[str]) -> int:
    n = len(segs)
    head = segs[0] if segs else ""
    if verb == "POST":
        return _READ_LIKE_POSTS.get(segs[-1], 1) if segs else 1
    if verb != "GET":
        return 1
    # "me/..." costs also apply to "users/{id|upn}/..."
    relation = segs[1] if head == "me" and n > 1 else (segs[2] if head == "users" and n > 2 else "")
    if head == "users" and n == 1:
        return 2
    if relation in ("licensedetails", "memberof", "transitivememberof", "ownedobjects"):
        return 2
    if head == "subscribedskus" and n == 1:
        return 3
    if head == "groups" and n > 2:
        return {"members": 3, "transitivemembers": 5}.get(segs[2], 1)
    if head == "applications" and (n == 1 or (n > 2 and segs[2] == "extensionproperties")):
        return 2
    if head == "oauth2permissiongrants" or (head == "serviceprincipals" and n > 2 and segs[2] == "approleassignments"):
        return 2
    if head == "contracts":
        return 3
    if head == "domains" and n > 2 and segs[2] == "domainnamereferences":
        return 4
    return 1


def _classify_teams(verb: str, segs: list[str]) -> Classification:
    if len(segs) == 1:
        return Classification("teams.post_teams" if verb == "POST" else _other(verb), 1, None)
    team_id, rest = segs[1], [s.lower() for s in segs[2:]]
    if not rest:
        name = {"GET": "teams.get_team", "PATCH": "teams.patch_team"}.get(verb, "teams.other")
    elif rest[0] == "members":
        name = {"GET": "teams.get_members", "POST": "teams.post_members"}.get(verb, "teams.other")
        if verb == "POST" and len(rest) > 1 and rest[1] != "add":
            name = "teams.other"
    elif rest[0] == "channels":
        name = _channels_class(verb, rest)
    elif rest[0] == "installedapps":
        name = _installed_apps_class(verb)
    elif rest[0] == "clone" and verb == "POST":
        name = "teams.put_group_team"
    else:
        name = _other(verb)
    return Classification(name, 1, team_id)


def _channels_class(verb: str, rest: list[str]) -> str:
    if len(rest) == 1:
        return {"GET": "teams.get_channels", "POST": "teams.post_channel"}.get(verb, "teams.other")
    if len(rest) == 2:
        named = {"GET": "teams.get_channel", "PATCH": "teams.patch_channel", "DELETE": "teams.delete_channel"}
        return named.get(verb, "teams.other")
    if rest[2] == "members" and verb == "GET":
        return "teams.get_channel_members"
    if rest[2] == "messages":
        return {"GET": "teams.get_messages", "POST": "teams.post_channel_message"}.get(verb, "teams.other")
    return _other(verb)


def _installed_apps_class(verb: str) -> str:
    named = {"GET": "teams.get_installed_apps", "POST": "teams.post_installed_apps",
             "DELETE": "teams.delete_installed_apps"}  # fmt: skip
    return named.get(verb, "teams.other")


def _app_catalog_class(verb: str) -> str:
    named = {"GET": "teams.get_app_catalog", "POST": "teams.post_installed_apps",
             "DELETE": "teams.delete_installed_apps"}  # fmt: skip
    return named.get(verb, "teams.other")


def _chats_class(verb: str, segs: list[str]) -> str:
    if len(segs) > 2 and segs[2].lower() == "messages":
        return {"GET": "teams.get_messages", "POST": "teams.post_chat_message"}.get(verb, "teams.other")
    if len(segs) > 2 and segs[2].lower() == "installedapps":
        return _installed_apps_class(verb)
    return _other(verb)


def _other(verb: str) -> str:
    return "teams.other_get" if verb == "GET" else "teams.other"


def _segments(path: str) -> list[str]:
    path = unquote(path.split("?", 1)[0])
    segs = [s for s in path.split("/") if s]
    if segs and segs[0].lower() in ("v1.0", "beta"):
        segs = segs[1:]
    return segs


def limits_table(scale: float = 1.0) -> list[dict]:
    """Every documented limit the ``documented`` profile enforces, scaled by ``scale`` (rows: scope, limit_class,
    limit, window_s, description). The Graph client helper and the README render this."""
    rows: list[dict] = []

    def add(scope: str, limit_class: str, count: float, window: float, description: str) -> None:
        limit, span = scaled_window(count, window, scale)
        rows.append({"scope": scope, "limit_class": limit_class, "limit": limit, "window_s": round(span, 6),
                     "description": description})  # fmt: skip

    for size, quota in RESOURCE_UNIT_QUOTA.items():
        add("app+tenant", IDENTITY, quota, RU_WINDOW_S, f"resource units, tenant size {size} (token bucket)")
    add("app+tenant", "identity.write", WRITE_QUOTA, WRITE_WINDOW_S, "identity writes (token bucket)")
    add("app", IDENTITY, APP_RU_QUOTA, APP_RU_WINDOW_S, "resource units, all tenants (token bucket)")
    add("app", "identity.write", APP_WRITE_QUOTA, APP_WRITE_WINDOW_S, "identity writes, all tenants (token bucket)")
    add("tenant", "identity.write", TENANT_WRITE_QUOTA, TENANT_WRITE_WINDOW_S, "identity writes, all apps")
    add("app", "graph", GLOBAL_APP_RPS, 1.0, "any Graph request, all tenants")
    for limit in TEAMS_LIMITS.values():
        add("app+tenant", limit.limit_class, limit.per_app_tenant_rps, 1.0, limit.description)
        add("app", limit.limit_class, limit.per_app_rps, 1.0, limit.description + ", all tenants")
    add("app+team", "teams.*", TEAM_RPS, 1.0, "any Teams request on one team")
    add("app+team", "teams.post_members", *POST_MEMBERS_PER_TEAM, "add member, per team")
    add("app+tenant", "bot.*", BOT_APP_TENANT_RPS, 1.0, "any Bot connector request")
    for name, windows in BOT_CONVERSATION_LIMITS.items():
        for count, window in windows:
            add("app+conversation", name, count, window, "per conversation (thread)")
    return rows


def scaled_window(count: float, window_s: float, scale: float) -> tuple[int, float]:
    """``count`` per ``window_s`` scaled by ``scale`` as an integral limit with the same rate.

    E.g. (60, 1 s) x 0.01 => (1, 1.667 s); (30, 1 s) x 0.05 => (1, 0.667 s); (8, 2 s) x 10 => (80, 2 s).
    """
    wanted = count * scale
    if wanted <= 0:
        raise ValueError("throttle scale must be positive")
    limit = max(1, math.floor(wanted + 1e-9))
    return limit, window_s * limit / wanted


# --- primitives ----------------------------------------------------------------------------------------------------
class TokenBucket:
    """A continuously refilling bucket: ``capacity`` tokens, refilled at ``capacity / window_s`` per second."""

    def __init__(self, capacity: float, window_s: float, now: float) -> None:
        self.capacity = max(1.0, capacity)
        self.rate = self.capacity / window_s
        self.tokens = self.capacity
        self.updated = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are available (0 when they are now)."""
        self._refill(now)
        need = min(cost, self.capacity) - self.tokens  # a cost above capacity waits for a full bucket
        return 0.0 if need <= 1e-9 else need / self.rate

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self.tokens -= min(cost, self.capacity)

    def usage(self) -> float:
        return 1.0 - self.tokens / self.capacity

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class SlidingWindow:
    """At most ``limit`` requests in ANY ``window_s``-long interval (exact event log)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window = window_s
        self.events: deque[float] = deque()

    def wait(self, now: float) -> float:
        self._purge(now)
        if len(self.events) < self.limit:
            return 0.0
        # The request fits once enough of the oldest events have left the window.
        oldest_that_must_leave = self.events[len(self.events) - self.limit]
        return max(0.0, oldest_that_must_leave + self.window - now)

    def take(self, now: float) -> None:
        self.events.append(now)

    def _purge(self, now: float) -> None:
        horizon = now - self.window
        while self.events and self.events[0] <= horizon:
            self.events.popleft()


# --- the throttler -------------------------------------------------------------------------------------------------
@dataclass
class Decision:
    """The outcome of a throttling check. ``headers`` go on the response (429 or success)."""

    allowed: bool
    retry_after: float = 0.0
    limit_class: str = ""
    cost: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    scope: str = ""  # which limit refused the request (x-ms-throttle-scope for identity requests)
    information: str = ""  # why (x-ms-throttle-information for identity requests)


@dataclass
class _Check:
    """One limiter to consult: a bucket (with a cost) or a sliding window, and how to describe a 429 from it."""

    limiter: TokenBucket | SlidingWindow
    cost: float
    scope: str  # for x-ms-throttle-scope (identity) / logs
    information: str  # for x-ms-throttle-information (identity)


class Throttler:
    """Applies a throttling profile; thread-safe. ``clock`` is injectable for tests (monotonic seconds)."""

    def __init__(self, profile: str = "off", scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[tuple, TokenBucket] = {}
        self._windows: dict[tuple, SlidingWindow] = {}
        self.profile = "off"
        self.scale = 1.0
        self.configure(profile, scale)

    def configure(self, profile: str | None = None, scale: float | None = None) -> None:
        """Change the profile and/or scale; counters start afresh."""
        profile = self.profile if profile is None else profile
        scale = self.scale if scale is None else float(scale)
        if profile not in PROFILES:
            raise ValueError(f"unknown throttle profile {profile!r}; use one of {', '.join(PROFILES)}")
        if not scale > 0:
            raise ValueError("throttle scale must be a positive number, e.g. 1 (documented limits) or 0.01")
        with self._lock:
            self.profile, self.scale = profile, scale
            self._buckets.clear()
            self._windows.clear()

    @property
    def enabled(self) -> bool:
        return self.profile != "off"

    def check_graph(
        self, app_id: str, tenant_id: str, user_count: int, method: str, path: str, query: dict[str, str]
    ) -> Decision:
        """Charge (or refuse) one Graph request of ``app_id`` against ``tenant_id``'s limits."""
        cls = classify(method, path, query)
        if cls.limit_class == IDENTITY:
            return self._check_identity(app_id, tenant_id, user_count, method, path, cls.cost)
        return self._check_teams(app_id, tenant_id, cls)

    def check_bot(self, app_id: str, tenant_id: str, method: str, path: str) -> Decision:
        """Charge (or refuse) one Bot connector request."""
        cls = classify_bot(method, path)
        if not self.enabled:
            return Decision(True, limit_class=cls.limit_class)
        with self._lock:
            now = self._clock()
            checks = [self._window_check(("bot", app_id, tenant_id), BOT_APP_TENANT_RPS, 1.0, "App_Tenant")]
            if cls.conversation_id is not None:
                windows = BOT_CONVERSATION_LIMITS["bot.get" if cls.limit_class == "bot.get" else "bot.send"]
                for count, window in windows:
                    key = ("bot.conv", cls.limit_class, app_id, cls.conversation_id, window)
                    checks.append(self._window_check(key, count, window, f"Conversation/{count}per{window:g}s"))
            return self._decide(checks, now, cls.limit_class, 1)

    # -- internals ---------------------------------------------------------------------------------------------
    def _check_identity(
        self, app_id: str, tenant_id: str, user_count: int, method: str, path: str, cost: int
    ) -> Decision:
        headers = {"x-ms-resource-unit": str(cost)}
        if not self.enabled:
            return Decision(True, limit_class=IDENTITY, cost=cost, headers=headers)
        writes = write_cost(method, path)
        with self._lock:
            now = self._clock()
            quota = RESOURCE_UNIT_QUOTA[size_class(user_count)]
            ru = self._bucket(("ru", app_id, tenant_id), quota, RU_WINDOW_S, now)
            pair, app_scope = f"{app_id}/{tenant_id}", f"Application/ReadWrite/{app_id}/{tenant_id}"
            ru_info, write_info = "ResourceUnitLimitExceeded", "WriteLimitExceeded"
            checks = [
                _Check(ru, cost, f"Tenant_Application/ReadWrite/{pair}", ru_info),
                _Check(self._bucket(("ru.app", app_id), APP_RU_QUOTA, APP_RU_WINDOW_S, now), cost, app_scope, ru_info),
                self._window_check(("graph", app_id), GLOBAL_APP_RPS, 1.0, app_scope, information=ru_info),
            ]
            if writes:
                pair_writes = self._bucket(("w", app_id, tenant_id), WRITE_QUOTA, WRITE_WINDOW_S, now)
                app_writes = self._bucket(("w.app", app_id), APP_WRITE_QUOTA, APP_WRITE_WINDOW_S, now)
                tenant_writes = self._bucket(("w.tenant", tenant_id), TENANT_WRITE_QUOTA, TENANT_WRITE_WINDOW_S, now)
                checks += [
                    _Check(pair_writes, writes, f"Tenant_Application/Write/{pair}", write_info),
                    _Check(app_writes, writes, f"Application/Write/{pair}", write_info),
                    _Check(tenant_writes, writes, f"Tenant/Write/{pair}", write_info),
                ]
            decision = self._decide(checks, now, IDENTITY, cost)
            usage = ru.usage()
        if decision.allowed:
            decision.headers.update(headers)
            if usage >= 0.8:
                decision.headers["x-ms-throttle-limit-percentage"] = f"{usage:.1f}"
        else:
            decision.headers["x-ms-throttle-scope"] = decision.scope
            decision.headers["x-ms-throttle-information"] = decision.information
        return decision

    def _check_teams(self, app_id: str, tenant_id: str, cls: Classification) -> Decision:
        if not self.enabled:
            return Decision(True, limit_class=cls.limit_class)
        limit = TEAMS_LIMITS[cls.limit_class]
        with self._lock:
            now = self._clock()
            checks = [
                self._window_check(("teams", cls.limit_class, app_id, tenant_id), limit.per_app_tenant_rps, 1.0,
                                   f"{cls.limit_class}/app+tenant"),
                self._window_check(("teams.app", cls.limit_class, app_id), limit.per_app_rps, 1.0,
                                   f"{cls.limit_class}/app"),
                self._window_check(("graph", app_id), GLOBAL_APP_RPS, 1.0, "graph/app"),
            ]  # fmt: skip
            if cls.team_id:
                checks.append(self._window_check(("team", app_id, cls.team_id), TEAM_RPS, 1.0, "team/app+team"))
                if cls.limit_class == "teams.post_members":
                    count, window = POST_MEMBERS_PER_TEAM
                    key = ("team.add", app_id, cls.team_id)
                    checks.append(self._window_check(key, count, window, "teams.post_members/app+team"))
            return self._decide(checks, now, cls.limit_class, 1)

    def _decide(self, checks: Iterable[_Check], now: float, limit_class: str, cost: int) -> Decision:
        checks = list(checks)
        waits = [(self._wait(check, now), check) for check in checks]
        longest, blocking = max(waits, key=lambda pair: pair[0])
        if longest > 0:
            retry = math.ceil(longest * 1000) / 1000
            headers = {"Retry-After": format_retry_after(retry)}
            return Decision(False, retry, limit_class, cost, headers, blocking.scope, blocking.information)
        for check in checks:
            if isinstance(check.limiter, TokenBucket):
                check.limiter.take(check.cost, now)
            else:
                check.limiter.take(now)
        return Decision(True, 0.0, limit_class, cost)

    @staticmethod
    def _wait(check: _Check, now: float) -> float:
        if isinstance(check.limiter, TokenBucket):
            return check.limiter.wait(check.cost, now)
        return check.limiter.wait(now)

    def _bucket(self, key: tuple, quota: float, window_s: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(quota * self.scale, window_s, now)
        return bucket

    def _window_check(
        self, key: tuple, count: float, window_s: float, scope: str, information: str = "RequestRateLimitExceeded"
    ) -> _Check:
        window = self._windows.get(key)
        if window is None:
            limit, span = scaled_window(count, window_s, self.scale)
            window = self._windows[key] = SlidingWindow(limit, span)
        return _Check(window, 1, scope, information)


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` value: whole seconds when integral, else up to 3 decimals (Graph sends e.g. ``2.128``)."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")

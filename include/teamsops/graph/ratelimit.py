"""Client-side pacing at Microsoft Graph's published throttling limits, shared by concurrent callers.

Graph throttles per app per tenant (graph-facts §5, from microsoft-graph-docs ``concepts/throttling-limits.md`` and
``includes/throttling-teams.md``). A fan-out that ignores the limits runs into 429s and then waits out Retry-After;
a fan-out that paces itself runs *at* the ceiling instead. :class:`RateLimiter` does the pacing:

* **Teams** endpoints are limited in requests per second per endpoint class (GET members 60, GET channels 60,
  GET installedApps 30, GET team / joinedTeams 30, POST members 30, other GET 30, other 30, ...), plus at most
  4 requests per second on any one team and 4 member additions per minute per team ("at most N in any W seconds",
  the way Teams states them).
* **Identity and access** (users, groups, organization, subscribedSkus, roleManagement, ...) is a token bucket of
  resource units per 10 s (S < 50 users: 3,500; M 50-500: 5,000; L > 500: 8,000), each request costing RU from the
  documented table (users 2, subscribedSkus 3, group members 3, ... ; ``$select`` -1, ``$expand`` +1, ``$top`` < 20
  -1, never below 1), plus a write bucket of 3,000 writes per 150 s.

One :class:`RateLimiter` is thread-safe and may be shared by many threads of one ``GraphClient`` and by several
``GraphClient`` objects in one process (pass the same object). Keys include tenant and app, so one limiter can serve
several tenants. Across processes (Celery workers), give each of N shards a limiter with ``share=N``: each paces at
1/N of every tenant-wide limit, so together they stay under the tenant's limit. Per-team limits (``app+team``: 4
requests per second on one team, 4 member additions per minute) are NOT divided: a sharded fan-out deals each team
to exactly one shard, so one shard's limiter sees every request to its teams and may use the whole per-team limit.
Give each shard its index too (``shard=k``): the N limiters then take turns on a common wall-clock grid - shard k
sends in the k-th of every N evenly spaced slots - so together they form ONE evenly spaced stream at the tenant's
rate. Without it their phases are random, and N streams that are each even still bunch into Graph's 1-second windows
(at 4 shards and 95 % of the limit, 2.5 % of requests were answered 429, and each 429 wastes the slot it took).

Pacing is a reservation: a caller reserves the earliest slot that satisfies every limit its request counts against,
then sleeps (outside the lock) until that slot. Reservations are first-come first-served per key. ``headroom``
(default 0.9) keeps a margin for network jitter between our send time and Graph's arrival time. Per-second limits
are paced evenly (no bursts: jitter would push part of a burst into Graph's next window); longer windows (4 member
additions per minute per team) allow their burst; resource-unit buckets allow theirs, like Graph's token bucket.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "DEFAULT_LIMITS",
    "DIRECTORY_RU_QUOTAS",
    "Limit",
    "RateLimiter",
    "Usage",
    "classify",
    "resource_unit_cost",
]


@dataclass(frozen=True)
class Limit:
    """One published limit: ``count`` per ``window_s`` seconds.

    :param kind: ``"window"`` (at most ``count`` requests in any ``window_s`` interval) or ``"bucket"`` (a token
        bucket of ``count`` units refilled over ``window_s``; requests cost units).
    :param scope: what one counter covers: ``"app+tenant"`` or ``"app+team"``.
    """

    name: str
    count: float
    window_s: float
    kind: str = "window"
    scope: str = "app+tenant"
    description: str = ""


def _teams(name: str, rps: float, description: str) -> Limit:
    return Limit(name, rps, 1.0, "window", "app+tenant", description)


# Resource units per 10 s per app+tenant by tenant size (graph-facts §5.3).
DIRECTORY_RU_QUOTAS = {"S": 3_500, "M": 5_000, "L": 8_000}

DEFAULT_LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("directory.ru", DIRECTORY_RU_QUOTAS["S"], 10.0, "bucket", "app+tenant",
              "identity & access resource units (tenant size S; use directory_size for M/L)"),
        Limit("directory.write", 3_000, 150.0, "bucket", "app+tenant", "identity & access writes"),
        _teams("teams.get_members", 60, "GET /teams/{id}/members"),
        _teams("teams.post_members", 30, "POST /teams/{id}/members"),
        _teams("teams.get_channels", 60, "GET /teams/{id}/channels"),
        _teams("teams.get_channel", 30, "GET /teams/{id}/channels/{id}"),
        _teams("teams.get_channel_members", 60, "GET /teams/{id}/channels/{id}/members"),
        _teams("teams.get_installed_apps", 30, "GET installedApps (user, team)"),
        _teams("teams.post_installed_apps", 30, "POST installedApps (user, team)"),
        _teams("teams.delete_installed_apps", 15, "DELETE installedApps"),
        _teams("teams.get_team", 30, "GET /teams/{id}"),
        _teams("teams.get_joined_teams", 30, "GET /users/{id}/joinedTeams"),
        _teams("teams.other_get", 30, "other GET Teams calls"),
        _teams("teams.other", 30, "other Teams calls"),
        Limit("teams.per_team", 4, 1.0, "window", "app+team", "any Teams call on one team"),
        Limit("teams.post_members.per_team", 4, 60.0, "window", "app+team", "member additions to one team"),
    )
}  # fmt: skip

# --------------------------------------------------------------------------------------------- classification
_READ_LIKE_POSTS = {"getbyids": 3, "getobjectsbyid": 3, "ismemberof": 4, "checkmembergroups": 4,
                    "checkmemberobjects": 4, "getmembergroups": 2, "getmemberobjects": 2}  # fmt: skip
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def classify(method: str, path: str, query: Mapping[str, str] | None = None) -> list[tuple[str, float, str | None]]:
    """The limits a request counts against: ``[(limit name, cost, team id or None), ...]``.

    :param path: path relative to the Graph root, with or without ``/v1.0`` (a query string is parsed for costs).
    """
    if query is None and "?" in path:
        query = dict(parse_qsl(path.split("?", 1)[1], keep_blank_values=True))
    segs = _segments(path)
    verb = method.upper()
    low = [s.lower() for s in segs]
    teams = _teams_class(verb, low)
    if teams is not None:
        name, team_id = teams
        team_id = segs[1] if team_id and len(segs) > 1 else None
        out: list[tuple[str, float, str | None]] = [(name, 1, None)]
        if team_id:
            out.append(("teams.per_team", 1, team_id))
            if name == "teams.post_members":
                out.append(("teams.post_members.per_team", 1, team_id))
        return out
    out = [("directory.ru", resource_unit_cost(verb, low, query or {}), None)]
    if verb in _WRITES and not (verb == "POST" and low and low[-1] in _READ_LIKE_POSTS):
        out.append(("directory.write", 1, None))
    return out


def _teams_class(verb: str, low: list[str]) -> tuple[str, bool] | None:
    """(class, addresses-a-team) for Teams endpoints, None for identity & access endpoints."""
    head = low[0] if low else ""
    rel = low[2] if len(low) > 2 else ""
    if head == "users" and rel == "joinedteams":
        return ("teams.get_joined_teams" if verb == "GET" else "teams.other"), False
    if head == "users" and rel == "teamwork":
        return _installed_apps(verb), False
    if head in ("chats", "appcatalogs"):
        return _other(verb), False
    if head != "teams":
        return None
    if len(low) == 1:
        return _other(verb), False
    rest = low[2:]
    if not rest:
        return ("teams.get_team" if verb == "GET" else "teams.other"), True
    if rest[0] == "members":
        if verb == "GET":
            return "teams.get_members", True
        return ("teams.post_members" if verb == "POST" and len(rest) == 1 else "teams.other"), True
    if rest[0] == "channels":
        if verb != "GET":
            return "teams.other", True
        if len(rest) == 1:
            return "teams.get_channels", True
        if len(rest) == 2:
            return "teams.get_channel", True
        return ("teams.get_channel_members" if rest[2] == "members" else "teams.other_get"), True
    if rest[0] == "installedapps":
        return _installed_apps(verb), True
    return _other(verb), True


def _installed_apps(verb: str) -> str:
    return {"GET": "teams.get_installed_apps", "POST": "teams.post_installed_apps",
            "DELETE": "teams.delete_installed_apps"}.get(verb, "teams.other")  # fmt: skip


def _other(verb: str) -> str:
    return "teams.other_get" if verb == "GET" else "teams.other"


def resource_unit_cost(method: str, segs: list[str], query: Mapping[str, str]) -> int:
    """RU cost of an identity & access request (graph-facts §5.3 base costs and modifiers; never below 1).

    :param segs: lower-case path segments after ``/v1.0``.
    """
    cost = _base_cost(method.upper(), segs)
    if "$select" in query:
        cost -= 1
    if "$expand" in query:
        cost += 1
    top = str(query.get("$top", ""))
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def _base_cost(verb: str, segs: list[str]) -> int:
    if verb == "POST":
        return _READ_LIKE_POSTS.get(segs[-1], 1) if segs else 1
    if verb != "GET" or not segs:
        return 1
    head, n = segs[0], len(segs)
    relation = segs[1] if head == "me" and n > 1 else (segs[2] if head == "users" and n > 2 else "")
    if head == "users" and n == 1:
        return 2
    if relation in ("licensedetails", "memberof", "transitivememberof", "ownedobjects"):
        return 2
    if head == "subscribedskus" and n == 1:
        return 3
    if head == "groups" and n > 2:
        return {"members": 3, "transitivemembers": 5}.get(segs[2], 1)
    if head == "applications" and (n == 1 or segs[2:3] == ["extensionproperties"]):
        return 2
    if head == "oauth2permissiongrants" or (head == "serviceprincipals" and segs[2:3] == ["approleassignments"]):
        return 2
    if head == "contracts":
        return 3
    if head == "domains" and segs[2:3] == ["domainnamereferences"]:
        return 4
    return 1


_VERSION_RE = re.compile(r"^(v1\.0|beta)$", re.IGNORECASE)


def _segments(path: str) -> list[str]:
    bare = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    segs = [unquote(s) for s in bare.split("/") if s]
    for i, seg in enumerate(segs):  # drop anything up to the version (a graph_url may carry a path prefix)
        if _VERSION_RE.match(seg):
            return segs[i + 1:]
    return segs


# --------------------------------------------------------------------------------------------- pacing primitives
class _Window:
    """At most ``limit`` reservations in any ``window`` seconds (first-come first-served)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.times: deque[float] = deque()

    def earliest(self, now: float, cost: float) -> float:
        k = min(max(1, int(cost)), self.limit)
        start = max(now, self.times[-1]) if self.times else now
        # k more events fit at ``start`` once the (limit-k+1)-th most recent one has left the window.
        idx = self.limit - k + 1
        if len(self.times) >= idx:
            start = max(start, self.times[-idx] + self.window)
        return start

    def reserve(self, at: float, cost: float) -> None:
        for _ in range(min(max(1, int(cost)), self.limit)):
            self.times.append(at)
        while len(self.times) > self.limit:
            self.times.popleft()


class _Spacing:
    """Even spacing at ``rate`` per second (GCRA without burst).

    Used for the per-second Teams windows: a burst of a whole window's worth followed by the next burst exactly one
    window later is fragile, because network and TLS jitter can move part of one burst into the next window as
    Graph counts it (by arrival). Evenly spaced requests keep every 1 s window at the paced rate +- one request.

    With a ``grid`` (``(origin, phase)``), slots are further restricted to ``origin + (m + phase) / rate``: shards
    with the same rate and phases k/N interleave into one evenly spaced stream.
    """

    def __init__(self, rate: float, grid: tuple[float, float] | None = None) -> None:
        self.rate = rate
        self.period = 1.0 / rate
        self.anchor: float | None = None
        if grid is not None:
            origin, phase = grid
            # Reduced to one period: slot arithmetic on small numbers (the epoch is ~1.7e9 s on a monotonic clock,
            # where dividing by a period of 0.14 s would lose the precision that tells one slot from the next).
            self.anchor = math.fmod(origin + phase * self.period, self.period)
        self.next_free = 0.0

    def earliest(self, now: float, cost: float) -> float:
        start = max(now, self.next_free)
        if self.anchor is None:
            return start
        slots = math.ceil((start - self.anchor) / self.period - 1e-6)
        return self.anchor + slots * self.period

    def reserve(self, at: float, cost: float) -> None:
        self.next_free = at + max(1.0, cost) / self.rate


class _Bucket:
    """Token bucket; tokens may go negative, which is how later callers queue behind a reservation."""

    def __init__(self, capacity: float, window: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window
        self.tokens = capacity
        self.updated = now
        self.next_free = now

    def earliest(self, now: float, cost: float) -> float:
        self._refill(now)
        need = min(cost, self.capacity) - self.tokens
        return max(now, self.next_free, now + need / self.rate if need > 0 else now)

    def reserve(self, at: float, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)
        self.next_free = at

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now


@dataclass
class Usage:
    """What a limiter did: requests paced, how many had to wait, and the total wait."""

    acquired: int = 0
    delayed: int = 0
    waited_s: float = 0.0


class RateLimiter:
    """Thread-safe pacing at Graph's limits for any number of threads and clients.

    :param limits: the limits table (default :data:`DEFAULT_LIMITS`); a mapping may override single entries by name
        with a :class:`Limit` or a plain number (requests, or RU, per the entry's window).
    :param scale: multiply every limit (e.g. to match a simulator running at ``throttle_scale``).
    :param share: this limiter's share is 1/``share`` of every tenant-wide limit (N shards => ``share=N``); per-team
        limits are not divided (each team belongs to one shard).
    :param shard: with ``share=N``, this limiter's shard index (0..N-1): its tenant-wide per-second slots are
        ``k/N`` of a spacing apart from the other shards' on a common wall-clock grid, so the N shards' requests
        interleave evenly (see the module docstring). None: no grid (independent phases).
    :param headroom: pace at this fraction of each limit (margin for network jitter).
    :param directory_size: tenant size class for the identity RU quota: ``"S"``, ``"M"`` or ``"L"``.
    :param sleep: / :param clock: injectable for tests (``clock`` must be monotonic seconds).
    """

    def __init__(
        self,
        limits: Mapping[str, Limit | float] | None = None,
        *,
        scale: float = 1.0,
        share: float = 1.0,
        shard: int | None = None,
        headroom: float = 0.9,
        directory_size: str = "S",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scale <= 0 or share < 1 or not 0 < headroom <= 1:
            raise ValueError("scale must be > 0, share >= 1 and 0 < headroom <= 1")
        if shard is not None and not 0 <= shard < share:
            raise ValueError(f"shard must be in 0..{math.ceil(share) - 1} (share={share:g}), not {shard}")
        if directory_size not in DIRECTORY_RU_QUOTAS:
            raise ValueError(f"directory_size must be one of {', '.join(DIRECTORY_RU_QUOTAS)}")
        table = dict(DEFAULT_LIMITS)
        table["directory.ru"] = replace(table["directory.ru"], count=DIRECTORY_RU_QUOTAS[directory_size])
        for name, value in (limits or {}).items():
            base = table.get(name)
            if isinstance(value, Limit):
                table[name] = value
            elif base is not None:
                table[name] = replace(base, count=float(value))
            else:
                raise ValueError(f"unknown rate limit {name!r}; known: {', '.join(sorted(table))}")
        self.limits = table
        self.scale = scale
        self.factor = scale / share
        self.headroom = headroom
        self._sleep, self._clock = sleep, clock
        # The grid's origin is the Unix epoch on this limiter's clock, so limiters in other processes (other Celery
        # workers, synchronised by NTP) share it; an injected clock (tests) is its own epoch.
        epoch = clock() - time.time() if clock is time.monotonic else 0.0
        self._phase = None if shard is None or share <= 1 else (epoch, shard / share)
        self._lock = threading.Lock()
        self._counters: dict[tuple, _Window | _Bucket | _Spacing] = {}
        self.usage = Usage()

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """A limiter that never waits (for tools that must not pace)."""
        limiter = cls()
        limiter.limits = {}
        return limiter

    def effective_rate(self, name: str) -> float:
        """The pace (units per second) this limiter keeps for limit ``name``."""
        limit = self.limits[name]
        return limit.count * self._factor(limit) * self.headroom / limit.window_s

    def _factor(self, limit: Limit) -> float:
        """Scale and share of one limit: a per-team limit is not shared (a team belongs to one shard)."""
        return self.scale if limit.scope == "app+team" else self.factor

    def acquire(self, tenant_id: str, app_id: str, method: str, path: str,
                query: Mapping[str, str] | None = None) -> float:
        """Wait (if needed) until one request may be sent; returns the seconds waited."""
        return self.acquire_many(tenant_id, app_id, [(method, path, query)])

    def acquire_many(self, tenant_id: str, app_id: str,
                     requests: list[tuple[str, str, Mapping[str, str] | None]]) -> float:
        """Reserve one slot for a group of requests sent together (a ``$batch``: each inner item counts)."""
        needs: dict[tuple, float] = {}
        for method, path, query in requests:
            for name, cost, team in classify(method, path, query):
                if name in self.limits:
                    key = (tenant_id.lower(), app_id.lower(), name, team)
                    needs[key] = needs.get(key, 0.0) + cost
        if not needs:
            return 0.0
        with self._lock:
            now = self._clock()
            counters = {key: self._counter(key, now) for key in needs}
            start = max(counter.earliest(now, needs[key]) for key, counter in counters.items())
            for _ in range(8):  # a later start may miss a grid slot of another counter: settle on one time for all
                later = max(counter.earliest(start, needs[key]) for key, counter in counters.items())
                if later <= start:
                    break
                start = later
            for key, counter in counters.items():
                counter.reserve(start, needs[key])
            delay = start - now
            self.usage.acquired += 1
            if delay > 0:
                self.usage.delayed += 1
                self.usage.waited_s += delay
        if delay > 0:
            self._sleep(delay)
        return max(0.0, delay)

    def _counter(self, key: tuple, now: float) -> _Window | _Bucket | _Spacing:
        counter = self._counters.get(key)
        if counter is None:
            limit = self.limits[key[2]]
            factor = self._factor(limit)
            count = limit.count * factor * self.headroom
            if limit.kind == "bucket":
                counter = _Bucket(max(1.0, count), limit.window_s, now)
            elif limit.window_s <= 1.0:
                shared = self._phase is not None and limit.scope != "app+team"
                counter = _Spacing(count / limit.window_s, self._phase if shared else None)
            else:
                # Allow the window's burst, and keep the rate when the scaled count is not a whole number:
                # N per W => floor(N) per W*floor(N)/N; the headroom lengthens the window.
                exact = limit.count * factor
                whole = max(1, math.floor(exact + 1e-9))
                counter = _Window(whole, limit.window_s * whole / exact / self.headroom)
            self._counters[key] = counter
        return counter

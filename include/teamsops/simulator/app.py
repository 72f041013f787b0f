"""The simulated cloud as one object, independent of sockets: ``Simulator.handle(SimRequest) -> SimResponse``.

It wires the state (``model.Directory``), the API modules (identity platform, Graph ``GraphApi``, Bot connector
``BotApi``, admin ``/_sim``), and the cross-cutting behaviour every request goes through, in this order:

1. routing by path: ``/_sim/...`` admin (loopback only), identity routes (``/{tenant}/oauth2/v2.0/token``, ...),
   ``/v1.0/...`` Graph, ``/v3/...`` or ``/{prefix}/v3/...`` Bot connector;
2. injected latency (not for admin): half of a request's latency passes before the service sees it (where it is
   counted, throttled and applied), the other half before its answer leaves, like a round trip's two legs;
3. authentication of Graph / Bot requests (401 with the real bodies);
4. scripted faults, then random faults (Graph and Bot only), then throttling -- all *before* the request is
   applied, except ``reset_after`` which applies the request and then resets the connection;
5. the API call, then the common response headers (``request-id``, ``client-request-id``, ``x-ms-ags-diagnostic``,
   ``OData-Version``, Graph's JSON content type) and request statistics.

A connection reset is signalled by raising :class:`~teamsops.simulator.faults.ConnectionReset`; the HTTPS server
turns it into a TCP RST. The server adds nothing else, so tests can drive a ``Simulator`` without sockets.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from teamsops.simulator import batch as batching
from teamsops.simulator.admin import AdminApi
from teamsops.simulator.bot_api import BotApi
from teamsops.simulator.faults import RESPONSE_KINDS, ConnectionReset, FaultInjector, FaultRule
from teamsops.simulator.graph_api import GraphApi
from teamsops.simulator.http import CallContext, Headers, SimRequest, SimResponse
from teamsops.simulator.identity import (
    BOT_RESOURCES,
    GRAPH_RESOURCES,
    EstsError,
    IdentityPlatform,
    InvalidToken,
    is_identity_path,
)
from teamsops.simulator.model import ClientCertificate, Directory, Tenant
from teamsops.simulator.throttling import Decision, Throttler, classify, format_retry_after
from teamsops.simulator.tls import SigningKey, certificate_thumbprints

log = logging.getLogger(__name__)

ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
BOT_JSON = "application/json; charset=utf-8"
AGS_DIAGNOSTIC = ('{"ServerInfo":{"DataCenter":"Simulated Region","Slice":"E","Ring":"5","ScaleUnit":"000",'
                  '"RoleInstance":"SIM000000000001"}}')  # fmt: skip
WWW_AUTHENTICATE = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"')  # fmt: skip
_STATS_TIMESTAMPS = 100_000  # per route class; enough to compute achieved rps over any test


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


class RequestStats:
    """Thread-safe request statistics: per route class count, status histogram and timestamps; 429 total; peak
    concurrency. Route classes: ``identity``, ``graph`` (including each ``$batch`` item), ``graph.batch`` (the
    envelope), ``bot``, ``admin``, ``unknown``; Graph requests are also counted per throttling limit class."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._routes: dict[str, dict[str, Any]] = {}
            self._limit_classes: dict[str, int] = {}
            self._throttled = 0
            self._resets = 0
            self._in_flight = getattr(self, "_in_flight", 0)
            self._peak = self._in_flight
            self._since = self._clock()

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def now(self) -> float:
        return self._clock()

    def record(self, route: str, status: int | str, limit_class: str | None = None, at: float | None = None) -> None:
        """Count one request; ``at`` is when the service received it (default: now)."""
        now = self._clock() if at is None else at
        with self._lock:
            entry = self._routes.get(route)
            if entry is None:
                entry = self._routes[route] = {"count": 0, "statuses": {}, "times": deque(maxlen=_STATS_TIMESTAMPS)}
            entry["count"] += 1
            entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1
            entry["times"].append(now)
            if limit_class:
                self._limit_classes[limit_class] = self._limit_classes.get(limit_class, 0) + 1
            if status == 429:
                self._throttled += 1
            if status == "reset":
                self._resets += 1

    def snapshot(self, timestamps: bool = True) -> dict[str, Any]:
        """A JSON-ready copy. ``max_in_1s`` is the most requests seen in any one-second window (achieved peak rps)."""
        with self._lock:
            routes = {}
            for name, entry in self._routes.items():
                times = sorted(entry["times"])  # by arrival; requests may finish in another order
                row = {"count": entry["count"], "statuses": dict(entry["statuses"]), "first": times[0],
                       "last": times[-1], "max_in_1s": _max_in_window(times, 1.0)}  # fmt: skip
                if timestamps:
                    row["timestamps"] = times
                routes[name] = row
            return {"since": self._since, "routes": routes, "limit_classes": dict(self._limit_classes),
                    "throttled": self._throttled, "resets": self._resets, "in_flight": self._in_flight,
                    "peak_concurrency": self._peak}  # fmt: skip


def _max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class _Caller:
    """The authenticated caller of a Graph or Bot request."""

    ctx: CallContext
    tenant: Tenant | None


class Simulator:
    """The whole simulated cloud behind one ``handle`` method (see the module docstring)."""

    def __init__(
        self,
        directory: Directory,
        signing_key: SigningKey,
        *,
        latency_ms: float = 0,
        jitter_ms: float = 0,
        fault_rate: float = 0.0,
        throttle: str = "off",
        throttle_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.directory = directory
        self.identity = IdentityPlatform(directory, signing_key)
        self.graph = GraphApi(directory)
        self.bot = BotApi(directory)
        self.throttler = Throttler(throttle, throttle_scale)
        self.faults = FaultInjector(latency_ms=latency_ms, jitter_ms=jitter_ms, fault_rate=fault_rate, seed=seed)
        self.stats = RequestStats()
        self.admin = AdminApi(self)
        self.started_at = time.time()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    # -- entry point --------------------------------------------------------------------------------------------
    def handle(self, req: SimRequest, client_host: str = "127.0.0.1") -> SimResponse:
        """Serve one request. Raises :class:`ConnectionReset` when a fault says the connection must be reset."""
        route = route_class(req.path)
        self.stats.enter()
        status: int | str = "reset"
        arrived: float | None = None
        try:
            if route == "admin":
                resp = self.admin.handle(req) if _is_loopback(client_host) else _admin_forbidden()
            else:
                # Graph counts (and throttles) a request when it arrives, before the work that makes up most of
                # its latency; putting the whole latency before the count would make arrivals as jittery as
                # complete round trips. Half before, half after: the middle of a round trip.
                delay = self.faults.delay_seconds()
                _sleep(delay / 2)
                arrived = self.stats.now()
                resp = self._dispatch(route, req)
                _sleep(delay - delay / 2)
            status = resp.status
            return resp
        finally:
            self.stats.leave()
            self._record(route, req, status, arrived)

    def _record(self, route: str, req: SimRequest, status: int | str, at: float | None) -> None:
        if route != "graph":
            self.stats.record(route, status, at=at)
        elif batching.is_batch(req):
            self.stats.record("graph.batch", status, at=at)
        else:
            self.stats.record("graph", status, classify(req.method, req.path, req.query).limit_class, at=at)

    def _dispatch(self, route: str, req: SimRequest) -> SimResponse:
        if route == "identity":
            return self._identity(req)
        if route == "graph":
            return self._graph(req)
        if route == "bot":
            return self._bot(req)
        message = (f"No simulator route for '{req.path}'. Known prefixes: /{{tenant}}/oauth2/v2.0/token and the "
                   "other identity endpoints, /v1.0/... (Graph), /{prefix}/v3/... (Bot connector), /_sim/... (admin).")
        return SimResponse(404, {"error": {"code": "NotFound", "message": message}},
                           Headers({"Content-Type": "application/json"}))  # fmt: skip

    # -- identity -----------------------------------------------------------------------------------------------
    def _identity(self, req: SimRequest) -> SimResponse:
        rule = self.faults.take(req.method, req.path)
        reset_after = self._scripted_outcome(rule)
        if rule is not None and rule.kind in RESPONSE_KINDS:
            return self._identity_fault(rule.kind, rule.retry_after, req)
        resp = self.identity.handle(req)
        resp.headers["x-ms-request-id"] = str(uuid.uuid4())
        if req.headers.get("client-request-id"):
            resp.headers["client-request-id"] = req.headers["client-request-id"]
        if reset_after:
            raise ConnectionReset
        return resp

    def _identity_fault(self, kind: str, retry_after: float, req: SimRequest) -> SimResponse:
        if kind == "429":
            exc = EstsError(429, "temporarily_unavailable", 90055, "TenantThrottlingError - There are too many "
                            "incoming requests. Please try again later.")  # fmt: skip
        else:
            exc = EstsError(int(kind), "temporarily_unavailable", 90033,
                            "A transient error has occurred. Please try again.")  # fmt: skip
        resp = self.identity.error_response(exc, req)
        resp.headers["Retry-After"] = _seconds(retry_after)
        return resp

    # -- Graph --------------------------------------------------------------------------------------------------
    def _graph(self, req: SimRequest) -> SimResponse:
        request_id = str(uuid.uuid4())
        client_request_id = req.headers.get("client-request-id") or request_id
        try:
            caller = self._authenticate(req, GRAPH_RESOURCES, request_id, client_request_id)
        except InvalidToken as exc:
            resp = graph_error(401, "InvalidAuthenticationToken", exc.message, request_id, client_request_id)
            resp.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
            return self._graph_headers(resp, request_id, client_request_id)
        if caller.tenant is None:
            resp = graph_error(401, "InvalidAuthenticationToken", "Access token validation failure. Invalid tenant.",
                               request_id, client_request_id)  # fmt: skip
            return self._graph_headers(resp, request_id, client_request_id)
        if batching.is_batch(req) and req.method == "POST":
            resp = self._batch(req, caller)
        else:
            resp, reset_after = self._graph_call(req, caller.ctx, caller.tenant, in_batch=False)
            if reset_after:
                raise ConnectionReset
        return self._graph_headers(resp, request_id, client_request_id)

    def _authenticate(self, req: SimRequest, audiences: frozenset[str], request_id: str, crid: str) -> _Caller:
        claims = self.identity.validate_access_token(req.headers.get("authorization"), audiences)
        roles = claims.get("roles") or []
        ctx = CallContext(claims["tid"], claims["appid"], frozenset(roles), request_id, crid)
        return _Caller(ctx, self.directory.get_tenant(claims["tid"]))

    def _graph_call(
        self, req: SimRequest, ctx: CallContext, tenant: Tenant, in_batch: bool
    ) -> tuple[SimResponse, bool]:
        """Faults, throttling and the Graph call for one (possibly inner) request; returns (response, reset_after)."""
        rule = self.faults.take(req.method, req.path, None if not in_batch else RESPONSE_KINDS | {"reset_after"})
        reset_after = self._scripted_outcome(rule)
        if rule is not None and rule.kind in RESPONSE_KINDS:
            return self._graph_fault(rule.kind, rule.retry_after, ctx), False
        if rule is None and (kind := self.faults.random_fault()):
            return self._graph_fault(kind, 1.0, ctx), False
        decision = self._throttle(req, ctx, tenant)
        if not decision.allowed:
            resp = throttled(decision, ctx)
        else:
            resp = self._call(self.graph.handle, req, ctx)
            for key, value in decision.headers.items():
                resp.headers[key] = value
        return resp, reset_after

    def _throttle(self, req: SimRequest, ctx: CallContext, tenant: Tenant) -> Decision:
        users = tenant.user_count() if self.throttler.enabled else 0
        return self.throttler.check_graph(ctx.app_id, ctx.tenant_id, users, req.method, req.path, req.query)

    def _graph_fault(self, kind: str, retry_after: float, ctx: CallContext) -> SimResponse:
        if kind == "429":
            return throttled(Decision(False, retry_after, headers={"Retry-After": _seconds(retry_after)}), ctx)
        code, message = {
            "503": ("serviceNotAvailable", "The service is temporarily unavailable. Please retry after the delay."),
            "504": ("UnknownError", "The gateway timed out waiting for the service. Please retry after the delay."),
        }[kind]
        resp = graph_error(int(kind), code, message, ctx.request_id, ctx.client_request_id)
        resp.headers["Retry-After"] = _seconds(retry_after)
        return resp

    def _batch(self, req: SimRequest, caller: _Caller) -> SimResponse:
        ctx, tenant = caller.ctx, caller.tenant
        assert tenant is not None
        rule = self.faults.take(req.method, req.path)  # a fault aimed at the envelope itself
        reset_after = self._scripted_outcome(rule)
        if rule is not None and rule.kind in RESPONSE_KINDS:
            return self._graph_fault(rule.kind, rule.retry_after, ctx)
        try:
            items = batching.execution_order(batching.parse_batch(req.body))
        except batching.BatchError as exc:
            return graph_error(400, "BadRequest", str(exc), ctx.request_id, ctx.client_request_id)
        inner = [(item, batching.inner_request(item, req)) for item in items]
        # A reset before any item is applied must leave every item unapplied.
        if any(self.faults.take(r.method, r.path, frozenset({"reset_before"})) for _, r in inner):
            raise ConnectionReset
        results = self._run_items(inner, ctx, tenant)
        if reset_after or any(reset for _, reset in results.values()):
            raise ConnectionReset
        with self._rng_lock:
            entries = batching.shuffled([resp for resp, _ in results.values()], self._rng)
        return SimResponse(200, {"responses": entries}, Headers({"Content-Type": ODATA_JSON}))

    def _run_items(
        self, inner: list[tuple[batching.BatchItem, SimRequest]], ctx: CallContext, tenant: Tenant
    ) -> dict[str, tuple[dict, bool]]:
        results: dict[str, tuple[dict, bool]] = {}
        statuses: dict[str, int] = {}
        for item, sub in inner:
            item_ctx = CallContext(ctx.tenant_id, ctx.app_id, ctx.roles, str(uuid.uuid4()), ctx.client_request_id)
            failed = [d for d in item.depends_on if statuses.get(d.lower(), 500) >= 400]
            if failed:
                message = f"The request was not run because the request(s) it depends on failed: {', '.join(failed)}."
                resp = graph_error(424, "FailedDependency", message, item_ctx.request_id, item_ctx.client_request_id)
                reset = False
                self.stats.record("graph", 424)
            else:
                resp, reset = self._graph_call(sub, item_ctx, tenant, in_batch=True)
                self.stats.record("graph", resp.status, classify(sub.method, sub.path, sub.query).limit_class)
            statuses[item.id.lower()] = resp.status
            results[item.id.lower()] = (batching.item_response(item.id, self._graph_headers(resp, None, None)), reset)
        return results

    def _graph_headers(self, resp: SimResponse, request_id: str | None, client_request_id: str | None) -> SimResponse:
        headers = resp.headers
        if request_id:
            headers["request-id"] = request_id
            headers["client-request-id"] = client_request_id or request_id
            headers["x-ms-ags-diagnostic"] = AGS_DIAGNOSTIC
            headers["Strict-Transport-Security"] = "max-age=31536000"
        if "cache-control" not in headers:
            headers["Cache-Control"] = "no-cache"
        if isinstance(resp.body, (dict, list)) and "content-type" not in headers:
            headers["Content-Type"] = ODATA_JSON if resp.status < 400 else "application/json"
        if "content-type" in headers and "json" in headers["content-type"] and resp.status < 400:
            headers["OData-Version"] = "4.0"
        return resp

    # -- Bot connector ------------------------------------------------------------------------------------------
    def _bot(self, req: SimRequest) -> SimResponse:
        operation_id = uuid.uuid4().hex
        request_id = str(uuid.uuid4())
        try:
            caller = self._authenticate(req, BOT_RESOURCES, request_id, request_id)
        except InvalidToken:
            resp = SimResponse(401, {"message": "Authorization has been denied for this request."})
            return _bot_headers(resp, operation_id)
        sub = SimRequest(req.method, bot_path(req.path), req.raw_query, req.headers, req.body, req.base_url)
        rule = self.faults.take(req.method, req.path)
        reset_after = self._scripted_outcome(rule)
        kind = rule.kind if rule is not None and rule.kind in RESPONSE_KINDS else None
        if rule is None:
            kind = self.faults.random_fault()
        if kind:
            return _bot_headers(_bot_fault(kind, rule.retry_after if rule else 1.0), operation_id)
        decision = self.throttler.check_bot(caller.ctx.app_id, caller.ctx.tenant_id, sub.method, sub.path)
        if not decision.allowed:
            resp = SimResponse(429, {"error": {"code": "Throttled", "message": "Too many requests."}},
                               Headers(decision.headers))  # fmt: skip
        else:
            resp = self._call(self.bot.handle, sub, caller.ctx)
        if reset_after:
            raise ConnectionReset
        return _bot_headers(resp, operation_id)

    # -- shared -------------------------------------------------------------------------------------------------
    @staticmethod
    def _scripted_outcome(rule: FaultRule | None) -> bool:
        """Raise for ``reset_before``; return True for ``reset_after`` (the caller resets after applying)."""
        if rule is None:
            return False
        if rule.kind == "reset_before":
            log.info("fault: resetting the connection before handling (rule %s)", rule.path)
            raise ConnectionReset
        return rule.kind == "reset_after"

    @staticmethod
    def _call(
        handler: Callable[[SimRequest, CallContext], SimResponse], req: SimRequest, ctx: CallContext
    ) -> SimResponse:
        try:
            return handler(req, ctx)
        except Exception:  # a bug in an API module must still produce a Graph-shaped 500, and be logged loudly
            log.exception("unhandled error serving %s %s", req.method, req.path)
            return graph_error(500, "InternalServerError", "The simulator failed to process the request (see its log).",
                               ctx.request_id, ctx.client_request_id)  # fmt: skip

    # -- admin operations (used by admin.py and the test harness) ------------------------------------------------
    def configure(
        self,
        *,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
        fault_rate: float | None = None,
        throttle: str | None = None,
        throttle_scale: float | None = None,
    ) -> dict[str, Any]:
        """Change runtime settings (``None`` keeps a value); returns the current settings."""
        self.faults.configure(latency_ms=latency_ms, jitter_ms=jitter_ms, fault_rate=fault_rate)
        if throttle is not None or throttle_scale is not None:
            self.throttler.configure(throttle, throttle_scale)
        return self.settings()

    def settings(self) -> dict[str, Any]:
        return {"latency_ms": self.faults.latency_ms, "jitter_ms": self.faults.jitter_ms,
                "fault_rate": self.faults.fault_rate, "throttle": self.throttler.profile,
                "throttle_scale": self.throttler.scale}  # fmt: skip

    def set_app(
        self,
        app_id: str,
        *,
        roles: list[str] | set[str] | None = None,
        token_lifetime: int | None = None,
        expire_secrets: bool | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change an app registration, as an admin would in the portal. Tokens issued before keep their roles."""
        tenant, app = self._app(app_id)
        with tenant.lock:
            if roles is not None:
                app.roles = {str(r) for r in roles}
            if token_lifetime is not None:
                if int(token_lifetime) < 1:
                    raise ValueError("token_lifetime must be at least 1 second")
                app.token_lifetime = int(token_lifetime)
            if expire_secrets:
                past = datetime.now(timezone.utc) - timedelta(days=1)
                for secret in app.secrets:
                    secret.expires_at = past
            if enabled is not None:
                app.enabled = bool(enabled)
            return describe_app(app)

    def add_certificate(self, app_id: str, cert_pem: str) -> ClientCertificate:
        """Register a certificate (public part) as a credential of ``app_id``."""
        from cryptography import x509

        tenant, app = self._app(app_id)
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        sha1, sha256 = certificate_thumbprints(cert_pem)
        credential = ClientCertificate(cert_pem, sha1, sha256, cert.not_valid_after_utc)
        with tenant.lock:
            app.certificates.append(credential)
        return credential

    def journal(self, since: int = 0) -> list[dict]:
        """Write-journal entries with ``seq`` greater than ``since``."""
        return [e for e in self.directory.journal_since(max(0, since)) if e.get("seq", 0) > since]

    def _app(self, app_id: str):  # -> tuple[Tenant, AppRegistration]
        found = self.directory.find_app(app_id)
        if found is None:
            raise KeyError(f"no app registration with id {app_id!r} in any tenant")
        return found


# --- routing and response helpers ------------------------------------------------------------------------------------
def route_class(path: str) -> str:
    """``admin`` | ``identity`` | ``graph`` | ``bot`` | ``unknown`` for a request path."""
    if path.startswith("/_sim/") or path == "/_sim":
        return "admin"
    if path == "/v1.0" or path.startswith("/v1.0/"):
        return "graph"
    if is_identity_path(path):
        return "identity"
    segs = path.split("/")
    if len(segs) > 1 and segs[1] == "v3" or len(segs) > 2 and segs[2] == "v3":
        return "bot"
    return "unknown"


def bot_path(path: str) -> str:
    """``/teams/v3/conversations`` -> ``/v3/conversations`` (the service-url prefix is stripped)."""
    segs = path.split("/")
    return "/".join([""] + segs[2:]) if len(segs) > 2 and segs[2] == "v3" and segs[1] != "v3" else path


def graph_error(status: int, code: str, message: str, request_id: str, client_request_id: str) -> SimResponse:
    """A Graph error response (graph-facts §2.3)."""
    return SimResponse(status, {"error": {"code": code, "message": message, "innerError": {
        "date": _graph_date(), "request-id": request_id, "client-request-id": client_request_id}}},
        Headers({"Content-Type": "application/json"}))  # fmt: skip


def throttled(decision: Decision, ctx: CallContext) -> SimResponse:
    """The Graph 429 (graph-facts §5.1) with Retry-After and, for identity requests, the x-ms-throttle-* headers."""
    body = {"error": {"code": "TooManyRequests", "innerError": {
        "code": "429", "date": _graph_date(), "message": "Please retry after", "request-id": ctx.request_id,
        "client-request-id": ctx.client_request_id, "status": "429"}, "message": "Please retry again later."}}
    headers = Headers({"Content-Type": "application/json"})
    for key, value in decision.headers.items():
        headers[key] = value
    return SimResponse(429, body, headers)


def _bot_fault(kind: str, retry_after: float) -> SimResponse:
    if kind == "429":
        body = {"error": {"code": "Throttled", "message": "Too many requests."}}
    else:
        body = {"error": {"code": "ServiceError", "message": "The service is temporarily unavailable."}}
    return SimResponse(int(kind), body, Headers({"Retry-After": _seconds(retry_after)}))


def _bot_headers(resp: SimResponse, operation_id: str) -> SimResponse:
    resp.headers["X-Correlating-OperationId"] = operation_id
    if isinstance(resp.body, (dict, list)) and "content-type" not in resp.headers:
        resp.headers["Content-Type"] = BOT_JSON
    return resp


def _admin_forbidden() -> SimResponse:
    return SimResponse(403, {"error": {"code": "Forbidden", "message": "The /_sim admin endpoints answer loopback "
                                       "clients only."}}, Headers({"Content-Type": "application/json"}))  # fmt: skip


def describe_app(app: Any) -> dict[str, Any]:
    """An app registration without its secrets (for admin answers and logs)."""
    return {"app_id": app.app_id, "display_name": app.display_name, "tenant_id": app.tenant_id,
            "roles": sorted(app.roles), "enabled": app.enabled, "bot": app.bot, "token_lifetime": app.token_lifetime,
            "secrets": [{"key_id": s.key_id, "expires_at": s.expires_at.isoformat()} for s in app.secrets],
            "certificates": [{"thumbprint": c.thumbprint_sha1, "expires_at": c.expires_at.isoformat()}
                             for c in app.certificates]}  # fmt: skip


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _seconds(value: float) -> str:
    return format_retry_after(round(float(value), 3))


def _graph_date() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")

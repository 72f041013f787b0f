"""``/_sim/...`` admin endpoints: inspect and steer a running simulator (no auth; the simulator answers them for
loopback clients only).

=======  ===========================================  ======================================================
method   path                                         what
=======  ===========================================  ======================================================
GET      /_sim/health                                 ``{"status": "ok", "tenants", "uptime_s"}``
GET      /_sim/tenants                                tenants: id, display name, domains, object counts
GET      /_sim/tenants/{tid}/state/{collection}       ``Tenant.snapshot(collection)`` as ``{"value": [...]}``
POST     /_sim/tenants/{tid}/expire-delta             ``{"mode": "syncStateNotFound" | "reset410"}``
GET      /_sim/journal?since=N                        write-journal entries with ``seq`` > N
GET      /_sim/stats                                  request statistics (``?timestamps=false`` to omit them)
POST     /_sim/stats/reset                            start the statistics afresh
POST     /_sim/apps/{app_id}                          ``{"roles", "token_lifetime", "expire_secrets", "enabled"}``
POST     /_sim/apps/{app_id}/certificates             ``{"pem": "<certificate PEM>"}`` registers a certificate
GET      /_sim/faults                                 pending scripted faults
POST     /_sim/faults                                 one entry or a list: ``{"kind", "times", "path", ...}``
DELETE   /_sim/faults                                 drop every pending scripted fault
GET      /_sim/config                                 latency / fault rate / throttle settings
POST     /_sim/config                                 ``{"latency_ms", "jitter_ms", "fault_rate", "throttle",
                                                      "throttle_scale"}``
GET      /_sim/limits                                 the throttling limits table at the current scale
=======  ===========================================  ======================================================
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from teamsops.simulator.http import Headers, SimRequest, SimResponse
from teamsops.simulator.throttling import limits_table

if TYPE_CHECKING:
    from teamsops.simulator.app import Simulator

log = logging.getLogger(__name__)

# Collections counted in /_sim/tenants (each is a Tenant.snapshot name).
COUNTED_COLLECTIONS = ("users", "groups", "team_members", "channels", "installed_apps", "role_assignments",
                       "deleted_users")  # fmt: skip


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AdminApi:
    """Routes ``/_sim/...`` requests to operations on a :class:`~teamsops.simulator.app.Simulator`."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            ("GET", re.compile(r"^/_sim/health$"), self._health),
            ("GET", re.compile(r"^/_sim/tenants$"), self._tenants),
            ("GET", re.compile(r"^/_sim/tenants/(?P<tid>[^/]+)/state/(?P<collection>[^/]+)$"), self._state),
            ("POST", re.compile(r"^/_sim/tenants/(?P<tid>[^/]+)/expire-delta$"), self._expire_delta),
            ("GET", re.compile(r"^/_sim/journal$"), self._journal),
            ("GET", re.compile(r"^/_sim/stats$"), self._stats),
            ("POST", re.compile(r"^/_sim/stats/reset$"), self._reset_stats),
            ("POST", re.compile(r"^/_sim/apps/(?P<app_id>[^/]+)$"), self._set_app),
            ("POST", re.compile(r"^/_sim/apps/(?P<app_id>[^/]+)/certificates$"), self._add_certificate),
            ("GET", re.compile(r"^/_sim/faults$"), self._faults),
            ("POST", re.compile(r"^/_sim/faults$"), self._inject),
            ("DELETE", re.compile(r"^/_sim/faults$"), self._clear_faults),
            ("GET", re.compile(r"^/_sim/config$"), self._config),
            ("POST", re.compile(r"^/_sim/config$"), self._configure),
            ("GET", re.compile(r"^/_sim/limits$"), self._limits),
        ]

    def handle(self, req: SimRequest) -> SimResponse:
        path = req.path.rstrip("/")
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if not match:
                continue
            if method != req.method:
                allowed.append(method)
                continue
            try:
                status, body = handler(req, **match.groupdict())
            except AdminError as exc:
                return _json(exc.status, {"error": {"code": "BadRequest" if exc.status == 400 else "NotFound",
                                                    "message": exc.message}})  # fmt: skip
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": {"code": "BadRequest", "message": str(exc)}})
            return _json(status, body)
        if allowed:
            message = f"{req.method} is not allowed on {path}; use {', '.join(allowed)}."
            return _json(405, {"error": {"code": "MethodNotAllowed", "message": message}})
        return _json(404, {"error": {"code": "NotFound", "message": f"Unknown admin endpoint {path}. See "
                                     "teamsops.simulator.admin for the list."}})  # fmt: skip

    # -- handlers: each returns (status, body) -------------------------------------------------------------------
    def _health(self, req: SimRequest) -> tuple[int, Any]:
        return 200, {"status": "ok", "tenants": len(self.sim.directory.tenants),
                     "uptime_s": round(time.time() - self.sim.started_at, 3)}  # fmt: skip

    def _tenants(self, req: SimRequest) -> tuple[int, Any]:
        rows = []
        for tenant in list(self.sim.directory.tenants.values()):
            domains = list(getattr(tenant, "verified_domains", None) or [tenant.initial_domain])
            counts = {"users": tenant.user_count()}
            for name in COUNTED_COLLECTIONS[1:]:
                counts[name] = len(tenant.snapshot(name))
            rows.append({"id": tenant.id, "display_name": tenant.display_name, "initial_domain": tenant.initial_domain,
                         "domains": domains, "counts": counts, "apps": sorted(tenant.apps)})  # fmt: skip
        return 200, {"value": rows}

    def _tenant(self, tid: str) -> Any:
        tenant = self.sim.directory.get_tenant(tid)
        if tenant is None:
            raise AdminError(404, f"No tenant {tid!r} in the simulator.")
        return tenant

    def _state(self, req: SimRequest, tid: str, collection: str) -> tuple[int, Any]:
        tenant = self._tenant(tid)
        try:
            rows = tenant.snapshot(collection)
        except KeyError as exc:
            raise AdminError(400, str(exc.args[0]) if exc.args else f"Unknown collection {collection!r}.") from None
        return 200, {"value": rows}

    def _expire_delta(self, req: SimRequest, tid: str) -> tuple[int, Any]:
        tenant = self._tenant(tid)
        mode = (_body(req).get("mode") or "syncStateNotFound") if req.body else "syncStateNotFound"
        self.sim.directory.expire_delta_tokens(tenant.id, mode)  # ValueError (-> 400) for an unknown mode
        return 200, {"tenant_id": tenant.id, "mode": mode}

    def _journal(self, req: SimRequest) -> tuple[int, Any]:
        since = req.query.get("since", "0")
        if not since.lstrip("-").isdigit():
            raise AdminError(400, "since must be an integer journal sequence number")
        return 200, {"value": self.sim.journal(int(since))}

    def _stats(self, req: SimRequest) -> tuple[int, Any]:
        return 200, self.sim.stats.snapshot(timestamps=req.query.get("timestamps", "true").lower() != "false")

    def _reset_stats(self, req: SimRequest) -> tuple[int, Any]:
        self.sim.stats.reset()
        return 200, {"reset": True}

    def _set_app(self, req: SimRequest, app_id: str) -> tuple[int, Any]:
        body = _body(req)
        unknown = set(body) - {"roles", "token_lifetime", "expire_secrets", "enabled"}
        if unknown:
            raise AdminError(400, f"Unknown app setting(s): {', '.join(sorted(unknown))}.")
        try:
            return 200, self.sim.set_app(app_id, **body)
        except KeyError as exc:
            raise AdminError(404, str(exc.args[0])) from None

    def _add_certificate(self, req: SimRequest, app_id: str) -> tuple[int, Any]:
        pem = _body(req).get("pem")
        if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
            raise AdminError(400, "Send {\"pem\": \"-----BEGIN CERTIFICATE-----...\"} (the public certificate).")
        try:
            cert = self.sim.add_certificate(app_id, pem)
        except KeyError as exc:
            raise AdminError(404, str(exc.args[0])) from None
        return 201, {"thumbprint": cert.thumbprint_sha1, "thumbprint_sha256": cert.thumbprint_sha256,
                     "expires_at": cert.expires_at.isoformat()}  # fmt: skip

    def _faults(self, req: SimRequest) -> tuple[int, Any]:
        return 200, {"value": self.sim.faults.pending()}

    def _inject(self, req: SimRequest) -> tuple[int, Any]:
        body = _body(req, allow_list=True)
        entries = body if isinstance(body, list) else [body]
        rules = []
        for entry in entries:
            if not isinstance(entry, dict) or "kind" not in entry:
                raise AdminError(400, "Each fault needs at least a 'kind' (429, 503, 504, reset_before, reset_after).")
            unknown = set(entry) - {"kind", "times", "path", "method", "retry_after"}
            if unknown:
                raise AdminError(400, f"Unknown fault field(s): {', '.join(sorted(unknown))}.")
            rules.append(self.sim.faults.inject(**entry).describe())
        return 201, {"value": rules}

    def _clear_faults(self, req: SimRequest) -> tuple[int, Any]:
        self.sim.faults.clear()
        return 200, {"value": []}

    def _config(self, req: SimRequest) -> tuple[int, Any]:
        return 200, self.sim.settings()

    def _configure(self, req: SimRequest) -> tuple[int, Any]:
        body = _body(req)
        unknown = set(body) - {"latency_ms", "jitter_ms", "fault_rate", "throttle", "throttle_scale"}
        if unknown:
            raise AdminError(400, f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        return 200, self.sim.configure(**body)

    def _limits(self, req: SimRequest) -> tuple[int, Any]:
        return 200, {"profile": self.sim.throttler.profile, "scale": self.sim.throttler.scale,
                     "value": limits_table(self.sim.throttler.scale)}  # fmt: skip


def _body(req: SimRequest, allow_list: bool = False) -> Any:
    try:
        body = req.json()
    except ValueError:
        raise AdminError(400, "The body must be JSON.") from None
    if body is None:
        return {}
    if isinstance(body, dict) or (allow_list and isinstance(body, list)):
        return body
    raise AdminError(400, "The body must be a JSON object.")


def _json(status: int, body: Any) -> SimResponse:
    return SimResponse(status, json.dumps(body, default=str).encode(), Headers({"Content-Type": "application/json"}))

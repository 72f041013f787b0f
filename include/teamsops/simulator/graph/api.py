"""``GraphApi``: match a ``/v1.0/...`` request to its route, run it against the caller's tenant, and turn failures
into Graph error bodies. Authentication, throttling, fault injection, response headers and ``$batch`` are the
server's job (it calls :meth:`GraphApi.handle` once per request, and once per ``$batch`` item)."""

from __future__ import annotations

import logging

from teamsops.simulator.graph.base import DIRECTORY, Call, GraphFailure, error_response
from teamsops.simulator.graph.routes import match, split_path
from teamsops.simulator.http import CallContext, SimRequest, SimResponse
from teamsops.simulator.model import Directory, RuleViolation

log = logging.getLogger(__name__)


class GraphApi:
    """The Graph v1.0 surface of the simulated cloud.

    :param directory: the simulated tenants; a call only ever sees the tenant of its token (``ctx.tenant_id``).
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def handle(self, req: SimRequest, ctx: CallContext) -> SimResponse:
        """Serve one request whose path starts with ``/v1.0/``."""
        try:
            return self._dispatch(req, ctx)
        except GraphFailure as failure:
            return error_response(failure.status, failure.code, failure.message, ctx, failure.headers)
        except RuleViolation as violation:  # a model rule the route did not translate: directory codes
            failure = GraphFailure.from_rule(violation, DIRECTORY)
            return error_response(failure.status, failure.code, failure.message, ctx)

    def _dispatch(self, req: SimRequest, ctx: CallContext) -> SimResponse:
        if not req.path.startswith("/v1.0/") and req.path != "/v1.0":
            raise GraphFailure(
                400, "BadRequest", f"Invalid version: the path must start with /v1.0/, not {req.path!r}."
            )
        tenant = self.directory.get_tenant(ctx.tenant_id)
        if tenant is None:  # the server validated the token, so this means the tenant was removed
            raise GraphFailure(401, "InvalidAuthenticationToken", "The token's tenant does not exist.")
        route, params = match(req.method.upper(), split_path(req.path))
        call = Call(req=req, ctx=ctx, tenant=tenant, directory=self.directory, params=params, workload=route.workload)
        log.debug("graph %s %s -> %s", req.method, req.path, route.handler.__name__)
        with tenant.lock:
            return route.handler(call)

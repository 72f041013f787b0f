"""The identity platform (``login.microsoftonline.com``) of the simulated cloud (graph-facts §1, §8.1).

Routes (paths relative to the simulator's base URL, which plays the part of the login host):

* ``GET /common/discovery/instance`` (also ``/{tenant}/discovery/instance``): instance discovery for MSAL.
* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: tenant discovery (endpoints point back at the simulator
  and carry the tenant GUID even when asked by domain; 400 ``invalid_tenant`` AADSTS90002 for unknown tenants).
* ``GET /{tenant}/discovery/v2.0/keys`` (and v1 ``/discovery/keys``): the JWKS of the token-signing key.
* ``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant with a client secret (form field or HTTP
  Basic) or a certificate assertion (``private_key_jwt``: RS256 + ``x5t`` or PS256 + ``x5t#S256``). Errors carry the
  real ESTS body (``error``, ``error_description`` "AADSTS<code>: ...\\r\\nTrace ID: ...", ``error_codes``, ...).

Issued tokens are RS256 JWTs shaped like Entra v1.0 app-only tokens (``aud``, ``iss`` ``https://sts.windows.net/
{tid}/``, ``tid``, ``appid``, ``azp``, ``oid``, ``roles``, ``idtyp`` "app", ``ver`` "1.0"). The server calls
:meth:`IdentityPlatform.validate_access_token` to authenticate Graph and Bot connector requests.

This module reads the directory (apps, secrets, certificates) but never changes it.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
from cryptography import x509

from teamsops.simulator.http import Headers, SimRequest, SimResponse
from teamsops.simulator.model import AppRegistration, ClientCertificate, Directory, Tenant
from teamsops.simulator.tls import SigningKey, b64url

log = logging.getLogger(__name__)

# The Bot Framework's own tenant (botframework.com): multi-tenant bots get their connector tokens from it.
BOTFRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"
BOTFRAMEWORK_DOMAIN = "botframework.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Resource identifiers that name Microsoft Graph (one per national cloud, plus the app id form). The simulator
# serves a single Graph, so a token for any of them is accepted by it.
GRAPH_RESOURCES = frozenset({
    "https://graph.microsoft.com", "https://graph.microsoft.us", "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn", GRAPH_APP_ID,
})  # fmt: skip
BOT_RESOURCES = frozenset({
    "https://api.botframework.com", "https://api.botframework.us", "https://api.botframework.azure.cn",
})  # fmt: skip
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MULTI_TENANT_ALIASES = ("common", "organizations", "consumers")
_ASSERTION_SKEW_S = 300  # ESTS tolerates 5 minutes of clock skew on client assertions
_CERT_DOC = "https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials"

_INSTANCE = re.compile(r"^/(?P<tenant>[^/]+)/discovery/instance/?$")
_OPENID = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration/?$")
_KEYS = re.compile(r"^/(?P<tenant>[^/]+)/discovery(?:/v2\.0)?/keys/?$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token/?$")


class InvalidToken(Exception):
    """An access token was refused. ``reason`` is one of: empty, malformed, expired, signature, audience."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EstsError(Exception):
    """An identity-platform error, rendered with the real ESTS error body."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description


# AADSTS code -> (HTTP status, OAuth ``error``, description template). Texts follow the real ESTS messages
# (graph-facts §1.3 and the public error-code reference); ``{}`` fields are filled per request.
_ERRORS: dict[int, tuple[int, str, str]] = {
    50027: (400, "invalid_request", "JWT token is invalid or malformed."),
    50049: (400, "invalid_instance", "Unknown or invalid instance."),
    70003: (400, "unsupported_grant_type", "The app requested an unsupported grant type '{grant}'."),
    70011: (400, "invalid_scope",
            "The provided value for the input parameter 'scope' isn't valid. The scope {scope} isn't valid."),
    90002: (400, "invalid_tenant",
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
            "correct cloud. Check with your subscription administrator, this may happen if there are no active "
            "subscriptions for the tenant."),
    90014: (400, "invalid_request",
            "The required field 'client_assertion_type' has an unsupported value '{value}'; use '{expected}'."),
    90027: (404, "invalid_request", "The path '{path}' is not an identity platform endpoint."),
    500011: (400, "invalid_resource",
             "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if "
             "the application has not been installed by the administrator of the tenant or consented to by any user "
             "in the tenant. You might have sent your authentication request to the wrong tenant."),
    700016: (400, "unauthorized_client",
             "Application with identifier '{app_id}' was not found in the directory '{tenant}'. This can happen if the "
             "application has not been installed by the administrator of the tenant or consented to by any user in "
             "the tenant. You may have sent your authentication request to the wrong tenant."),
    700021: (400, "invalid_client",
             "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation "
             f"at {_CERT_DOC} ."),
    700022: (400, "invalid_scope",
             "The provided value for the input parameter scope is not valid because it contains more than one "
             "resource. Scope {scope} is not valid."),
    700023: (400, "invalid_client",
             f"Client assertion audience claim does not match Realm issuer. Review the documentation at {_CERT_DOC} ."),
    700024: (400, "invalid_client",
             "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion "
             f"{{exp}}. Review the documentation at {_CERT_DOC} ."),
    700027: (401, "invalid_client",
             "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: "
             "'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured "
             "keys for app Id '{app_id}'. Review the documentation at "
             "https://docs.microsoft.com/en-us/graph/deployments if you are not using the same cloud as the app is "
             "registered in.]"),
    900144: (400, "invalid_request", "The request body must contain the following parameter: '{name}'."),
    900561: (400, "invalid_request", "The endpoint only accepts {allowed} requests. Received a {method} request."),
    1002012: (400, "invalid_scope",
              "The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
              "with /.default suffixed to the resource identifier (application ID URI)."),
    7000112: (400, "unauthorized_client", "Application '{app_id}'({name}) is disabled."),
    7000215: (401, "invalid_client",
              "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
              "not the client secret ID, for a secret added to app '{app_id}'."),
    7000218: (401, "invalid_client",
              "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
    7000222: (401, "invalid_client",
              "The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal to create new "
              "keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added "
              "security: https://aka.ms/certCreds."),
    9001023: (400, "invalid_request",
              "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations "
              "or tenant-specific endpoint."),
}  # fmt: skip


def ests_error(code: int, **fields: Any) -> EstsError:
    """The :class:`EstsError` for AADSTS ``code`` with its message template filled from ``fields``."""
    status, error, template = _ERRORS[code]
    return EstsError(status, error, code, template.format(**fields))


@dataclass(frozen=True)
class _Issuer:
    """The tenant a token request is addressed to (a directory tenant, or the Bot Framework tenant)."""

    tenant_id: str
    name: str
    tenant: Tenant | None  # None for the Bot Framework tenant


def is_identity_path(path: str) -> bool:
    """True when ``path`` is one of the identity platform's routes."""
    return any(p.match(path) for p in (_INSTANCE, _OPENID, _KEYS, _TOKEN))


class IdentityPlatform:
    """Token issuance and validation for every tenant of ``directory``."""

    def __init__(self, directory: Directory, signing_key: SigningKey, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.signing_key = signing_key
        self._clock = clock
        self._public_key = signing_key.private_key.public_key()

    # -- routing ------------------------------------------------------------------------------------------------
    def handle(self, req: SimRequest) -> SimResponse:
        """Serve one identity-platform request (``is_identity_path(req.path)`` must be true)."""
        try:
            return self._route(req)
        except EstsError as exc:
            return self.error_response(exc, req)

    def _route(self, req: SimRequest) -> SimResponse:
        if m := _TOKEN.match(req.path):
            return self._token(req, unquote_plus(m["tenant"]))
        if req.method not in ("GET", "HEAD"):
            raise ests_error(900561, allowed="GET", method=req.method)
        if m := _OPENID.match(req.path):
            return self._openid_configuration(req, m["tenant"])
        if m := _KEYS.match(req.path):
            return _json(200, {"keys": [self.signing_key.jwk()]}, cache="max-age=86400, private")
        if _INSTANCE.match(req.path):
            return self._instance_discovery(req)
        raise ests_error(90027, path=req.path)

    # -- discovery ----------------------------------------------------------------------------------------------
    def _instance_discovery(self, req: SimRequest) -> SimResponse:
        query = req.query
        endpoint = query.get("authorization_endpoint")
        if not endpoint:
            raise ests_error(900144, name="authorization_endpoint")
        here = urlsplit(req.base_url).netloc.lower()
        parts = urlsplit(endpoint)
        segments = [s for s in parts.path.split("/") if s]
        # Compare host names only: MSAL Python builds this URL from the authority's hostname, dropping the port.
        if (parts.hostname or "").lower() != (urlsplit(req.base_url).hostname or "").lower() or not segments:
            raise ests_error(50049)
        scheme = urlsplit(req.base_url).scheme
        return _json(200, {
            "tenant_discovery_endpoint": f"{scheme}://{here}/{segments[0]}/v2.0/.well-known/openid-configuration",
            "api-version": query.get("api-version", "1.1"),
            "metadata": [{"preferred_network": here, "preferred_cache": here, "aliases": [here]}],
        })  # fmt: skip

    def _openid_configuration(self, req: SimRequest, tenant_ref: str) -> SimResponse:
        if tenant_ref.lower() in _MULTI_TENANT_ALIASES:
            tid, token_tenant = "{tenantid}", tenant_ref.lower()
        else:
            tid = self._resolve_tenant(tenant_ref).tenant_id
            token_tenant = tid
        base = req.base_url.rstrip("/")
        host = urlsplit(base).netloc
        return _json(200, {
            "token_endpoint": f"{base}/{token_tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{token_tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{token_tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{token_tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{token_tenant}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": f"{base}/{token_tenant}/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": host,
            "rbac_url": "https://pas.windows.net",
        }, cache="max-age=86400, private")  # fmt: skip

    # -- token endpoint -----------------------------------------------------------------------------------------
    def _token(self, req: SimRequest, tenant_ref: str) -> SimResponse:
        if req.method != "POST":
            raise ests_error(900561, allowed="POST, OPTIONS", method=req.method)
        if tenant_ref.lower() in _MULTI_TENANT_ALIASES:
            issuer = None
        else:
            issuer = self._resolve_tenant(tenant_ref)
        form = _form(req)
        grant = _required(form, "grant_type")
        if grant != "client_credentials":
            raise ests_error(70003, grant=grant)
        if issuer is None:
            raise ests_error(9001023)
        basic_id, basic_secret = _basic_auth(req.headers.get("authorization", ""))
        client_id = form.get("client_id") or basic_id
        if not client_id:
            _required(form, "client_id")
        scope = _required(form, "scope")
        app = self._find_app(issuer, client_id)
        if not app.enabled:
            raise ests_error(7000112, app_id=app.app_id, name=app.display_name)
        acr = self._authenticate(req, issuer, app, form, basic_secret, tenant_ref)
        resource = self._resource(scope, issuer, app)
        return self._issue(issuer, app, resource, acr)

    def _resolve_tenant(self, ref: str) -> _Issuer:
        if ref.lower() in (BOTFRAMEWORK_DOMAIN, BOTFRAMEWORK_TENANT_ID) and self.directory.get_tenant(ref) is None:
            return _Issuer(BOTFRAMEWORK_TENANT_ID, BOTFRAMEWORK_DOMAIN, None)
        tenant = self.directory.get_tenant(ref)
        if tenant is None:
            raise ests_error(90002, tenant=ref)
        return _Issuer(tenant.id, tenant.display_name, tenant)

    def _find_app(self, issuer: _Issuer, client_id: str) -> AppRegistration:
        app: AppRegistration | None = None
        if issuer.tenant is not None:
            app = issuer.tenant.apps.get(client_id)
        else:  # the Bot Framework tenant knows every (multi-tenant) bot
            found = self.directory.find_app(client_id)
            app = found[1] if found and found[1].bot else None
        if app is None:
            raise ests_error(700016, app_id=client_id, tenant=issuer.name)
        return app

    def _authenticate(
        self, req: SimRequest, issuer: _Issuer, app: AppRegistration, form: dict[str, str], basic_secret: str | None,
        tenant_ref: str,
    ) -> str:
        """Check the client credential; returns ``appidacr`` ("1" secret, "2" certificate)."""
        assertion = form.get("client_assertion")
        if assertion:
            self._check_assertion(req, issuer, app, form, assertion, tenant_ref)
            return "2"
        secret = form.get("client_secret") or basic_secret
        if not secret:
            raise ests_error(7000218)
        matched = [s for s in app.secrets if hmac.compare_digest(s.value.encode(), secret.encode())]
        if not matched:
            raise ests_error(7000215, app_id=app.app_id)
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        if all(s.expires_at <= now for s in matched):
            raise ests_error(7000222, app_id=app.app_id)
        return "1"

    def _check_assertion(
        self, req: SimRequest, issuer: _Issuer, app: AppRegistration, form: dict[str, str], assertion: str,
        tenant_ref: str,
    ) -> None:
        kind = form.get("client_assertion_type")
        if not kind:
            _required(form, "client_assertion_type")
        if kind != ASSERTION_TYPE:
            raise ests_error(90014, value=kind, expected=ASSERTION_TYPE)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise ests_error(50027) from None
        cert, thumb = _certificate_for(app, header)
        if cert is None:
            raise _bad_signature(app, "The key was not found.", thumb)
        now = self._clock()
        if cert.expires_at.timestamp() <= now:
            raise _bad_signature(app, "The key used is expired.", thumb)
        claims = self._verify_assertion(app, assertion, header, cert, thumb)
        if claims.get("iss") != app.app_id or claims.get("sub") != app.app_id:
            raise ests_error(700021)
        if not _audience_ok(claims.get("aud"), req.base_url, issuer.tenant_id, tenant_ref):
            raise ests_error(700023)
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if not isinstance(exp, (int, float)) or exp + _ASSERTION_SKEW_S < now or nbf - _ASSERTION_SKEW_S > now:
            raise ests_error(700024, now=_ests_time(now), exp=exp)

    @staticmethod
    def _verify_assertion(
        app: AppRegistration, assertion: str, header: dict, cert: ClientCertificate, thumb: str
    ) -> dict[str, Any]:
        alg = header.get("alg")
        if alg not in ("RS256", "PS256"):
            raise _bad_signature(app, f"The signing algorithm '{alg}' is not supported (use RS256 or PS256).", thumb)
        public_key = x509.load_pem_x509_certificate(cert.pem.encode()).public_key()
        try:
            return jwt.decode(assertion, public_key, algorithms=[alg], options={  # type: ignore[arg-type]
                "verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False})  # fmt: skip
        except jwt.InvalidSignatureError:
            reason = "The provided signature value did not match the expected signature value."
            raise _bad_signature(app, reason, thumb) from None
        except jwt.PyJWTError:
            raise ests_error(50027) from None

    def _resource(self, scope: str, issuer: _Issuer, app: AppRegistration) -> str:
        """The single resource a ``<resource>/.default`` scope names (AADSTS errors otherwise)."""
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access", "email")]
        if not scopes:
            raise ests_error(70011, scope=scope)
        resources = {_resource_of(s) for s in scopes}
        if len(resources) > 1:
            raise ests_error(700022, scope=scope)
        if not scopes[0].endswith("/.default"):
            raise ests_error(1002012, scope=scope)
        resource = resources.pop()
        known = {r.lower(): r for r in GRAPH_RESOURCES | BOT_RESOURCES}
        canonical = known.get(resource.lower())
        if canonical is None:
            raise _resource_not_found(resource, issuer)
        wants_bot = canonical in BOT_RESOURCES
        # Only bots get connector tokens; the Bot Framework tenant issues nothing but connector tokens.
        if (wants_bot and not app.bot) or (issuer.tenant is None and not wants_bot):
            raise _resource_not_found(resource, issuer)
        return canonical

    def _issue(self, issuer: _Issuer, app: AppRegistration, resource: str, acr: str) -> SimResponse:
        now = int(self._clock())
        lifetime = int(app.token_lifetime)
        tid = issuer.tenant_id
        claims: dict[str, Any] = {
            "aud": resource, "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now, "exp": now + lifetime,
            "aio": b64url(uuid.uuid4().bytes), "app_displayname": app.display_name, "appid": app.app_id,
            "appidacr": acr, "azp": app.app_id, "azpacr": acr, "idp": f"https://sts.windows.net/{tid}/",
            "idtyp": "app", "oid": app.service_principal_id, "rh": "0.simulated.", "sub": app.service_principal_id,
            "tid": tid, "uti": b64url(uuid.uuid4().bytes)[:22], "ver": "1.0",
        }  # fmt: skip
        roles = sorted(app.roles) if resource in GRAPH_RESOURCES else []
        if roles:  # real tokens omit the claim when no application permission is granted
            claims["roles"] = roles
        kid = self.signing_key.kid
        token = jwt.encode(claims, self.signing_key.private_pem(), algorithm="RS256",
                           headers={"typ": "JWT", "x5t": kid, "kid": kid})  # fmt: skip
        log.info("issued a %s token to app %s in tenant %s (%d roles, %d s)",
                 "bot" if resource in BOT_RESOURCES else "Graph", app.app_id, tid, len(roles), lifetime)  # fmt: skip
        body = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
        return _json(200, body, cache="no-store, no-cache", extra={"Pragma": "no-cache", "Expires": "-1"})

    # -- token validation (used by the server for Graph and Bot requests) ----------------------------------------
    def validate_access_token(self, authorization: str | None, audiences: Iterable[str]) -> dict[str, Any]:
        """Validate a ``Bearer`` Authorization header value; returns the claims or raises :class:`InvalidToken`."""
        token = _bearer(authorization)
        if not token:
            raise InvalidToken("empty", "Access token is empty.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed", "CompactToken parsing failed with error code: 80049217") from None
        if header.get("alg") != "RS256":
            raise InvalidToken("signature", "Access token validation failure. Invalid signature algorithm.")
        try:
            # No leeway: a token is refused the second it expires, so clients' refresh logic is exercised exactly.
            claims = jwt.decode(token, self._public_key, algorithms=["RS256"], audience=list(audiences), leeway=0,
                                options={"require": ["exp", "nbf", "iat", "aud", "iss", "tid", "appid"]})  # fmt: skip
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise InvalidToken("expired", "Access token has expired or is not yet valid.") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("audience", "Access token validation failure. Invalid audience.") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("signature", "Access token validation failure. Invalid signature.") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed", "Access token validation failure.") from None
        if claims["iss"] != f"https://sts.windows.net/{claims['tid']}/":
            raise InvalidToken("signature", "Access token validation failure. Invalid issuer.")
        return claims

    # -- error rendering ----------------------------------------------------------------------------------------
    def error_response(self, exc: EstsError, req: SimRequest) -> SimResponse:
        """The real ESTS error body: error, error_description with trace/correlation/timestamp lines, codes..."""
        trace_id = str(uuid.uuid4())
        correlation_id = req.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = _ests_time(self._clock())
        body = {
            "error": exc.error,
            "error_description": f"AADSTS{exc.code}: {exc.description}\r\nTrace ID: {trace_id}\r\n"
                                 f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}",
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={exc.code}",
        }  # fmt: skip
        log.info("identity error AADSTS%d (%s) for %s %s", exc.code, exc.error, req.method, req.path)
        return _json(exc.status, body, cache="no-store, no-cache", extra={"Pragma": "no-cache", "Expires": "-1"})


# --- helpers --------------------------------------------------------------------------------------------------------
def _json(
    status: int, body: Any, cache: str = "no-store, no-cache", extra: dict[str, str] | None = None
) -> SimResponse:
    headers = Headers({"Content-Type": "application/json; charset=utf-8", "Cache-Control": cache,
                       "x-ms-ests-server": "2.1.0 - simulator", "Access-Control-Allow-Origin": "*"})  # fmt: skip
    for key, value in (extra or {}).items():
        headers[key] = value
    return SimResponse(status, json.dumps(body, separators=(",", ":")).encode(), headers)


def _form(req: SimRequest) -> dict[str, str]:
    """The form fields of a token request (unknown fields are kept and ignored; MSAL adds many)."""
    content_type = req.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise ests_error(900144, name=name)
    return value


def _basic_auth(header: str) -> tuple[str | None, str | None]:
    """client_id / secret from ``Authorization: Basic`` (each part form-urlencoded first, RFC 6749 §2.3.1)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None, None
    return unquote_plus(user), unquote_plus(password)


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _resource_of(scope: str) -> str:
    """``https://graph.microsoft.com/.default`` -> ``https://graph.microsoft.com`` (also ``.../User.Read``)."""
    if "/" not in scope.replace("://", ""):
        return scope
    return scope.rsplit("/", 1)[0].rstrip("/")


def _resource_not_found(resource: str, issuer: _Issuer) -> EstsError:
    return ests_error(500011, resource=resource, tenant=issuer.name)


def _certificate_for(app: AppRegistration, header: dict) -> tuple[ClientCertificate | None, str]:
    """The registered certificate named by the assertion's ``x5t#S256`` or ``x5t`` header, and the thumbprint sent."""
    sha256, sha1 = header.get("x5t#S256"), header.get("x5t")
    if sha256:
        thumb = _hex_of(sha256)
        return next((c for c in app.certificates if c.thumbprint_sha256.lower() == thumb.lower()), None), thumb
    if sha1:
        thumb = _hex_of(sha1).upper()
        return next((c for c in app.certificates if c.thumbprint_sha1.upper() == thumb), None), thumb
    return None, ""


def _hex_of(b64: str) -> str:
    try:
        return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    except ValueError:
        return ""


def _bad_signature(app: AppRegistration, reason: str, thumb: str) -> EstsError:
    return ests_error(700027, reason=reason, thumbprint=thumb.upper(), app_id=app.app_id)


def _audience_ok(aud: Any, base_url: str, tenant_id: str, tenant_ref: str) -> bool:
    """ESTS accepts the token endpoint (v2 or v1, by tenant id or the name used) or the issuer as audience."""
    base = base_url.rstrip("/")
    accepted = set()
    for tenant in {tenant_id, tenant_ref}:
        accepted |= {f"{base}/{tenant}/oauth2/v2.0/token", f"{base}/{tenant}/oauth2/token", f"{base}/{tenant}/v2.0",
                     f"{base}/{tenant}/"}  # fmt: skip
    accepted = {a.lower() for a in accepted}
    values = aud if isinstance(aud, list) else [aud]
    return any(isinstance(v, str) and v.lower() in accepted for v in values)


def _ests_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")

"""Validated, immutable settings of one App Registration connection (:class:`GraphSettings`).

``GraphSettings.from_mapping`` takes the keys of the Airflow ``msteams`` connection contract (the hook maps
login -> ``client_id``, password -> ``client_secret`` and passes the extras through) and either returns settings that
are complete and consistent, or raises :class:`GraphConfigError` with ONE sentence naming the field and the fix.
Unknown keys are ignored. Nothing here touches the network; a ``certificate_path`` or ``verify`` CA path is only
checked for existence (the files are read when the first token is needed).

Secrets (``client_secret``, ``certificate``, ``bot_app_secret``) are excluded from ``repr``.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from teamsops.graph.clouds import CLOUDS, CloudPreset
from teamsops.graph.errors import GraphConfigError

__all__ = ["ACCESS_MODES", "GraphSettings"]

ACCESS_MODES = ("read", "read_write")
_DOMAIN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)
_HEX40_RE = re.compile(r"^[0-9A-F]{40}$")
# Tenants that are valid for interactive sign-in but not for the client-credentials grant (AADSTS9001023/90124).
_MULTI_TENANT_ALIASES = {"common", "organizations", "consumers"}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class GraphSettings:
    """Everything the Graph and Bot clients need for one app in one tenant.

    ``authority_host``, ``graph_url``, ``bot_authority_host`` and ``bot_service_url`` are the effective values
    (the cloud preset unless overridden). ``graph_resource`` is always the cloud's (the token audience).
    """

    client_id: str
    tenant_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    thumbprint: str | None = None
    cloud: str = "global"
    authority_host: str = CLOUDS["global"].authority_host
    graph_url: str = CLOUDS["global"].graph_url
    verify: bool | str = True
    bot_app_id: str | None = None
    bot_app_secret: str | None = field(default=None, repr=False)
    bot_service_url: str | None = CLOUDS["global"].bot_service_url
    bot_authority_host: str = CLOUDS["global"].bot_authority_host
    bot_tenant: str | None = None
    access: str = "read"

    # ---------------------------------------------------------------- derived values
    @property
    def preset(self) -> CloudPreset:
        """The cloud preset these settings are based on."""
        return CLOUDS[self.cloud]

    @property
    def graph_resource(self) -> str:
        """Token audience for Graph: the cloud's resource, even when ``graph_url`` points elsewhere."""
        return self.preset.graph_resource

    @property
    def graph_scope(self) -> str:
        """The client-credentials scope (``https://graph.microsoft.com/.default`` in the global cloud)."""
        return self.preset.graph_scope

    @property
    def graph_base(self) -> str:
        """Root of Graph v1.0 requests: ``{graph_url}/v1.0``."""
        return f"{self.graph_url}/v1.0"

    @property
    def authority(self) -> str:
        """The tenant's authority URL for msal (``{authority_host}/{tenant_id}``)."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def uses_certificate(self) -> bool:
        """True when the app authenticates with a certificate rather than a secret."""
        return self.client_secret is None

    @property
    def read_only(self) -> bool:
        """True when writes must be refused (``access == "read"``)."""
        return self.access != "read_write"

    @property
    def effective_bot_app_id(self) -> str:
        """The bot's app id (defaults to the Graph app's)."""
        return self.bot_app_id or self.client_id

    @property
    def effective_bot_tenant(self) -> str:
        """Tenant that issues bot tokens: the app's own tenant (single-tenant bot) unless configured otherwise."""
        if self.bot_tenant in (None, ""):
            return self.tenant_id
        if self.bot_tenant.lower() in ("botframework.com", "multi-tenant", "multitenant"):
            return self.preset.bot_framework_tenant
        return self.bot_tenant

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GraphSettings:
        """Validate connection values (keys of the ``msteams`` connection contract) into settings.

        :raises GraphConfigError: with one sentence naming the field and the fix.
        """
        v = {key: _clean(value) for key, value in values.items()}
        client_id = _require_guid(v, "client_id", "the Application (client) ID from the app's Overview page "
                                                  "(the connection's login)")
        tenant_id = _tenant(v.get("tenant_id"))
        secret, certificate, certificate_path, thumbprint = _credential(v)
        cloud = _cloud(v.get("cloud"))
        preset = CLOUDS[cloud]
        bot_app_id = v.get("bot_app_id")
        if bot_app_id is not None:
            bot_app_id = _require_guid(v, "bot_app_id", "the bot's Microsoft App ID (an app registration GUID)")
        return cls(
            client_id=client_id,
            tenant_id=tenant_id,
            client_secret=secret,
            certificate=certificate,
            certificate_path=certificate_path,
            thumbprint=thumbprint,
            cloud=cloud,
            authority_host=_host_url(v.get("authority_host"), "authority_host", preset.authority_host),
            graph_url=_graph_url(v.get("graph_url"), preset.graph_url),
            verify=_verify(v.get("verify")),
            bot_app_id=bot_app_id,
            bot_app_secret=v.get("bot_app_secret"),
            bot_service_url=_service_url(v.get("bot_service_url"), preset.bot_service_url),
            bot_authority_host=_host_url(v.get("bot_authority_host"), "bot_authority_host", preset.bot_authority_host),
            bot_tenant=v.get("bot_tenant"),
            access=_access(v.get("access")),
        )


# -------------------------------------------------------------------- field validators
def _clean(value: Any) -> Any:
    """Strip strings and turn empty strings into None (what forms store for untouched fields)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _require_guid(v: Mapping[str, Any], name: str, what: str) -> str:
    value = v.get(name)
    if value is None:
        raise GraphConfigError(f"{name} is missing: set it to {what}.", name)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise GraphConfigError(f"{name} {value!r} is not a GUID: set it to {what}.", name) from None


def _tenant(value: Any) -> str:
    if value is None:
        raise GraphConfigError(
            "tenant_id is missing: set the connection extra tenant_id to the Directory (tenant) ID GUID from the "
            "app's Overview page (or the tenant's initial domain, e.g. contoso.onmicrosoft.com).", "tenant_id")
    text = str(value)
    if text.lower() in _MULTI_TENANT_ALIASES:
        raise GraphConfigError(
            f"tenant_id {text!r} cannot be used for app-only (client credentials) tokens: set it to the tenant's "
            "Directory (tenant) ID GUID.", "tenant_id")
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    if _DOMAIN_RE.match(text):
        return text.lower()
    raise GraphConfigError(
        f"tenant_id {text!r} is neither a GUID nor a domain name: set it to the Directory (tenant) ID from the "
        "app's Overview page.", "tenant_id")


def _credential(v: Mapping[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    secret, cert, cert_path = v.get("client_secret"), v.get("certificate"), v.get("certificate_path")
    if cert and cert_path:
        raise GraphConfigError(
            "certificate and certificate_path are both set: keep only one (the PEM text or the path to the PEM "
            "file).", "certificate")
    has_cert = bool(cert or cert_path)
    if secret and has_cert:
        raise GraphConfigError(
            "both a client secret (password) and a certificate are set: use one credential, either clear the "
            "password or remove certificate/certificate_path.", "client_secret")
    if not secret and not has_cert:
        raise GraphConfigError(
            "no credential: set the connection password to the client secret Value (Entra admin center > App "
            "registrations > <app> > Certificates & secrets), or set certificate/certificate_path and thumbprint.",
            "client_secret")
    if not has_cert:
        return str(secret), None, None, None
    thumbprint = v.get("thumbprint")
    if thumbprint is None:
        raise GraphConfigError(
            "thumbprint is missing: certificate authentication needs the certificate's SHA-1 thumbprint as shown "
            "under App registrations > <app> > Certificates & secrets.", "thumbprint")
    normalized = re.sub(r"[\s:]", "", str(thumbprint)).upper()
    if not _HEX40_RE.match(normalized):
        raise GraphConfigError(
            f"thumbprint {thumbprint!r} is not a SHA-1 thumbprint: set it to the 40 hex characters shown under "
            "App registrations > <app> > Certificates & secrets.", "thumbprint")
    if cert is not None and "-----BEGIN" not in str(cert):
        raise GraphConfigError(
            "certificate is not PEM text: paste the PEM containing the private key and the certificate "
            "(-----BEGIN PRIVATE KEY----- ...), or use certificate_path.", "certificate")
    if cert_path is not None and not os.path.isfile(str(cert_path)):
        raise GraphConfigError(
            f"certificate_path {cert_path!r} does not exist: point it at a PEM file (private key + certificate) "
            "readable by the Airflow workers.", "certificate_path")
    return None, (str(cert) if cert else None), (str(cert_path) if cert_path else None), normalized


def _cloud(value: Any) -> str:
    name = "global" if value is None else str(value).lower()
    if name not in CLOUDS:
        raise GraphConfigError(
            f"cloud {value!r} is unknown: use one of {', '.join(CLOUDS)}.", "cloud")
    return name


def _host_url(value: Any, name: str, default: str) -> str:
    if value is None:
        return default
    text = str(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise GraphConfigError(f"{name} {value!r} must be an https URL such as {default}.", name)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise GraphConfigError(
            f"{name} {value!r} must be only scheme and host (no path): the tenant is appended from tenant_id.", name)
    return text


def _graph_url(value: Any, default: str) -> str:
    if value is None:
        return default
    text = str(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise GraphConfigError(
            f"graph_url {value!r} must be an https URL such as {default} (the bearer token is never sent over "
            "plain http).", "graph_url")
    last = parts.path.rstrip("/").rsplit("/", 1)[-1].lower()
    if last in ("v1.0", "beta"):
        raise GraphConfigError(
            f"graph_url {value!r} ends in /{last}: remove it (the client adds /v1.0 itself), e.g. {default}.",
            "graph_url")
    if parts.query or parts.fragment:
        raise GraphConfigError(f"graph_url {value!r} must not carry a query or fragment.", "graph_url")
    return text


def _service_url(value: Any, default: str | None) -> str | None:
    if value is None:
        return default
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise GraphConfigError(
            f"bot_service_url {value!r} must be an https URL such as https://smba.trafficmanager.net/teams/.",
            "bot_service_url")
    return text if text.endswith("/") else text + "/"


def _verify(value: Any) -> bool | str:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    text = str(value)
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    if not os.path.isfile(text):
        raise GraphConfigError(
            f"verify {value!r} is neither true/false nor an existing CA bundle file: give the path of a PEM CA "
            "bundle, or true to use the system CAs.", "verify")
    return text


def _access(value: Any) -> str:
    access = "read" if value is None else str(value).lower()
    if access not in ACCESS_MODES:
        raise GraphConfigError(
            f"access {value!r} is unknown: use 'read' (sync only) or 'read_write' (sync and actions).", "access")
    return access

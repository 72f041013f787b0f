"""In-memory state of the simulated Microsoft cloud: tenants, their directory and Teams data, app registrations.

This module holds state and the rules that change it; it knows nothing of HTTP (see ``http.py``).

CONTRACT (used by identity.py / server.py / admin endpoints; keep these names and meanings):
  * ``Directory.get_tenant(ref)`` resolves a tenant by id or by any verified domain (case-insensitive), else None.
  * ``Directory.find_app(app_id)`` -> ``(Tenant, AppRegistration)`` or None, searching every tenant.
  * ``Directory.tenants`` dict id -> Tenant; ``Directory.add_tenant(tenant)``.
  * ``Tenant.id``, ``Tenant.display_name``, ``Tenant.initial_domain``, ``Tenant.apps`` (dict app_id -> AppRegistration),
    ``Tenant.lock`` (an RLock every reader/writer of that tenant's state holds).
  * ``AppRegistration`` fields below.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ClientSecret:
    """A client secret of an app registration (only the value is checked; ``key_id`` is the 'Secret ID')."""

    value: str
    key_id: str
    expires_at: datetime


@dataclass
class ClientCertificate:
    """A certificate registered on an app (public part only).

    :param pem: the certificate, PEM.
    :param thumbprint_sha1: hex upper-case SHA-1 of the DER (what the portal shows; JWT header ``x5t`` is its base64url).
    :param thumbprint_sha256: hex SHA-256 of the DER (JWT header ``x5t#S256`` is its base64url).
    """

    pem: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    expires_at: datetime


@dataclass
class AppRegistration:
    """An application registered (and consented) in a tenant.

    :param roles: granted application permissions (become the token's ``roles`` claim), e.g. ``User.Read.All``.
    :param bot: True when the app is also a Bot Framework bot (``https://api.botframework.com/.default`` tokens).
    :param teams_app_id: id of the Teams app (catalog entry) that packages this bot, when ``bot`` is True.
    """

    app_id: str
    display_name: str
    tenant_id: str
    service_principal_id: str
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[ClientCertificate] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)
    enabled: bool = True
    bot: bool = False
    teams_app_id: str | None = None
    # Lifetime (seconds) of tokens issued to this app; a short one lets tests exercise 401 refresh.
    token_lifetime: int = 3599


@dataclass
class Tenant:
    """One Entra ID tenant with its directory and Teams data.

    Graph resources are stored as dicts keyed by Graph's own property names, so ``$select`` is a projection.
    The data fields beyond the CONTRACT are owned by the model/graph_api implementation.
    """

    id: str
    display_name: str
    initial_domain: str
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


class Directory:
    """Every simulated tenant (the 'cloud')."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._lock = threading.RLock()

    def add_tenant(self, tenant: Tenant) -> Tenant:
        with self._lock:
            self.tenants[tenant.id] = tenant
        return tenant

    def get_tenant(self, ref: str) -> Tenant | None:
        ref = ref.lower()
        with self._lock:
            if ref in self.tenants:
                return self.tenants[ref]
            for tenant in self.tenants.values():
                if ref == tenant.initial_domain.lower() or ref in _verified_domains(tenant):
                    return tenant
        return None

    def find_app(self, app_id: str) -> tuple[Tenant, AppRegistration] | None:
        with self._lock:
            for tenant in self.tenants.values():
                app = tenant.apps.get(app_id)
                if app is not None:
                    return tenant, app
        return None


def _verified_domains(tenant: Tenant) -> set[str]:
    domains = getattr(tenant, "verified_domains", None) or [tenant.initial_domain]
    return {d.lower() for d in domains}

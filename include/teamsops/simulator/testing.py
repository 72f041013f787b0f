"""The in-process harness every test uses: a real HTTPS simulator on a free loopback port, in a background thread.

.. code-block:: python

    from teamsops.simulator.generator import TenantSpec
    from teamsops.simulator.testing import run_simulator

    with run_simulator(spec=TenantSpec(users=200, teams=20, seed=1)) as sim:
        httpx.get(sim.base_url + "/_sim/health", verify=sim.ca_path)
        conn = sim.connection()           # an Airflow `msteams` connection for the default tenant

It runs the same :class:`~teamsops.simulator.server.SimulatorServer` as the CLI and stops it (and its connection
threads) on exit. Without ``state_dir`` the TLS and token-signing keys live in one temporary directory shared by
the whole process (generated once, removed at exit), so starting many simulators stays cheap.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teamsops.simulator.app import Simulator
from teamsops.simulator.model import Directory, Tenant
from teamsops.simulator.server import SimulatorServer
from teamsops.simulator.tls import (
    TlsMaterial,
    certificate_thumbprints,
    ensure_tls,
    load_or_create_signing_key,
    new_rsa_key,
    self_signed_certificate,
)

log = logging.getLogger(__name__)

_shared_dir: Path | None = None
_shared_lock = threading.Lock()


def shared_state_dir() -> Path:
    """A per-process temporary state directory (removed when the interpreter exits)."""
    global _shared_dir
    with _shared_lock:
        if _shared_dir is None:
            _shared_dir = Path(tempfile.mkdtemp(prefix="teamsops-sim-"))
            atexit.register(shutil.rmtree, _shared_dir, True)
        return _shared_dir


def connection_for(tenant: Tenant, base_url: str, ca_path: str, **extra_overrides: Any) -> dict[str, Any]:
    """The Airflow connection (``msteams`` type) that points the project at ``tenant`` on this simulator.

    ``extra_overrides`` are merged into ``extra``; a ``None`` value removes the key.
    """
    from teamsops.simulator.generator import app_credentials

    creds = app_credentials(tenant)
    extra: dict[str, Any] = {
        "tenant_id": tenant.id,
        "authority_host": base_url,
        "graph_url": base_url,
        "verify": ca_path,
        "bot_app_id": creds["bot_app_id"],
        "bot_app_secret": creds["bot_secret"],
        "bot_service_url": base_url + "/teams/",
        "bot_authority_host": base_url,
        "access": "read_write",
    }
    for key, value in extra_overrides.items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value
    return {"conn_type": "msteams", "login": creds["app_id"], "password": creds["secret"], "extra": extra}


@dataclass
class RunningSimulator:
    """A started simulator: addresses, the live state, and the admin operations tests need."""

    simulator: Simulator
    server: SimulatorServer
    tls: TlsMaterial
    tenants: list[Tenant] = field(default_factory=list)
    _ssl_context: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ca_path(self) -> str:
        return str(self.tls.ca_path)

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting this simulator's CA (httpx: ``verify=sim.ssl_context()``)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=self.ca_path)
        return self._ssl_context

    @property
    def directory(self) -> Directory:
        return self.simulator.directory

    @property
    def tenant(self) -> Tenant:
        """The default tenant (the first one generated)."""
        return self.tenants[0]

    def _tenant(self, tenant: Tenant | str | None) -> Tenant:
        if tenant is None:
            return self.tenant
        if isinstance(tenant, str):
            found = self.directory.get_tenant(tenant)
            if found is None:
                raise KeyError(f"no tenant {tenant!r} in this simulator")
            return found
        return tenant

    def credentials(self, tenant: Tenant | str | None = None) -> dict[str, str]:
        """``{app_id, secret, bot_app_id, bot_secret, tenant_id}`` of a tenant's generated apps."""
        from teamsops.simulator.generator import app_credentials

        chosen = self._tenant(tenant)
        return {**app_credentials(chosen), "tenant_id": chosen.id}

    def connection(self, tenant: Tenant | str | None = None, **extra_overrides: Any) -> dict[str, Any]:
        """The Airflow ``msteams`` connection dict for a tenant (see :func:`connection_for`)."""
        return connection_for(self._tenant(tenant), self.base_url, self.ca_path, **extra_overrides)

    def token(self, tenant: Tenant | str | None = None, *, bot: bool = False, scope: str | None = None) -> str:
        """An access token from this simulator's token endpoint (over HTTPS, client secret of the tenant's sync app,
        or of its bot app with ``bot=True``). Raises ``RuntimeError`` with the ESTS error when refused."""
        import httpx

        creds = self.credentials(tenant)
        client_id, secret = (creds["bot_app_id"], creds["bot_secret"]) if bot else (creds["app_id"], creds["secret"])
        scope = scope or ("https://api.botframework.com/.default" if bot else "https://graph.microsoft.com/.default")
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        url = f"{self.base_url}/{creds['tenant_id']}/oauth2/v2.0/token"
        resp = httpx.post(url, data=form, verify=self.ssl_context())
        if resp.status_code != 200:
            raise RuntimeError(f"token request refused: {resp.status_code} {resp.json().get('error_codes')}")
        return str(resp.json()["access_token"])

    def inject(
        self, kind: str, times: int = 1, path: str = ".*", method: str | None = None, retry_after: float = 1.0
    ) -> None:
        """Script a fault (``429``, ``503``, ``504``, ``reset_before``, ``reset_after``) for the next ``times``
        matching requests (``path`` is a regex searched in the request path, e.g. ``/v1.0/users/...``)."""
        self.simulator.faults.inject(kind, times=times, path=path, method=method, retry_after=retry_after)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """``latency_ms``, ``jitter_ms``, ``throttle``, ``throttle_scale``, ``fault_rate``."""
        return self.simulator.configure(**settings)

    def set_app(
        self,
        app_id: str,
        roles: Iterable[str] | None = None,
        token_lifetime: int | None = None,
        expire_secrets: bool | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change an app registration (roles apply to tokens issued afterwards, like admin consent)."""
        return self.simulator.set_app(app_id, roles=None if roles is None else set(roles), enabled=enabled,
                                      token_lifetime=token_lifetime, expire_secrets=expire_secrets)  # fmt: skip

    def add_certificate(self, app_id: str) -> tuple[str, str, str]:
        """Create a key pair + self-signed certificate and register the certificate on ``app_id``.

        Returns ``(private_key_pem, cert_pem, thumbprint_sha1_hex)`` (thumbprint upper-case, as the portal shows it).
        """
        from cryptography.hazmat.primitives import serialization

        key = new_rsa_key()
        cert = self_signed_certificate(key, f"CN for app {app_id}", days=365)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()  # fmt: skip
        self.simulator.add_certificate(app_id, cert_pem)
        return key_pem, cert_pem, certificate_thumbprints(cert_pem)[0]

    def stats(self) -> dict[str, Any]:
        return self.simulator.stats.snapshot()

    def reset_stats(self) -> None:
        self.simulator.stats.reset()

    def journal(self, since: int = 0) -> list[dict]:
        return self.simulator.journal(since)

    def expire_delta_tokens(self, mode: str = "syncStateNotFound", tenant: Tenant | str | None = None) -> None:
        self.directory.expire_delta_tokens(self._tenant(tenant).id, mode)


def build_directory(spec: Any = None, extra_tenants: Iterable[Any] = ()) -> tuple[Directory, list[Tenant]]:
    """A Directory holding one generated tenant per spec (the first is the default tenant)."""
    from teamsops.simulator.generator import TenantSpec, generate_tenant

    directory = Directory()
    tenants = []
    for one in [spec if spec is not None else TenantSpec(), *extra_tenants]:
        tenants.append(directory.add_tenant(generate_tenant(one)))
    return directory, tenants


@contextmanager
def run_simulator(
    spec: Any = None,
    extra_tenants: Iterable[Any] = (),
    latency_ms: float = 0,
    jitter_ms: float = 0,
    throttle: str = "off",
    throttle_scale: float = 1.0,
    state_dir: str | Path | None = None,
    fault_rate: float = 0.0,
    seed: int = 0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[RunningSimulator]:
    """Start a simulator on ``host:port`` (port 0 = a free port) and stop it on exit."""
    root = Path(state_dir) if state_dir is not None else shared_state_dir()
    tls = ensure_tls(root)
    directory, tenants = build_directory(spec, extra_tenants)
    simulator = Simulator(directory, load_or_create_signing_key(root), latency_ms=latency_ms, jitter_ms=jitter_ms,
                          fault_rate=fault_rate, throttle=throttle, throttle_scale=throttle_scale,
                          seed=seed)  # fmt: skip
    server = SimulatorServer(simulator, tls, host=host, port=port).start()
    try:
        yield RunningSimulator(simulator, server, tls, tenants)
    finally:
        server.stop()

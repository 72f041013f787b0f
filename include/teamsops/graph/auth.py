"""App-only tokens from the Microsoft identity platform through msal, with errors that say what to fix.

:class:`TokenProvider` wraps one msal ``ConfidentialClientApplication`` for the life of a client (its token cache
included). It is created lazily on the first token request, because msal's constructor already talks to the network
(tenant discovery), and constructors of our clients must not.

How msal 1.39 is configured (checked against ``msal/authority.py``):

* ``authority = {authority_host}/{tenant}``. For the Microsoft hosts msal knows (``login.microsoftonline.com``,
  ``login.microsoftonline.us``, ``login.chinacloudapi.cn`` ...) it skips instance discovery anyway. For any other host
  (a simulator, a proxy) msal would call ``https://login.microsoftonline.com/common/discovery/instance`` on the
  internet unless ``instance_discovery=False``, so that is passed for non-Microsoft hosts; msal then reads
  ``{authority}/v2.0/.well-known/openid-configuration`` from the configured host itself. ``oidc_authority`` is not
  used: it treats the host as a generic OIDC provider (B2C/CIAM semantics) instead of an Entra tenant authority.
* ``verify`` (True / False / CA bundle path) and ``timeout`` are applied to every request msal sends, through a
  small ``http_client`` (:class:`_MsalHttpClient`). msal's own ``verify=`` parameter sets ``Session.verify``, which
  requests silently overrides with ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment (set on many
  Airflow images), so a configured CA bundle would be ignored; a per-request ``verify`` is not overridden. Proxies
  from the environment still apply.
* msal never serves a cached token that has less than 5 minutes left, and its ``acquire_token_for_client`` refuses
  ``force_refresh``; to force a new token after a 401 the rejected token is removed from msal's cache.

msal returns dicts rather than raising; :func:`auth_error_from_result` turns an error dict into a
:class:`GraphAuthError` carrying the AADSTS codes and plain advice. Secrets and tokens never enter messages or logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from teamsops.graph.errors import GraphAuthError, GraphConfigError
from teamsops.graph.settings import GraphSettings

__all__ = [
    "TokenProvider",
    "auth_error_from_result",
    "decode_jwt_claims",
    "graph_token_provider",
    "load_certificate_credential",
]

log = logging.getLogger(__name__)

_APP = "Entra admin center > App registrations > <app>"
AADSTS_ADVICE: dict[int, str] = {
    7000215: (f"the client secret is wrong - use the secret's Value, not its Secret ID ({_APP} > Certificates & "
              "secrets), and put it in the connection's password"),
    7000222: (f"the client secret has expired - create a new one in {_APP} > Certificates & secrets and put its "
              "Value in the connection's password"),
    90002: ("tenant not found - check tenant_id (Directory (tenant) ID on the app's Overview page) and the cloud "
            "(a US Government or China tenant needs cloud=usgov, usgov-dod or china)"),
    700016: ("the application was not found in that tenant - check client_id (Application (client) ID), that tenant_id "
             "is the tenant where the app is registered, and that an administrator has consented to the app there"),
    700027: (f"the certificate was rejected - the certificate with this thumbprint is not registered on the app or "
             f"does not match the private key: upload its public part in {_APP} > Certificates & secrets"),
    50012: (f"certificate authentication failed - check the certificate is registered in {_APP} > Certificates & "
            "secrets, has not expired, and that the thumbprint matches it"),
    7000112: ("the application is disabled in this tenant - enable it again (Entra admin center > Enterprise "
              "applications > <app> > Properties > Enabled for users to sign-in)"),
    7000218: "no credential was sent - set the client secret (password) or a certificate on the connection",
    90038: "the tenant lives in another national cloud - set cloud to the tenant's cloud (usgov, usgov-dod or china)",
    9001023: "app-only tokens need a specific tenant - set tenant_id to the tenant's GUID, not common/organizations",
    500011: ("Microsoft Graph's service principal is missing in the tenant, or the scope names another cloud's "
             "resource - check the cloud setting"),
    70011: "the scope was refused - check the cloud setting (the scope is the cloud's Graph resource + /.default)",
    700022: "the scope was refused - only one resource may be requested per token",
    53003: "Conditional Access for workload identities blocked the app - ask an administrator to review the policy",
}

_AADSTS_RE = re.compile(r"AADSTS(\d+)")
_WELL_KNOWN_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
    "login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.microsoftonline.de",
    "login-us.microsoftonline.com", "login.microsoftonline.us", "login.usgovcloudapi.net",
})  # fmt: skip


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, NOT verified (for reading our own token's ``roles``, ``tid``, ``exp``)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError) as err:
        raise GraphAuthError(message="the access token is not a JWT; cannot read its claims") from err
    return claims if isinstance(claims, dict) else {}


def auth_error_from_result(result: dict[str, Any], *, authority: str, client_id: str) -> GraphAuthError:
    """Turn an msal error dict (``error``, ``error_description``, ``error_codes`` ...) into a GraphAuthError."""
    codes = [int(code) for code in result.get("error_codes") or []]
    description = str(result.get("error_description") or "")
    if not codes:
        codes = [int(code) for code in _AADSTS_RE.findall(description)]
    first_line = description.split("\r\n", 1)[0].split("\n", 1)[0].strip()
    first_line = re.sub(r"^AADSTS\d+:\s*", "", first_line)
    advice = next((AADSTS_ADVICE[code] for code in codes if code in AADSTS_ADVICE), None)
    if advice is None:
        advice = (f"the identity platform at {authority} refused app {client_id}; see the AADSTS code at "
                  "https://login.microsoftonline.com/error")
    error = str(result.get("error") or "token_error")
    return GraphAuthError(
        None,
        f"AADSTS{codes[0]}" if codes else error,
        f"{first_line} [{error}]" if first_line else error,
        advice=advice,
        aadsts_codes=codes,
        error=result.get("error"),
        trace_id=result.get("trace_id"),
        correlation_id=result.get("correlation_id"),
    )


def _error_from_exception(err: BaseException, *, authority: str, client_id: str) -> GraphAuthError:
    """Map what msal raises (discovery failures, network errors) onto a GraphAuthError."""
    import requests  # msal's transport; imported lazily like msal does

    host = urlsplit(authority).netloc
    if isinstance(err, requests.exceptions.SSLError):
        return GraphAuthError(message=f"TLS verification failed connecting to the identity platform at {host}",
                              advice="set the connection's verify to the CA bundle that signs this host, or fix the "
                                     "proxy's certificate")
    if isinstance(err, requests.exceptions.RequestException):
        return GraphAuthError(message=f"cannot reach the identity platform at {host} ({type(err).__name__})",
                              advice="check authority_host / cloud, DNS, firewall and proxy settings of the workers")
    chain, seen = [], err
    while seen is not None:
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = "\n".join(chain)
    bodies = re.findall(r"\{.*\}", text, re.DOTALL)
    for body in bodies:
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("error"):
            return auth_error_from_result(parsed, authority=authority, client_id=client_id)
    codes = [int(code) for code in _AADSTS_RE.findall(text)]
    if codes:
        return auth_error_from_result({"error": "invalid_request", "error_codes": codes,
                                       "error_description": f"AADSTS{codes[0]}"}, authority=authority,
                                      client_id=client_id)
    return GraphAuthError(message=f"the authority {authority} could not be used: {str(err).splitlines()[0][:200]}",
                          advice="check tenant_id, authority_host and cloud")


def load_certificate_credential(pem_text: str, thumbprint: str) -> dict[str, str]:
    """Build msal's certificate credential from a PEM holding the private key (and normally the certificate).

    The configured SHA-1 ``thumbprint`` is checked against the certificate, and the key against the certificate,
    so a mismatch is reported here in plain words rather than as an AADSTS700027 later. With the certificate
    present msal signs the assertion with PS256 + ``x5t#S256`` (Entra's current format) and sends ``x5c``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key_blocks = re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", pem_text,
                            re.DOTALL)
    if not key_blocks:
        raise GraphConfigError("the certificate PEM holds no private key: include the -----BEGIN PRIVATE KEY----- "
                               "block next to the certificate.", "certificate")
    try:
        key = serialization.load_pem_private_key(key_blocks[0].encode(), password=None)
    except (ValueError, TypeError):
        raise GraphConfigError("the certificate's private key cannot be read (encrypted keys are not supported): "
                               "export it unencrypted as PEM.", "certificate") from None
    cert_blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem_text, re.DOTALL)
    if not cert_blocks:
        return {"private_key": key_blocks[0], "thumbprint": thumbprint}
    cert = x509.load_pem_x509_certificate(cert_blocks[0].encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    actual = hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    if actual != thumbprint.upper():
        raise GraphConfigError(f"thumbprint {thumbprint} does not match the certificate in the PEM (its SHA-1 "
                               f"thumbprint is {actual}): fix the thumbprint or the certificate.", "thumbprint")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.PEM, public) != cert.public_key().public_bytes(
            serialization.Encoding.PEM, public):
        raise GraphConfigError("the private key in the PEM does not belong to its certificate: export the key "
                               "and certificate of the same credential.", "certificate")
    return {"private_key": key_blocks[0], "public_certificate": cert_blocks[0]}


def _settings_credential(settings: GraphSettings) -> str | dict[str, str]:
    """The app's own credential (secret, or certificate read now from text or file)."""
    if settings.client_secret is not None:
        return settings.client_secret
    pem = settings.certificate
    if pem is None and settings.certificate_path is not None:
        try:
            with open(settings.certificate_path, encoding="utf-8") as handle:
                pem = handle.read()
        except OSError as err:
            raise GraphConfigError(f"certificate_path {settings.certificate_path!r} cannot be read "
                                   f"({err.strerror}): make it readable by the workers.", "certificate_path") from None
    return load_certificate_credential(pem or "", settings.thumbprint or "")


class _MsalHttpClient:
    """The HTTP client msal uses (its ``HttpClient`` interface: ``post`` / ``get``) with our verify and timeout."""

    def __init__(self, verify: bool | str, timeout: float) -> None:
        import requests

        self._verify, self._timeout = verify, timeout
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(max_retries=1)  # the same minimal retry msal configures itself
        self._session.mount("https://", adapter)

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self._session.post(url, params=params, data=data, headers=headers, **self._options(kwargs))

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self._session.get(url, params=params, headers=headers, **self._options(kwargs))

    def close(self) -> None:
        self._session.close()

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("timeout", self._timeout)
        kwargs["verify"] = self._verify
        return kwargs


class TokenProvider:
    """Thread-safe app-only tokens for one (app, authority, scope), cached by msal for the provider's life.

    :param credential: a callable returning the msal ``client_credential`` (called once, lazily).
    :param on_token: called with every NEW access token (e.g. to mask it in logs); never with a cached one twice.
    """

    def __init__(
        self,
        *,
        client_id: str,
        authority: str,
        scope: str,
        credential: Callable[[], str | dict[str, str]],
        verify: bool | str = True,
        timeout: float = 30.0,
        on_token: Callable[[str], None] | None = None,
        purpose: str = "Microsoft Graph",
    ) -> None:
        self.client_id = client_id
        self.authority = authority
        self.scope = scope
        self.purpose = purpose
        self._credential = credential
        self._verify = verify
        self._timeout = timeout
        self._on_token = on_token
        self._app: Any = None
        self._http: _MsalHttpClient | None = None
        self._last_token: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session msal used (the token cache goes with the provider)."""
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._app, self._http = None, None

    def token(self) -> str:
        """A valid access token (msal's cache first, the identity platform when needed)."""
        with self._lock:
            return self._acquire()

    def refresh(self, rejected: str | None) -> str:
        """A NEW token after Graph rejected ``rejected`` with 401 (drops it from msal's cache first)."""
        with self._lock:
            if rejected is not None and rejected != self._last_token:
                return self._acquire()  # another thread already replaced it
            if self._app is not None:
                cache = self._app.token_cache
                for entry in list(cache.search(cache.CredentialType.ACCESS_TOKEN,
                                               query={"client_id": self.client_id})):
                    if rejected is None or entry.get("secret") == rejected:
                        cache.remove_at(entry)
            log.info("Access token for %s was rejected; acquiring a new one", self.purpose)
            return self._acquire()

    def _acquire(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[self.scope])
        except Exception as err:  # msal raises transport errors (requests) as they are
            raise _error_from_exception(err, authority=self.authority, client_id=self.client_id) from None
        if not result or "access_token" not in result:
            raise auth_error_from_result(result or {}, authority=self.authority, client_id=self.client_id)
        token = result["access_token"]
        if token != self._last_token:
            self._last_token = token
            log.debug("New %s access token acquired for app %s (expires in %s s)", self.purpose, self.client_id,
                      result.get("expires_in"))
            if self._on_token is not None:
                self._on_token(token)
        return token

    def _application(self) -> Any:
        if self._app is not None:
            return self._app
        import msal

        host = urlsplit(self.authority).hostname or ""
        kwargs: dict[str, Any] = {}
        if host.lower() not in _WELL_KNOWN_HOSTS:
            kwargs["instance_discovery"] = False  # never ask login.microsoftonline.com about a custom host
        credential = self._credential()
        self._http = self._http or _MsalHttpClient(self._verify, self._timeout)
        try:
            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=credential,
                authority=self.authority,
                http_client=self._http,
                app_name="teamsops",
                **kwargs,
            )
        except GraphConfigError:
            raise
        except Exception as err:  # tenant discovery failures (ValueError) and transport errors
            raise _error_from_exception(err, authority=self.authority, client_id=self.client_id) from None
        return self._app


def graph_token_provider(settings: GraphSettings, *, timeout: float = 30.0,
                         on_token: Callable[[str], None] | None = None) -> TokenProvider:
    """The Graph token provider of a connection (scope = the cloud's Graph resource + ``/.default``)."""
    return TokenProvider(
        client_id=settings.client_id,
        authority=settings.authority,
        scope=settings.graph_scope,
        credential=lambda: _settings_credential(settings),
        verify=settings.verify,
        timeout=timeout,
        on_token=on_token,
    )


def bot_token_provider(settings: GraphSettings, *, timeout: float = 30.0,
                       on_token: Callable[[str], None] | None = None) -> TokenProvider:
    """The Bot Framework token provider (``{bot_authority_host}/{bot tenant}``, the cloud's bot scope)."""
    bot_id = settings.effective_bot_app_id
    if settings.bot_app_secret is not None:
        credential: Callable[[], str | dict[str, str]] = lambda: settings.bot_app_secret or ""  # noqa: E731
    elif bot_id == settings.client_id:
        credential = lambda: _settings_credential(settings)  # noqa: E731
    else:
        raise GraphConfigError(f"bot_app_secret is missing: bot_app_id {bot_id} differs from the connection's app, so "
                               "set bot_app_secret to that bot app's client secret Value.", "bot_app_secret")
    return TokenProvider(
        client_id=bot_id,
        authority=f"{settings.bot_authority_host}/{settings.effective_bot_tenant}",
        scope=settings.preset.bot_scope,
        credential=credential,
        verify=settings.verify,
        timeout=timeout,
        on_token=on_token,
        purpose="Bot Framework",
    )

"""Fidelity: Microsoft's MSAL for Python (1.39), which we did not write, authenticates against the simulator's identity
platform exactly as it would against login.microsoftonline.com. If MSAL rejects a simulator response, the simulator
is wrong.

MSAL sends its HTTP through ``requests``. ``requests`` lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the
environment override a session's ``verify`` (which is how MSAL applies ``verify=``), so these tests clear them: with
them set, MSAL would ignore the simulator's CA. The project's own client must guard against the same trap.
"""

from __future__ import annotations

import uuid

import jwt
import msal
import pytest

GRAPH = ["https://graph.microsoft.com/.default"]
BOT = ["https://api.botframework.com/.default"]


@pytest.fixture(autouse=True)
def _no_ca_bundle_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _app(sim, client_id: str, credential, tenant: str, **kwargs) -> msal.ConfidentialClientApplication:
    kwargs.setdefault("instance_discovery", False)
    return msal.ConfidentialClientApplication(client_id, client_credential=credential,
                                              authority=f"{sim.base_url}/{tenant}", verify=sim.ca_path, **kwargs)  # fmt: skip


def _ok(result: dict) -> dict:
    assert "access_token" in result, {k: v for k, v in result.items() if k != "access_token"}
    return jwt.decode(result["access_token"], options={"verify_signature": False})


def test_secret_by_tenant_id_and_cache(sim):
    creds = sim.credentials()
    app = _app(sim, creds["app_id"], creds["secret"], creds["tenant_id"])
    first = app.acquire_token_for_client(GRAPH)
    claims = _ok(first)
    assert first["token_source"] == "identity_provider"
    assert claims["tid"] == creds["tenant_id"] and claims["appid"] == creds["app_id"]
    assert set(claims["roles"]) == set(sim.tenant.apps[creds["app_id"]].roles)
    assert app.acquire_token_for_client(GRAPH)["token_source"] == "cache"


def test_secret_by_domain_with_the_simulators_instance_discovery(sim):
    creds = sim.credentials()
    app = _app(sim, creds["app_id"], creds["secret"], sim.tenant.initial_domain,
               instance_discovery=f"{sim.base_url}/common/discovery/instance")  # fmt: skip
    assert _ok(app.acquire_token_for_client(GRAPH))["tid"] == creds["tenant_id"]
    assert app.authority.tenant == creds["tenant_id"]  # MSAL took the GUID from the discovered token endpoint


def test_secret_with_oidc_authority(sim):
    creds = sim.credentials()
    app = msal.ConfidentialClientApplication(creds["app_id"], client_credential=creds["secret"],
                                             oidc_authority=f"{sim.base_url}/{creds['tenant_id']}/v2.0",
                                             verify=sim.ca_path)  # fmt: skip
    _ok(app.acquire_token_for_client(GRAPH))


def test_certificate_with_sha1_thumbprint(sim):
    creds = sim.credentials()
    key_pem, _cert_pem, thumbprint = sim.add_certificate(creds["app_id"])
    app = _app(sim, creds["app_id"], {"private_key": key_pem, "thumbprint": thumbprint}, creds["tenant_id"])
    assert _ok(app.acquire_token_for_client(GRAPH))["appidacr"] == "2"  # MSAL sent RS256 + x5t


def test_certificate_with_public_certificate_sha256(sim):
    creds = sim.credentials()
    key_pem, cert_pem, _ = sim.add_certificate(creds["app_id"])
    app = _app(sim, creds["app_id"], {"private_key": key_pem, "public_certificate": cert_pem}, creds["tenant_id"])
    assert _ok(app.acquire_token_for_client(GRAPH))["appidacr"] == "2"  # MSAL sent PS256 + x5t#S256 + x5c


def test_bot_token_from_botframework_tenant(sim):
    creds = sim.credentials()
    app = _app(sim, creds["bot_app_id"], creds["bot_secret"], "botframework.com")
    claims = _ok(app.acquire_token_for_client(BOT))
    assert claims["aud"] == "https://api.botframework.com"


def test_wrong_secret(sim):
    creds = sim.credentials()
    result = _app(sim, creds["app_id"], "not-the-secret", creds["tenant_id"]).acquire_token_for_client(GRAPH)
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]


def test_unknown_app(sim):
    creds = sim.credentials()
    result = _app(sim, str(uuid.uuid4()), "x", creds["tenant_id"]).acquire_token_for_client(GRAPH)
    assert result["error"] == "unauthorized_client"
    assert 700016 in result["error_codes"]


def test_unknown_tenant(sim):
    # MSAL discovers the tenant when the application is built; it wraps the 400 in a generic ValueError and keeps
    # the ESTS body (with AADSTS90002) on the chained exception.
    creds = sim.credentials()
    with pytest.raises(ValueError) as caught:
        _app(sim, creds["app_id"], creds["secret"], "no-such-tenant.onmicrosoft.com")
    chain = f"{caught.value} {caught.value.__context__}"
    assert "AADSTS90002" in chain and "invalid_tenant" in chain

"""The simulator's identity platform over HTTPS: discovery documents, JWKS, the client-credentials token endpoint
(secret and certificate assertions) with the real ESTS error bodies, and how Graph/Bot validate the tokens."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest

from teamsops.simulator.generator import BOTFRAMEWORK_TENANT_ID, TenantSpec
from teamsops.simulator.identity import BOTFRAMEWORK_TENANT_ID as IDENTITY_BOTFRAMEWORK_TENANT_ID
from teamsops.simulator.testing import RunningSimulator, run_simulator

GRAPH = "https://graph.microsoft.com/.default"
BOT = "https://api.botframework.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DESCRIPTION = re.compile(r"^AADSTS(\d+): .+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
                         r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", re.S)  # fmt: skip


@pytest.fixture(scope="module")
def idp() -> Iterator[RunningSimulator]:
    """A small simulator of this module's own (tests here change app registrations and restore them)."""
    with run_simulator(spec=TenantSpec(users=40, teams=4, seed=3)) as running:
        yield running


@pytest.fixture(scope="module")
def client(idp: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idp.base_url, verify=idp.ssl_context()) as http:
        yield http


def _token(client: httpx.Client, tenant: str, **form: str) -> httpx.Response:
    return client.post(f"/{tenant}/oauth2/v2.0/token", data={"grant_type": "client_credentials", **form})


def _assert_ests_error(resp: httpx.Response, status: int, error: str, code: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert DESCRIPTION.match(body["error_description"]), body["error_description"]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    assert set(body) == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                         "error_uri"}  # fmt: skip
    return body


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# --- discovery ------------------------------------------------------------------------------------------------------
def test_openid_configuration_by_domain_carries_the_tenant_guid(idp, client):
    tenant = idp.tenant
    resp = client.get(f"/{tenant.initial_domain}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "max-age=86400, private"
    doc = resp.json()
    assert doc["token_endpoint"] == f"{idp.base_url}/{tenant.id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{idp.base_url}/{tenant.id}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{idp.base_url}/{tenant.id}/discovery/v2.0/keys"
    assert doc["issuer"] == f"{idp.base_url}/{tenant.id}/v2.0"
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]


def test_openid_configuration_unknown_tenant_is_invalid_tenant(client):
    resp = client.get("/nobody.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    body = _assert_ests_error(resp, 400, "invalid_tenant", 90002)
    assert "Tenant 'nobody.onmicrosoft.com' not found" in body["error_description"]


def test_instance_discovery_points_at_the_tenant_discovery_document(idp, client):
    tid = idp.tenant.id
    # MSAL drops the port from this URL, so the simulator compares host names only.
    resp = client.get("/common/discovery/instance", params={
        "api-version": "1.1", "authorization_endpoint": f"https://127.0.0.1/{tid}/oauth2/v2.0/authorize"})  # fmt: skip
    assert resp.status_code == 200
    host = idp.base_url.removeprefix("https://")
    assert resp.json()["tenant_discovery_endpoint"] == f"https://{host}/{tid}/v2.0/.well-known/openid-configuration"
    unknown = client.get("/common/discovery/instance", params={
        "authorization_endpoint": f"https://login.example.org/{tid}/oauth2/v2.0/authorize"})  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_instance"


def test_tokens_verify_against_the_published_jwks(idp, client):
    jwks = client.get(f"/{idp.tenant.id}/discovery/v2.0/keys").json()
    token = idp.token()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")
    assert claims["tid"] == idp.tenant.id


# --- token endpoint: success ----------------------------------------------------------------------------------------
def test_secret_in_form_gives_an_app_only_graph_token(idp, client):
    creds = idp.credentials()
    app = idp.tenant.apps[creds["app_id"]]
    resp = _token(client, idp.tenant.id, client_id=creds["app_id"], client_secret=creds["secret"], scope=GRAPH,
                  **{"x-client-SKU": "test", "client_info": "1", "claims": '{"access_token":{"xms_cc":{"values":["CP1"]}}}'})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store, no-cache"
    body = resp.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == app.token_lifetime
    claims = _claims(body["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{idp.tenant.id}/"
    assert claims["tid"] == idp.tenant.id
    assert claims["appid"] == claims["azp"] == creds["app_id"]
    assert claims["oid"] == app.service_principal_id
    assert claims["roles"] == sorted(app.roles)
    assert claims["idtyp"] == "app" and claims["ver"] == "1.0"
    assert claims["exp"] - claims["iat"] == app.token_lifetime
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"


def test_secret_with_http_basic_and_domain_authority(idp, client):
    creds = idp.credentials()
    basic = base64.b64encode(f"{creds['app_id']}:{creds['secret']}".encode()).decode()
    resp = client.post(f"/{idp.tenant.initial_domain}/oauth2/v2.0/token", headers={"Authorization": f"Basic {basic}"},
                       data={"grant_type": "client_credentials", "scope": GRAPH})  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert _claims(resp.json()["access_token"])["tid"] == idp.tenant.id


@pytest.mark.parametrize(("scope", "aud"), [
    ("00000003-0000-0000-c000-000000000000/.default", "00000003-0000-0000-c000-000000000000"),
    ("https://graph.microsoft.us/.default", "https://graph.microsoft.us"),
])  # fmt: skip
def test_graph_resource_forms(idp, client, scope, aud):
    creds = idp.credentials()
    resp = _token(client, idp.tenant.id, client_id=creds["app_id"], client_secret=creds["secret"], scope=scope)
    assert resp.status_code == 200, resp.text
    assert _claims(resp.json()["access_token"])["aud"] == aud


@pytest.mark.parametrize("authority", ["botframework.com", BOTFRAMEWORK_TENANT_ID, "own"])
def test_bot_token_from_botframework_or_own_tenant(idp, client, authority):
    creds = idp.credentials()
    tenant = idp.tenant.id if authority == "own" else authority
    resp = _token(client, tenant, client_id=creds["bot_app_id"], client_secret=creds["bot_secret"], scope=BOT)
    assert resp.status_code == 200, resp.text
    claims = _claims(resp.json()["access_token"])
    expected_tid = idp.tenant.id if authority == "own" else BOTFRAMEWORK_TENANT_ID
    assert claims["aud"] == "https://api.botframework.com"
    assert claims["tid"] == expected_tid and claims["iss"] == f"https://sts.windows.net/{expected_tid}/"
    assert "roles" not in claims
    assert IDENTITY_BOTFRAMEWORK_TENANT_ID == BOTFRAMEWORK_TENANT_ID


def test_role_changes_apply_to_tokens_issued_afterwards(idp):
    app_id = idp.credentials()["app_id"]
    before = sorted(idp.tenant.apps[app_id].roles)
    old_token = idp.token()
    try:
        idp.set_app(app_id, roles=["User.Read.All"])
        assert _claims(idp.token())["roles"] == ["User.Read.All"]
        idp.set_app(app_id, roles=[])
        assert "roles" not in _claims(idp.token())  # real tokens omit an empty roles claim
    finally:
        idp.set_app(app_id, roles=before)
    assert _claims(old_token)["roles"] == before


# --- token endpoint: errors -----------------------------------------------------------------------------------------
def test_get_on_token_endpoint(idp, client):
    _assert_ests_error(client.get(f"/{idp.tenant.id}/oauth2/v2.0/token"), 400, "invalid_request", 900561)


@pytest.mark.parametrize("alias", ["common", "organizations"])
def test_multi_tenant_aliases_refuse_client_credentials(idp, client, alias):
    creds = idp.credentials()
    resp = _token(client, alias, client_id=creds["app_id"], client_secret=creds["secret"], scope=GRAPH)
    _assert_ests_error(resp, 400, "invalid_request", 9001023)


def test_unknown_tenant(idp, client):
    creds = idp.credentials()
    resp = _token(client, str(uuid.uuid4()), client_id=creds["app_id"], client_secret=creds["secret"], scope=GRAPH)
    _assert_ests_error(resp, 400, "invalid_tenant", 90002)


@pytest.mark.parametrize("missing", ["client_id", "scope", "grant_type"])
def test_missing_parameter(idp, client, missing):
    creds = idp.credentials()
    form = {"grant_type": "client_credentials", "client_id": creds["app_id"], "client_secret": creds["secret"],
            "scope": GRAPH}  # fmt: skip
    del form[missing]
    body = _assert_ests_error(client.post(f"/{idp.tenant.id}/oauth2/v2.0/token", data=form), 400, "invalid_request", 900144)
    assert f"'{missing}'" in body["error_description"]


def test_no_credential(idp, client):
    resp = _token(client, idp.tenant.id, client_id=idp.credentials()["app_id"], scope=GRAPH)
    _assert_ests_error(resp, 401, "invalid_client", 7000218)


def test_wrong_secret(idp, client):
    creds = idp.credentials()
    resp = _token(client, idp.tenant.id, client_id=creds["app_id"], client_secret="not-the-secret", scope=GRAPH)
    body = _assert_ests_error(resp, 401, "invalid_client", 7000215)
    assert "not-the-secret" not in resp.text and creds["secret"] not in body["error_description"]


def test_unknown_app(idp, client):
    resp = _token(client, idp.tenant.id, client_id=str(uuid.uuid4()), client_secret="x", scope=GRAPH)
    _assert_ests_error(resp, 400, "unauthorized_client", 700016)


def test_app_of_another_tenant_is_unknown_here():
    other = TenantSpec(users=10, teams=1, seed=5, tenant_id=str(uuid.uuid4()), domain="other-sim.onmicrosoft.com")
    with run_simulator(spec=TenantSpec(users=10, teams=1, seed=4), extra_tenants=[other]) as two:
        creds = two.credentials(two.tenants[1])
        with httpx.Client(base_url=two.base_url, verify=two.ssl_context()) as http:
            resp = _token(http, two.tenants[0].id, client_id=creds["app_id"], client_secret=creds["secret"], scope=GRAPH)
            _assert_ests_error(resp, 400, "unauthorized_client", 700016)
            ok = _token(http, two.tenants[1].id, client_id=creds["app_id"], client_secret=creds["secret"], scope=GRAPH)
            assert ok.status_code == 200


def test_expired_secret_and_disabled_app(idp, client):
    creds = idp.credentials()
    app = idp.tenant.apps[creds["bot_app_id"]]
    saved = [(s, s.expires_at) for s in app.secrets]
    try:
        idp.set_app(creds["bot_app_id"], expire_secrets=True)
        resp = _token(client, idp.tenant.id, client_id=creds["bot_app_id"], client_secret=creds["bot_secret"], scope=BOT)
        _assert_ests_error(resp, 401, "invalid_client", 7000222)
    finally:
        for secret, expires in saved:
            secret.expires_at = expires
    try:
        idp.set_app(creds["bot_app_id"], enabled=False)
        resp = _token(client, idp.tenant.id, client_id=creds["bot_app_id"], client_secret=creds["bot_secret"], scope=BOT)
        _assert_ests_error(resp, 400, "unauthorized_client", 7000112)
    finally:
        idp.set_app(creds["bot_app_id"], enabled=True)


@pytest.mark.parametrize(("scope", "status", "error", "code"), [
    (f"{GRAPH} {BOT}", 400, "invalid_scope", 700022),
    ("https://graph.microsoft.com/User.Read.All", 400, "invalid_scope", 1002012),
    ("openid", 400, "invalid_scope", 70011),
    ("https://contoso.example/api/.default", 400, "invalid_resource", 500011),
    (BOT, 400, "invalid_resource", 500011),  # the sync app is not a bot
])  # fmt: skip
def test_scope_errors(idp, client, scope, status, error, code):
    creds = idp.credentials()
    resp = _token(client, idp.tenant.id, client_id=creds["app_id"], client_secret=creds["secret"], scope=scope)
    _assert_ests_error(resp, status, error, code)


def test_botframework_tenant_issues_only_connector_tokens(idp, client):
    creds = idp.credentials()
    resp = _token(client, "botframework.com", client_id=creds["bot_app_id"], client_secret=creds["bot_secret"], scope=GRAPH)
    _assert_ests_error(resp, 400, "invalid_resource", 500011)
    sync = _token(client, "botframework.com", client_id=creds["app_id"], client_secret=creds["secret"], scope=BOT)
    _assert_ests_error(sync, 400, "unauthorized_client", 700016)


# --- certificate assertions -----------------------------------------------------------------------------------------
def _assertion(idp: RunningSimulator, key_pem: str, cert_pem: str, *, alg: str = "PS256", **claims) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    now = int(time.time())
    app_id = idp.credentials()["app_id"]
    payload = {"aud": f"{idp.base_url}/{idp.tenant.id}/oauth2/v2.0/token", "iss": app_id, "sub": app_id,
               "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600, **claims}  # fmt: skip
    if alg == "PS256":
        headers = {"x5t#S256": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()}
    else:
        headers = {"x5t": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode()}  # noqa: S303
    return jwt.encode(payload, key_pem, algorithm=alg, headers=headers)


@pytest.fixture(scope="module")
def certificate(idp: RunningSimulator) -> tuple[str, str, str]:
    return idp.add_certificate(idp.credentials()["app_id"])


def _with_assertion(idp, client, assertion: str) -> httpx.Response:
    return _token(client, idp.tenant.id, client_id=idp.credentials()["app_id"], scope=GRAPH,
                  client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)  # fmt: skip


@pytest.mark.parametrize("alg", ["PS256", "RS256"])
def test_certificate_assertion(idp, client, certificate, alg):
    key_pem, cert_pem, _ = certificate
    resp = _with_assertion(idp, client, _assertion(idp, key_pem, cert_pem, alg=alg))
    assert resp.status_code == 200, resp.text
    assert _claims(resp.json()["access_token"])["appidacr"] == "2"


def test_assertion_errors(idp, client, certificate):
    key_pem, cert_pem, _ = certificate
    other_key, other_cert, _ = idp.add_certificate(idp.credentials()["bot_app_id"])  # registered on another app
    body = _assert_ests_error(_with_assertion(idp, client, _assertion(idp, other_key, other_cert)), 401, "invalid_client", 700027)
    assert "The key was not found" in body["error_description"]
    forged = _assertion(idp, other_key, cert_pem)  # right thumbprint, wrong private key
    body = _assert_ests_error(_with_assertion(idp, client, forged), 401, "invalid_client", 700027)
    assert "signature value did not match" in body["error_description"]
    wrong_aud = _assertion(idp, key_pem, cert_pem, aud="https://login.microsoftonline.com/other/oauth2/v2.0/token")
    _assert_ests_error(_with_assertion(idp, client, wrong_aud), 400, "invalid_client", 700023)
    wrong_iss = _assertion(idp, key_pem, cert_pem, iss=str(uuid.uuid4()))
    _assert_ests_error(_with_assertion(idp, client, wrong_iss), 400, "invalid_client", 700021)
    expired = _assertion(idp, key_pem, cert_pem, exp=int(time.time()) - 3600, nbf=int(time.time()) - 4000)
    _assert_ests_error(_with_assertion(idp, client, expired), 400, "invalid_client", 700024)
    resp = _token(client, idp.tenant.id, client_id=idp.credentials()["app_id"], scope=GRAPH,
                  client_assertion=_assertion(idp, key_pem, cert_pem))  # fmt: skip
    _assert_ests_error(resp, 400, "invalid_request", 900144)  # client_assertion_type missing


# --- token validation by the Graph and Bot front ends -----------------------------------------------------------------
def _graph_get(idp, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{idp.base_url}/v1.0/organization", headers=headers, verify=idp.ssl_context())


def _assert_401(resp: httpx.Response, message: str) -> None:
    assert resp.status_code == 401, resp.text
    error = resp.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["message"] == message
    assert error["innerError"]["request-id"] == resp.headers["request-id"]
    assert resp.headers["www-authenticate"].startswith("Bearer ")


def test_graph_401s(idp):
    _assert_401(_graph_get(idp, None), "Access token is empty.")
    _assert_401(_graph_get(idp, "not-a-jwt"), "CompactToken parsing failed with error code: 80049217")
    bot_token = idp.token(bot=True)
    _assert_401(_graph_get(idp, bot_token), "Access token validation failure. Invalid audience.")
    good = idp.token()
    head, payload, sig = good.split(".")
    tampered_payload = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(b'"ver":"1.0"', b'"ver":"2.0"')).rstrip(b"=").decode()
    _assert_401(_graph_get(idp, f"{head}.{tampered_payload}.{sig}"), "Access token validation failure. Invalid signature.")
    assert _graph_get(idp, good).status_code == 200


def test_expired_graph_token(idp):
    app_id = idp.credentials()["app_id"]
    lifetime = idp.tenant.apps[app_id].token_lifetime
    idp.set_app(app_id, token_lifetime=1)
    try:
        token = idp.token()
    finally:
        idp.set_app(app_id, token_lifetime=lifetime)
    assert _claims(token)["exp"] - _claims(token)["iat"] == 1
    time.sleep(1.1)
    _assert_401(_graph_get(idp, token), "Access token has expired or is not yet valid.")


def test_bot_front_end_refuses_missing_and_graph_tokens(idp):
    for headers in ({}, {"Authorization": f"Bearer {idp.token()}"}):
        resp = httpx.post(f"{idp.base_url}/teams/v3/conversations", json={}, headers=headers, verify=idp.ssl_context())
        assert resp.status_code == 401
        assert resp.json() == {"message": "Authorization has been denied for this request."}
        assert resp.headers["x-correlating-operationid"]

"""The HTTPS front end: TLS material, Graph response headers, routing (Graph, Bot with a service-url prefix, admin,
unknown paths), keep-alive, chunked bodies, the /_sim admin endpoints, statistics and a clean stop."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from cryptography import x509

from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.http import SimRequest
from teamsops.simulator.testing import run_simulator
from teamsops.simulator.tls import ensure_tls, load_or_create_signing_key

ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


def _graph(sim, **headers) -> httpx.Client:
    return httpx.Client(base_url=f"{sim.base_url}/v1.0", verify=sim.ssl_context(),
                        headers={"Authorization": f"Bearer {sim.token()}", **headers})  # fmt: skip


def test_tls_material_is_created_once_and_reused(tmp_path):
    first = ensure_tls(tmp_path)
    ca_bytes = first.ca_path.read_bytes()
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    ca = x509.load_pem_x509_certificate(ca_bytes)
    cert.verify_directly_issued_by(ca)
    assert ensure_tls(tmp_path).ca_path.read_bytes() == ca_bytes
    assert load_or_create_signing_key(tmp_path).kid == load_or_create_signing_key(tmp_path).kid
    ssl.create_default_context(cafile=str(first.ca_path))  # loads as a trust anchor


def test_graph_success_headers(sim):
    client_request_id = str(uuid.uuid4())
    with _graph(sim) as http:
        resp = http.get("/organization", headers={"client-request-id": client_request_id})
        assert resp.status_code == 200
        assert resp.headers["content-type"] == ODATA_JSON
        assert resp.headers["odata-version"] == "4.0"
        assert resp.headers["client-request-id"] == client_request_id
        assert uuid.UUID(resp.headers["request-id"]) and resp.headers["request-id"] != client_request_id
        assert json.loads(resp.headers["x-ms-ags-diagnostic"])["ServerInfo"]
        assert resp.headers["x-ms-resource-unit"] == "1"
        second = http.get("/organization")
        assert second.headers["client-request-id"] == second.headers["request-id"]  # echoed or defaulted


def test_graph_error_body_carries_the_ids(sim):
    with _graph(sim) as http:
        resp = http.get(f"/users/{uuid.uuid4()}")
    assert resp.status_code == 404
    inner = resp.json()["error"]["innerError"]
    assert inner["request-id"] == resp.headers["request-id"]
    assert inner["client-request-id"] == resp.headers["client-request-id"]
    assert "odata-version" not in resp.headers and resp.headers["content-type"].startswith("application/json")


def test_unknown_path_names_the_known_prefixes(sim):
    resp = httpx.get(f"{sim.base_url}/nothing/here", verify=sim.ssl_context())
    assert resp.status_code == 404
    assert "/v1.0/" in resp.json()["error"]["message"]


@pytest.mark.parametrize("prefix", ["/teams", "/amer", ""])
def test_bot_routes_strip_the_service_url_prefix(sim, prefix):
    headers = {"Authorization": f"Bearer {sim.token(bot=True)}"}
    resp = httpx.post(f"{sim.base_url}{prefix}/v3/conversations/a:no-such-conversation/activities",
                      json={"type": "message", "text": "hello"}, headers=headers, verify=sim.ssl_context())  # fmt: skip
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "ConversationNotFound"
    assert resp.headers["x-correlating-operationid"]


def test_keep_alive_serves_many_requests_on_one_connection(sim):
    context = ssl.create_default_context(cafile=sim.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", sim.server.port, context=context, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/_sim/health")
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["status"] == "ok"
        assert not resp.will_close
    finally:
        conn.close()


def test_chunked_request_body(fresh_sim):
    def body():
        yield b'{"latency_ms": '
        yield b"0}"

    resp = httpx.post(f"{fresh_sim.base_url}/_sim/config", content=body(), verify=fresh_sim.ssl_context())
    assert resp.status_code == 200 and resp.json()["latency_ms"] == 0


def test_admin_endpoints(fresh_sim):
    base, verify = f"{fresh_sim.base_url}/_sim", fresh_sim.ssl_context()
    tenants = httpx.get(f"{base}/tenants", verify=verify).json()["value"]
    assert tenants[0]["id"] == fresh_sim.tenant.id and tenants[0]["counts"]["users"] == fresh_sim.tenant.user_count()
    users = httpx.get(f"{base}/tenants/{fresh_sim.tenant.initial_domain}/state/users", verify=verify).json()["value"]
    assert len(users) == fresh_sim.tenant.user_count()
    assert httpx.get(f"{base}/tenants/{fresh_sim.tenant.id}/state/nonsense", verify=verify).status_code == 400
    assert httpx.get(f"{base}/tenants/{uuid.uuid4()}/state/users", verify=verify).status_code == 404

    app_id = fresh_sim.credentials()["app_id"]
    changed = httpx.post(f"{base}/apps/{app_id}", json={"roles": ["User.Read.All"], "token_lifetime": 60}, verify=verify)
    assert changed.status_code == 200 and changed.json()["roles"] == ["User.Read.All"]
    assert "value" not in json.dumps(changed.json()["secrets"])  # secret values never leave the simulator
    assert fresh_sim.tenant.apps[app_id].token_lifetime == 60
    assert httpx.post(f"{base}/apps/{app_id}", json={"colour": "red"}, verify=verify).status_code == 400
    assert httpx.post(f"{base}/apps/{uuid.uuid4()}", json={}, verify=verify).status_code == 404

    injected = httpx.post(f"{base}/faults", json=[{"kind": "503", "path": "/organization"}], verify=verify)
    assert injected.status_code == 201
    assert httpx.get(f"{base}/faults", verify=verify).json()["value"][0]["kind"] == "503"
    assert httpx.delete(f"{base}/faults", verify=verify).json() == {"value": []}
    assert httpx.post(f"{base}/faults", json={"kind": "500"}, verify=verify).status_code == 400

    config = httpx.post(f"{base}/config", json={"throttle": "documented", "throttle_scale": 10}, verify=verify).json()
    assert config["throttle"] == "documented" and config["throttle_scale"] == 10
    assert httpx.get(f"{base}/limits", verify=verify).json()["value"][0]["limit"] == 35000
    assert httpx.post(f"{base}/config", json={"throttle": "bogus"}, verify=verify).status_code == 400

    expired = httpx.post(f"{base}/tenants/{fresh_sim.tenant.id}/expire-delta", json={"mode": "reset410"}, verify=verify)
    assert expired.status_code == 200
    assert httpx.post(f"{base}/tenants/{fresh_sim.tenant.id}/expire-delta", json={"mode": "x"}, verify=verify).status_code == 400
    assert httpx.put(f"{base}/health", verify=verify).status_code == 405

    assert httpx.get(f"{base}/journal", params={"since": 0}, verify=verify).json() == {"value": fresh_sim.journal()}
    assert httpx.post(f"{base}/stats/reset", verify=verify).status_code == 200
    stats = httpx.get(f"{base}/stats", params={"timestamps": "false"}, verify=verify).json()
    assert "timestamps" not in stats["routes"]["admin"]


def test_admin_answers_loopback_clients_only(sim):
    resp = sim.simulator.handle(SimRequest("GET", "/_sim/health"), client_host="192.0.2.10")
    assert resp.status == 403
    assert sim.simulator.handle(SimRequest("GET", "/_sim/health"), client_host="::1").status == 200


def test_statistics_count_routes_and_peak_concurrency(fresh_sim):
    fresh_sim.reset_stats()
    fresh_sim.configure(latency_ms=150)
    token = fresh_sim.token()

    def call(_: int) -> int:
        return httpx.get(f"{fresh_sim.base_url}/v1.0/organization", headers={"Authorization": f"Bearer {token}"},
                         verify=fresh_sim.ssl_context()).status_code  # fmt: skip

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(call, range(6))) == {200}
    stats = fresh_sim.stats()
    graph = stats["routes"]["graph"]
    assert graph["count"] == 6 and graph["statuses"] == {"200": 6} and len(graph["timestamps"]) == 6
    assert graph["max_in_1s"] == 6
    assert stats["peak_concurrency"] >= 3
    assert stats["limit_classes"] == {"identity": 6}
    assert stats["routes"]["identity"]["count"] == 1


def test_stop_closes_idle_keep_alive_connections():
    with run_simulator(spec=TenantSpec(users=10, teams=1, seed=9)) as small:
        client = httpx.Client(verify=small.ssl_context())
        assert client.get(f"{small.base_url}/_sim/health").status_code == 200  # leaves an idle keep-alive connection
        port = small.server.port
    assert not [t for t in threading.enumerate() if t.name.startswith(f"simulator-{port}-")]
    with pytest.raises(httpx.TransportError):
        client.get(f"{small.base_url}/_sim/health")
    client.close()


def test_ipv6_loopback():
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        with run_simulator(spec=TenantSpec(users=10, teams=1, seed=9), host="::1") as v6:
            assert v6.base_url.startswith("https://[::1]:")
            assert httpx.get(f"{v6.base_url}/_sim/health", verify=v6.ssl_context()).status_code == 200
    except OSError as exc:  # IPv6 disabled in the kernel
        pytest.skip(f"cannot bind ::1: {exc}")

"""Fault injection over HTTPS: scripted 429/503/504, connection resets before and after a write (the write is applied
never / exactly once), random faults, and latency."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest

from teamsops.simulator.faults import FaultInjector


@pytest.fixture
def graph(fresh_sim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{fresh_sim.base_url}/v1.0", verify=fresh_sim.ssl_context(),
                      headers={"Authorization": f"Bearer {fresh_sim.token()}"}) as http:  # fmt: skip
        yield http


def _plain_member(sim) -> dict:
    """A member user who holds no directory role (so app-only writes to it are allowed)."""
    privileged = {a["principalId"] for a in sim.tenant.snapshot("role_assignments")}
    return next(u for u in sim.tenant.snapshot("users") if u["userType"] == "Member" and u["id"] not in privileged)


@pytest.mark.parametrize(("kind", "code"), [("503", "serviceNotAvailable"), ("504", "UnknownError")])
def test_scripted_5xx_then_success(fresh_sim, graph, kind, code):
    fresh_sim.inject(kind, times=2, path=r"^/v1\.0/organization$", retry_after=0.25)
    for _ in range(2):
        resp = graph.get("/organization")
        assert resp.status_code == int(kind)
        assert resp.headers["retry-after"] == "0.25"
        error = resp.json()["error"]
        assert error["code"] == code
        assert error["innerError"]["request-id"] == resp.headers["request-id"]
    assert graph.get("/organization").status_code == 200


def test_scripted_429_matches_method_and_path(fresh_sim, graph):
    fresh_sim.inject("429", path=r"/organization$", method="POST", retry_after=3)
    assert graph.get("/organization").status_code == 200  # GET does not match the rule
    fresh_sim.inject("429", path=r"/organization$", retry_after=3)
    resp = graph.get("/organization")
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert resp.json()["error"]["code"] == "TooManyRequests"
    assert fresh_sim.simulator.faults.pending() == [
        {"kind": "429", "remaining": 1, "path": "/organization$", "method": "POST", "retry_after": 3.0}]


def _raw_tls_exchange(sim, request: bytes) -> str:
    """Send one request over TLS driven through memory BIOs, so the TCP-level outcome stays visible (Python's ssl
    sockets report a peer RST during a TLS read as a plain EOF). Returns "reset", "eof" or "response"."""
    context = ssl.create_default_context(cafile=sim.ca_path)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    sock = socket.create_connection(("127.0.0.1", sim.server.port), timeout=5)

    def flush() -> None:
        if outgoing.pending:
            sock.sendall(outgoing.read())

    try:
        while True:  # handshake
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                incoming.write(sock.recv(65536))
        tls.write(request)
        flush()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return "eof"
            incoming.write(chunk)
            try:
                if tls.read(65536):
                    return "response"
            except ssl.SSLWantReadError:  # e.g. TLS 1.3 session tickets: no application data yet
                continue
    except ConnectionResetError:
        return "reset"
    finally:
        sock.close()


def test_reset_before_is_a_tcp_reset_and_applies_nothing(fresh_sim, graph):
    user = _plain_member(fresh_sim)
    token = graph.headers["Authorization"]
    fresh_sim.inject("reset_before", path=rf"/users/{user['id']}$", method="PATCH")
    body = b'{"jobTitle":"Never applied"}'
    request = (f"PATCH /v1.0/users/{user['id']} HTTP/1.1\r\nHost: 127.0.0.1:{fresh_sim.server.port}\r\n"
               f"Authorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    journal_before = len(fresh_sim.journal())
    assert _raw_tls_exchange(fresh_sim, request + body) == "reset"
    assert len(fresh_sim.journal()) == journal_before
    current = graph.get(f"/users/{user['id']}", params={"$select": "jobTitle"}).json()
    assert current["jobTitle"] == user["jobTitle"]
    assert fresh_sim.stats()["resets"] == 1


def test_reset_after_applies_the_write_exactly_once(fresh_sim, graph):
    user = _plain_member(fresh_sim)
    fresh_sim.inject("reset_after", path=rf"/users/{user['id']}$", method="PATCH")
    journal_before = len(fresh_sim.journal())
    with pytest.raises(httpx.TransportError):
        graph.patch(f"/users/{user['id']}", json={"jobTitle": "Applied once"})
    entries = fresh_sim.journal(since=journal_before)
    assert [(e["method"], e["path"]) for e in entries] == [("PATCH", f"/v1.0/users/{user['id']}")]
    # The client cannot know whether the write happened; re-reading shows the real state.
    assert graph.get(f"/users/{user['id']}", params={"$select": "jobTitle"}).json()["jobTitle"] == "Applied once"
    retry = graph.patch(f"/users/{user['id']}", json={"jobTitle": "Applied once"})  # an idempotent retry
    assert retry.status_code == 204
    assert len(fresh_sim.journal(since=journal_before)) == 2


def test_random_faults_and_admin_is_never_faulted(fresh_sim, graph):
    fresh_sim.configure(fault_rate=1.0)
    statuses = {graph.get("/organization").status_code for _ in range(12)}
    assert statuses <= {503, 504} and statuses
    health = httpx.get(f"{fresh_sim.base_url}/_sim/health", verify=fresh_sim.ssl_context())
    assert health.status_code == 200
    fresh_sim.configure(fault_rate=0.0)
    assert graph.get("/organization").status_code == 200


def test_latency_is_injected(fresh_sim, graph):
    graph.get("/organization")  # warm the connection
    fresh_sim.configure(latency_ms=150, jitter_ms=0)
    started = time.perf_counter()
    assert graph.get("/organization").status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_a_request_is_counted_half_way_through_its_latency(fresh_sim, graph):
    """Graph counts and throttles a request when it arrives: half of the latency is the way there, half the answer's
    way back (counting after the whole latency would make arrivals as jittery as round trips)."""
    graph.get("/organization")  # warm the connection
    fresh_sim.configure(latency_ms=400, jitter_ms=0)
    fresh_sim.simulator.stats.reset()
    sent = time.time()
    assert graph.get("/organization").status_code == 200
    answered = time.time()
    (arrived,) = fresh_sim.simulator.stats.snapshot()["routes"]["graph"]["timestamps"]
    assert 0.19 <= arrived - sent <= 0.3, arrived - sent
    assert answered - arrived >= 0.19


def test_injector_validates_and_is_deterministic():
    injector = FaultInjector(latency_ms=100, jitter_ms=50, seed=7)
    delays = [injector.delay_seconds() for _ in range(200)]
    assert all(0.05 <= d <= 0.15 for d in delays) and len(set(delays)) > 100
    twin = FaultInjector(latency_ms=100, jitter_ms=50, seed=7)
    assert delays == [twin.delay_seconds() for _ in range(200)]  # same seed, same latencies
    with pytest.raises(ValueError, match="unknown fault kind"):
        injector.inject("500")
    with pytest.raises(ValueError, match="fault_rate"):
        injector.configure(fault_rate=2)
    rule = injector.inject("503", times=2, path="/users")
    assert injector.take("GET", "/v1.0/groups") is None
    assert injector.take("GET", "/v1.0/users") is rule and rule.remaining == 1
    assert injector.take("GET", "/v1.0/users") is rule and injector.pending() == []

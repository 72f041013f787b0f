"""Retries against the simulator over real HTTPS: 429 / 503 / 504 with Retry-After, connection resets before and
after a write (never a double apply of a non-idempotent POST), budget exhaustion, and one 401 token refresh."""

from __future__ import annotations

import threading
import time

import pytest

from teamsops.graph import GraphAuthError, GraphConnectionError, GraphServerError, GraphThrottled
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.testing import run_simulator

USERS = r"^/v1\.0/users$"


@pytest.fixture
def faults(sim):
    """Inject faults into the shared simulator; whatever a test leaves unconsumed is cleared (and reported)."""
    yield sim
    leftover = sim.simulator.faults.pending()
    sim.simulator.faults.clear()
    assert not leftover, f"scripted faults were not consumed: {leftover}"


@pytest.mark.parametrize("kind", ["429", "503", "504"])
def test_retry_after_then_success(faults, make_client, sleeper, kind):
    client = make_client(faults, sleep=sleeper)
    faults.inject(kind, times=2, path=USERS, method="GET", retry_after=0.15)
    page = client.get("/users", params={"$top": "5", "$select": "id"})
    assert len(page["value"]) == 5
    assert sleeper.waits == [0.15, 0.15]  # the server's Retry-After, not our backoff


def test_retry_budget_exhausted_raises_typed_error_with_attempts(faults, make_client, sleeper):
    client = make_client(faults, sleep=sleeper, max_attempts=3)
    faults.inject("429", times=3, path=USERS, retry_after=0.05)
    with pytest.raises(GraphThrottled) as info:
        client.get("/users", params={"$top": "1"})
    err = info.value
    assert err.status == 429 and err.attempts == 3 and err.retry_after == pytest.approx(0.05)
    assert err.total_wait == pytest.approx(0.1)
    assert err.request_id and err.client_request_id
    assert "after 3 attempts" in str(err) and "throttling" in (err.advice or "")


def test_retry_after_beyond_the_wait_budget_is_not_waited(faults, make_client, sleeper):
    client = make_client(faults, sleep=sleeper, max_retry_wait=2)
    faults.inject("503", times=1, path=USERS, retry_after=30)
    with pytest.raises(GraphServerError) as info:
        client.get("/users")
    assert sleeper.waits == [] and info.value.attempts == 1 and info.value.retry_after == 30
    assert info.value.code == "serviceNotAvailable"


def test_reset_before_a_read_is_retried(faults, make_client, no_sleep):
    client = make_client(faults, sleep=no_sleep)
    faults.inject("reset_before", times=1, path=USERS)
    assert client.get("/users", params={"$top": "2"})["value"]
    assert len(no_sleep.waits) == 1  # one backoff step after the reset


def _new_user(tenant, nickname):
    return {"accountEnabled": True, "displayName": f"Test {nickname}", "mailNickname": nickname,
            "userPrincipalName": f"{nickname}@{tenant.initial_domain}",
            "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "xWwvJ]6NMw+bWH-d"}}


def _journal_for(sim, method, fragment):
    return [e for e in sim.journal() if e["method"] == method and fragment.lower() in e["path"].lower()]


@pytest.mark.parametrize("kind", ["reset_before", "reset_after"])
def test_non_idempotent_post_cut_mid_flight_is_never_resent(fresh_sim, make_client, no_sleep, kind):
    client = make_client(fresh_sim, sleep=no_sleep)
    fresh_sim.inject(kind, times=1, path=USERS, method="POST")
    nickname = f"cut{kind.replace('_', '')}"
    with pytest.raises(GraphConnectionError) as info:
        client.post("/users", json=_new_user(fresh_sim.tenant, nickname))
    err = info.value
    assert err.outcome_unknown and "outcome is unknown" in str(err) and "verify" in (err.advice or "")
    assert no_sleep.waits == []  # not re-sent
    created = [e for e in _journal_for(fresh_sim, "POST", "/users") if e["status"] == 201]
    upn = f"{nickname}@{fresh_sim.tenant.initial_domain}"
    if kind == "reset_before":
        assert created == []  # nothing was applied
        with pytest.raises(Exception):
            client.get(f"/users/{upn}")
    else:
        assert len(created) == 1  # applied exactly once; the client saw no answer
        assert client.get(f"/users/{upn}", params={"$select": "id,userPrincipalName"})["userPrincipalName"] == upn


def test_idempotent_writes_are_retried_after_a_reset(fresh_sim, make_client, no_sleep):
    client = make_client(fresh_sim, sleep=no_sleep)
    user = next(u for u in client.paginate("/users", params={"$select": "id,accountEnabled,userType"})
                if u["accountEnabled"] and u["userType"] == "Member"
                and not fresh_sim.tenant.holds_admin_role(u["id"]))  # app-only cannot disable admins
    before = len(fresh_sim.journal())
    fresh_sim.inject("reset_after", times=1, path=f"/users/{user['id']}$", method="PATCH")
    assert client.patch(f"/users/{user['id']}", json={"accountEnabled": False}) is None
    assert client.get(f"/users/{user['id']}", params={"$select": "accountEnabled"})["accountEnabled"] is False
    patches = [e for e in fresh_sim.journal()[before:] if e["method"] == "PATCH"]
    assert len(patches) == 2 and len(no_sleep.waits) == 1  # re-sent once; a PATCH applied twice is the same state

    fresh_sim.inject("reset_after", times=1, path="/revokeSignInSessions$", method="POST")
    result = client.post(f"/users/{user['id']}/revokeSignInSessions")
    assert result is None or result.get("value") is True


def test_connection_refused_exhausts_the_budget(make_client, sim, no_sleep):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(sim, sleep=no_sleep, max_attempts=3, settings={"graph_url": f"https://127.0.0.1:{port}"})
    with pytest.raises(GraphConnectionError) as info:
        client.get("/users")
    assert info.value.attempts == 3 and not info.value.outcome_unknown
    assert no_sleep.waits == [1.0, 2.0]  # exponential backoff (jitter disabled in these tests)
    assert f"127.0.0.1:{port}" in str(info.value)


def test_one_token_refresh_after_401(fresh_sim, make_client):
    """A token that expires while its request is in flight: Graph answers 401 and the client gets ONE new token.

    The app's tokens live 5 s. When the client reports its first token (``on_token``, the hook Airflow uses to mask
    tokens), the simulator is made to delay requests by 12 s (6 s on the way there, where the token is checked, and 6
    s back); as soon as that Graph request is in flight the delay is removed again, so only this request arrives with
    an expired token.
    """
    creds = fresh_sim.credentials()
    fresh_sim.set_app(creds["app_id"], token_lifetime=5)
    fresh_sim.reset_stats()
    tokens: list[str] = []

    def slow_down_first_request(token: str) -> None:
        tokens.append(token)
        if len(tokens) == 1:
            fresh_sim.configure(latency_ms=12000)
            threading.Thread(target=_restore_latency_when_in_flight, args=(fresh_sim,), daemon=True).start()

    client = make_client(fresh_sim, on_token=slow_down_first_request)
    assert client.get("/organization")["value"]
    statuses = fresh_sim.stats()["routes"]["graph"]["statuses"]
    assert statuses == {"401": 1, "200": 1}
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # each new token reported once (for masking)


def _restore_latency_when_in_flight(sim) -> None:
    deadline = time.monotonic() + 10
    while sim.stats()["in_flight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    sim.configure(latency_ms=0)


def test_a_token_graph_keeps_rejecting_gives_up_after_one_refresh(sim, make_client):
    """Tokens from one identity platform presented to another Graph (e.g. a cloud mix-up): 401, one refresh, 401."""
    other_spec = TenantSpec(users=20, teams=2, seed=3, tenant_id="0b1d0000-0000-4000-8000-000000000002",
                            domain="fabrikam-test.onmicrosoft.com")
    with run_simulator(spec=other_spec) as other:
        other.reset_stats()
        tokens: list[str] = []
        client = make_client(sim, settings={"graph_url": other.base_url}, on_token=tokens.append)
        with pytest.raises(GraphAuthError) as info:
            client.get("/organization")
        assert other.stats()["routes"]["graph"]["statuses"] == {"401": 2}
    err = info.value
    assert err.status == 401 and err.code == "InvalidAuthenticationToken"
    assert "same cloud" in str(err) and len(tokens) == 2

"""Throttling: the endpoint -> limit mapping, the limiter arithmetic (with a fake clock), thread safety, and the 429s
a client sees over HTTPS (scaled-down limits so every test stays well under a few seconds)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from teamsops.simulator.throttling import (
    TEAMS_LIMITS,
    Classification,
    SlidingWindow,
    Throttler,
    TokenBucket,
    classify,
    classify_bot,
    format_retry_after,
    limits_table,
    scaled_window,
    size_class,
    write_cost,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- mapping ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("GET", "/v1.0/users", {}, ("identity", 2, None)),
    ("GET", "/v1.0/users", {"$select": "id", "$top": "999"}, ("identity", 1, None)),
    ("GET", "/v1.0/users", {"$select": "id", "$top": "5"}, ("identity", 1, None)),  # never below 1
    ("GET", "/v1.0/users/u1", {"$expand": "manager"}, ("identity", 2, None)),
    ("GET", "/v1.0/subscribedSkus", {}, ("identity", 3, None)),
    ("GET", "/v1.0/groups/g1/members/microsoft.graph.user", {}, ("identity", 3, None)),
    ("GET", "/v1.0/users/u1/memberOf", {}, ("identity", 2, None)),
    ("POST", "/v1.0/directoryObjects/getByIds", {}, ("identity", 3, None)),
    ("PATCH", "/v1.0/users/u1", {}, ("identity", 1, None)),
    ("GET", "/v1.0/teams/t1", {}, ("teams.get_team", 1, "t1")),
    ("GET", "/v1.0/teams/t1/members", {}, ("teams.get_members", 1, "t1")),
    ("POST", "/v1.0/teams/t1/members", {}, ("teams.post_members", 1, "t1")),
    ("DELETE", "/v1.0/teams/t1/members/m1", {}, ("teams.other", 1, "t1")),
    ("GET", "/v1.0/teams/t1/channels", {}, ("teams.get_channels", 1, "t1")),
    ("GET", "/v1.0/teams/t1/installedApps", {}, ("teams.get_installed_apps", 1, "t1")),
    ("GET", "/v1.0/users/u1/teamwork/installedApps", {}, ("teams.get_installed_apps", 1, None)),
    ("GET", "/v1.0/users/u1/joinedTeams", {}, ("teams.get_joined_teams", 1, None)),
    ("GET", "/v1.0/teams", {}, ("teams.other_get", 1, None)),
    ("GET", "/v1.0/groups/g1/team", {}, ("teams.get_team", 1, "g1")),
])  # fmt: skip
def test_classify(method, path, query, expected):
    assert classify(method, path, query) == Classification(*expected)
    assert classify(method, path.removeprefix("/v1.0"), query) == Classification(*expected)


def test_write_cost_and_bot_classes():
    assert write_cost("PATCH", "/v1.0/users/u1") == 1
    assert write_cost("GET", "/v1.0/users") == 0
    assert write_cost("POST", "/v1.0/directoryObjects/getByIds") == 0  # read-like action
    assert classify_bot("POST", "/v3/conversations") == ("bot.create", None)
    assert classify_bot("POST", "/v3/conversations/a:1/activities") == ("bot.send", "a:1")
    assert classify_bot("GET", "/v3/conversations/a:1/pagedmembers") == ("bot.get", "a:1")


def test_size_classes_and_scaling():
    assert [size_class(n) for n in (0, 49, 50, 500, 501)] == ["S", "S", "M", "M", "L"]
    assert scaled_window(60, 1.0, 1.0) == (60, 1.0)
    assert scaled_window(8, 2.0, 10) == (80, 2.0)
    limit, window = scaled_window(60, 1.0, 0.01)  # 0.6 rps => 1 request per 1.667 s
    assert limit == 1 and window == pytest.approx(1 / 0.6)
    limit, window = scaled_window(30, 1.0, 0.05)  # 1.5 rps => 1 per 0.667 s, the rate is kept exactly
    assert limit / window == pytest.approx(1.5)
    with pytest.raises(ValueError):
        scaled_window(1, 1, 0)
    assert format_retry_after(2.0) == "2" and format_retry_after(2.1284) == "2.128"


def test_limits_table_covers_the_documented_rows():
    rows = limits_table()
    def find(scope, limit_class):
        return [r for r in rows if r["scope"] == scope and r["limit_class"] == limit_class]
    assert {r["limit"] for r in find("app+tenant", "identity")} == {3500, 5000, 8000}
    assert find("app+tenant", "teams.get_members")[0]["limit"] == 60
    assert find("app+tenant", "teams.get_installed_apps")[0]["limit"] == 30
    assert find("app+team", "teams.*")[0]["limit"] == 4
    assert find("app+tenant", "identity.write")[0] == {**find("app+tenant", "identity.write")[0], "limit": 3000,
                                                       "window_s": 150.0}  # fmt: skip
    assert {r["limit"] for r in find("app+conversation", "bot.send")} == {7, 8, 60, 1800}
    assert set(TEAMS_LIMITS) <= {r["limit_class"] for r in rows}
    assert limits_table(10)[0]["limit"] == 35000


# --- primitives -------------------------------------------------------------------------------------------------------
def test_sliding_window_holds_in_every_window():
    window = SlidingWindow(limit=3, window_s=1.0)
    for t in (0.0, 0.1, 0.2):
        assert window.wait(t) == 0
        window.take(t)
    assert window.wait(0.5) == pytest.approx(0.5)  # the event at 0.0 leaves at 1.0
    assert window.wait(1.0) == 0
    window.take(1.0)
    assert window.wait(1.05) == pytest.approx(0.05)  # 0.1, 0.2 and 1.0 are inside (0.05, 1.05]


def test_token_bucket_refills_continuously():
    bucket = TokenBucket(capacity=10, window_s=10.0, now=0.0)  # 1 token per second
    bucket.take(10, 0.0)
    assert bucket.wait(2, 0.0) == pytest.approx(2.0)
    assert bucket.wait(2, 1.5) == pytest.approx(0.5)
    assert bucket.wait(2, 2.0) == 0
    assert bucket.wait(50, 2.0) == pytest.approx(8.0)  # a cost above capacity waits for a full bucket


def test_identity_bucket_by_tenant_size_and_recovery():
    clock = FakeClock()
    throttler = Throttler("documented", 0.01, clock=clock)  # M tenant: 50 RU per 10 s
    allowed = 0
    while throttler.check_graph("app", "t", 100, "GET", "/v1.0/users/u", {"$select": "id"}).allowed:
        allowed += 1  # cost 1 each
        clock.now += 0.06  # slower than the app-wide rps limit (2000 x 0.01 = 20/s): only the RU bucket binds
    # 50 RU to start, each request costs 1 and 0.06 s of refill (5 RU/s) gives back 0.3: 50 - 0.7 k >= 1 => k <= 70
    assert allowed == 71
    refused = throttler.check_graph("app", "t", 100, "GET", "/v1.0/users/u", {"$select": "id"})
    assert refused.headers["x-ms-throttle-scope"] == "Tenant_Application/ReadWrite/app/t"
    assert refused.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    clock.now += refused.retry_after
    assert throttler.check_graph("app", "t", 100, "GET", "/v1.0/users/u", {"$select": "id"}).allowed
    assert throttler.check_graph("app", "other-tenant", 100, "GET", "/v1.0/users/u", {}).allowed  # own bucket


def test_write_quota_is_separate():
    clock = FakeClock()
    throttler = Throttler("documented", 0.001, clock=clock)  # writes: 3 per 150 s; RU (L): 8 per 10 s
    for _ in range(3):
        assert throttler.check_graph("app", "t", 1000, "PATCH", "/v1.0/users/u", {}).allowed
        clock.now += 2
    refused = throttler.check_graph("app", "t", 1000, "PATCH", "/v1.0/users/u", {})
    assert not refused.allowed and refused.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert throttler.check_graph("app", "t", 1000, "GET", "/v1.0/users/u", {}).allowed  # reads continue


def test_per_team_limit_is_shared_by_every_teams_call_on_that_team():
    clock = FakeClock()
    throttler = Throttler("documented", 1.0, clock=clock)
    results = [throttler.check_graph("app", "t", 100, "GET", path, {}).allowed
               for path in ["/v1.0/teams/x/members", "/v1.0/teams/x/channels", "/v1.0/teams/x", "/v1.0/teams/x/installedApps",
                            "/v1.0/teams/x/members"]]  # fmt: skip
    assert results == [True, True, True, True, False]  # 4 rps per app per team
    assert throttler.check_graph("app", "t", 100, "GET", "/v1.0/teams/y/members", {}).allowed
    clock.now += 1.0
    assert throttler.check_graph("app", "t", 100, "GET", "/v1.0/teams/x/members", {}).allowed


def test_concurrent_checks_never_overspend():
    clock = FakeClock()  # time stands still: exactly the window's limit may pass
    throttler = Throttler("documented", 1.0, clock=clock)
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(50):
            ok = throttler.check_graph("app", "t", 100, "GET", "/v1.0/users/u1/joinedTeams", {}).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 30  # GET joinedTeams: 30 rps per app per tenant


def test_off_profile_reports_cost_but_never_refuses():
    throttler = Throttler("off")
    decisions = [throttler.check_graph("a", "t", 10, "GET", "/v1.0/users", {}) for _ in range(500)]
    assert all(d.allowed for d in decisions)
    assert decisions[0].headers == {"x-ms-resource-unit": "2"}
    with pytest.raises(ValueError, match="unknown throttle profile"):
        Throttler("aggressive")


# --- over HTTPS -------------------------------------------------------------------------------------------------------
def test_identity_429_then_retry_after(fresh_sim):
    fresh_sim.configure(throttle="documented", throttle_scale=0.004)  # M tenant: 20 RU per 10 s, 8 req/s app-wide
    with httpx.Client(base_url=fresh_sim.base_url, verify=fresh_sim.ssl_context(),
                      headers={"Authorization": f"Bearer {fresh_sim.token()}"}) as http:  # fmt: skip

        def get(path: str, **params: str) -> httpx.Response:
            time.sleep(0.15)  # at most 7 requests in any second: the RU bucket, not the app-wide rps, must run out
            return http.get(path, params=params)

        assert get("/v1.0/users", **{"$select": "id", "$top": "999"}).headers["x-ms-resource-unit"] == "1"
        assert get("/v1.0/users").headers["x-ms-resource-unit"] == "2"
        for _ in range(20):
            resp = get("/v1.0/subscribedSkus")  # 3 RU each
            if resp.status_code == 429:
                break
            assert resp.headers["x-ms-resource-unit"] == "3"
        assert resp.status_code == 429
        assert resp.headers["x-ms-throttle-scope"] == (
            f"Tenant_Application/ReadWrite/{fresh_sim.credentials()['app_id']}/{fresh_sim.tenant.id}")
        assert resp.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
        body = resp.json()["error"]
        assert body["code"] == "TooManyRequests" and body["message"] == "Please retry again later."
        assert body["innerError"]["status"] == "429" and body["innerError"]["request-id"] == resp.headers["request-id"]
        wait = float(resp.headers["retry-after"])
        assert 0 < wait <= 1.5  # 2 RU per second refill, a request needs at most 3
        time.sleep(wait)
        assert http.get("/v1.0/subscribedSkus").status_code == 200
    assert fresh_sim.stats()["throttled"] >= 1


def test_teams_per_team_429(fresh_sim):
    team_id = fresh_sim.tenant.snapshot("team_members")[0]["team_id"]
    fresh_sim.configure(throttle="documented", throttle_scale=0.5)  # 2 requests per second on one team
    with httpx.Client(base_url=fresh_sim.base_url, verify=fresh_sim.ssl_context(),
                      headers={"Authorization": f"Bearer {fresh_sim.token()}"}) as http:  # fmt: skip
        statuses = [http.get(f"/v1.0/teams/{team_id}/members").status_code for _ in range(3)]
        assert statuses[:2] == [200, 200] and statuses[2] == 429
        resp = http.get(f"/v1.0/teams/{team_id}/members")
        assert resp.status_code == 429 and "x-ms-throttle-scope" not in resp.headers
        time.sleep(float(resp.headers["retry-after"]))
        assert http.get(f"/v1.0/teams/{team_id}/members").status_code == 200
    stats = fresh_sim.stats()
    assert stats["limit_classes"]["teams.get_members"] >= 5
    assert stats["routes"]["graph"]["statuses"]["429"] >= 2


def test_bot_conversation_429(fresh_sim):
    fresh_sim.configure(throttle="documented", throttle_scale=0.3)  # 2 per second per conversation (7 x 0.3)
    with httpx.Client(base_url=fresh_sim.base_url, verify=fresh_sim.ssl_context(),
                      headers={"Authorization": f"Bearer {fresh_sim.token(bot=True)}"}) as http:  # fmt: skip
        statuses = [http.post("/teams/v3/conversations/a:unknown/activities", json={"type": "message", "text": "hi"})
                    for _ in range(4)]  # fmt: skip
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled, [r.status_code for r in statuses]
    assert throttled[0].json() == {"error": {"code": "Throttled", "message": "Too many requests."}}
    assert float(throttled[0].headers["retry-after"]) > 0
    assert throttled[0].headers["x-correlating-operationid"]

"""``POST /v1.0/$batch`` over HTTPS: envelope validation, dependsOn/424, per-item throttling and faults, writes
applied once, base64 for non-JSON bodies, responses in any order."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest


def _client(sim) -> httpx.Client:
    return httpx.Client(base_url=f"{sim.base_url}/v1.0", verify=sim.ssl_context(),
                        headers={"Authorization": f"Bearer {sim.token()}"})  # fmt: skip


@pytest.fixture(scope="module")
def graph(sim) -> Iterator[httpx.Client]:
    with _client(sim) as http:
        yield http


def _by_id(resp: httpx.Response) -> dict[str, dict]:
    assert resp.status_code == 200, resp.text
    return {item["id"]: item for item in resp.json()["responses"]}


def test_reads_in_a_batch(sim, graph):
    user = sim.tenant.snapshot("users")[0]
    resp = graph.post("/$batch", json={"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{user['id']}?$select=id,accountEnabled"},
        {"id": "2", "method": "GET", "url": "organization"},  # no leading slash is fine
        {"id": "3", "method": "GET", "url": f"/users/{uuid.uuid4()}"},
    ]})  # fmt: skip
    assert resp.headers["request-id"] and resp.headers["content-type"].startswith("application/json")
    items = _by_id(resp)
    assert items["1"]["status"] == 200 and items["1"]["body"]["id"] == user["id"]
    assert items["1"]["headers"]["Content-Type"].startswith("application/json;odata.metadata=minimal")
    assert items["1"]["headers"]["x-ms-resource-unit"] == "1"
    assert items["2"]["status"] == 200 and items["2"]["body"]["value"][0]["id"] == sim.tenant.id
    assert items["3"]["status"] == 404 and items["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"


def test_non_json_bodies_are_base64(sim, graph):
    resp = graph.post("/$batch", json={"requests": [
        {"id": "count", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}}]})
    item = _by_id(resp)["count"]
    assert item["status"] == 200
    assert int(base64.b64decode(item["body"])) == sim.tenant.user_count()


@pytest.mark.parametrize(("requests", "message"), [
    ([{"id": str(i), "method": "GET", "url": "/organization"} for i in range(21)], "exceeds the maximum of 20"),
    ([{"id": "a", "method": "GET", "url": "/organization"}, {"id": "A", "method": "GET", "url": "/organization"}],
     "more than once"),
    ([{"id": "1", "method": "GET"}], "'url'"),
    ([{"id": "1", "url": "/organization"}], "'method'"),
    ([{"method": "GET", "url": "/organization"}], "'id'"),
    ([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/organization"}], "absolute url"),
    ([{"id": "1", "method": "PATCH", "url": "/users/x", "body": {"jobTitle": "x"}}], "Content-Type"),
    ([{"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["9"]}], "unknown id"),
    ([{"id": "1", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
      {"id": "2", "method": "GET", "url": "/organization", "dependsOn": ["1"]}], "circular"),
    ([], "non-empty 'requests'"),
])  # fmt: skip
def test_malformed_batches_are_refused_whole(graph, requests, message):
    resp = graph.post("/$batch", json={"requests": requests})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "BadRequest" and message in error["message"]


def test_twenty_is_allowed(graph):
    resp = graph.post("/$batch", json={"requests": [{"id": str(i), "method": "GET", "url": "/organization"}
                                                    for i in range(20)]})  # fmt: skip
    items = _by_id(resp)
    assert len(items) == 20 and {i["status"] for i in items.values()} == {200}
    assert [i["id"] for i in resp.json()["responses"]] != [str(i) for i in range(20)]  # any order; correlate by id


def test_depends_on_failure_gives_424_and_writes_apply_once(fresh_sim):
    privileged = {a["principalId"] for a in fresh_sim.tenant.snapshot("role_assignments")}
    user = next(u for u in fresh_sim.tenant.snapshot("users") if u["userType"] == "Member" and u["id"] not in privileged)
    json_headers = {"Content-Type": "application/json"}
    before = len(fresh_sim.journal())
    with _client(fresh_sim) as http:
        resp = http.post("/$batch", json={"requests": [
            {"id": "missing", "method": "GET", "url": f"/users/{uuid.uuid4()}"},
            {"id": "after-missing", "dependsOn": ["missing"], "method": "PATCH", "url": f"/users/{user['id']}",
             "body": {"jobTitle": "Should not apply"}, "headers": json_headers},
            {"id": "write", "method": "PATCH", "url": f"/users/{user['id']}", "body": {"jobTitle": "Batch title"},
             "headers": json_headers},
            {"id": "read", "dependsOn": ["write"], "method": "GET", "url": f"/users/{user['id']}?$select=jobTitle"},
        ]})  # fmt: skip
    items = _by_id(resp)
    assert items["missing"]["status"] == 404
    assert items["after-missing"]["status"] == 424
    assert items["after-missing"]["body"]["error"]["code"] == "FailedDependency"
    assert items["write"]["status"] == 204 and "body" not in items["write"]
    assert items["read"]["status"] == 200 and items["read"]["body"]["jobTitle"] == "Batch title"
    writes = fresh_sim.journal(since=before)
    assert [(e["method"], e["path"]) for e in writes] == [("PATCH", f"/v1.0/users/{user['id']}")]


def test_items_are_throttled_one_by_one(fresh_sim):
    team_id = fresh_sim.tenant.snapshot("team_members")[0]["team_id"]
    fresh_sim.configure(throttle="documented", throttle_scale=0.5)  # 2 requests per second on one team
    with _client(fresh_sim) as http:
        resp = http.post("/$batch", json={"requests": [
            {"id": str(i), "method": "GET", "url": f"/teams/{team_id}/members"} for i in range(5)]})
    items = _by_id(resp)
    statuses = sorted(i["status"] for i in items.values())
    assert statuses == [200, 200, 429, 429, 429]
    throttled = [i for i in items.values() if i["status"] == 429]
    assert all(float(i["headers"]["Retry-After"]) > 0 for i in throttled)
    assert throttled[0]["body"]["error"]["code"] == "TooManyRequests"


def test_faults_hit_single_items_and_reset_before_applies_nothing(fresh_sim):
    privileged = {a["principalId"] for a in fresh_sim.tenant.snapshot("role_assignments")}
    user = next(u for u in fresh_sim.tenant.snapshot("users") if u["userType"] == "Member" and u["id"] not in privileged)
    with _client(fresh_sim) as http:
        fresh_sim.inject("503", path=r"/organization$")
        items = _by_id(http.post("/$batch", json={"requests": [
            {"id": "org", "method": "GET", "url": "/organization"},
            {"id": "me", "method": "GET", "url": f"/users/{user['id']}"}]}))  # fmt: skip
        assert items["org"]["status"] == 503 and items["org"]["headers"]["Retry-After"] == "1"
        assert items["me"]["status"] == 200

        before = len(fresh_sim.journal())
        fresh_sim.inject("reset_before", path=r"/organization$")
        with pytest.raises(httpx.TransportError):
            http.post("/$batch", json={"requests": [
                {"id": "w", "method": "PATCH", "url": f"/users/{user['id']}", "body": {"jobTitle": "Not applied"},
                 "headers": {"Content-Type": "application/json"}},
                {"id": "org", "method": "GET", "url": "/organization"}]})  # fmt: skip
        assert len(fresh_sim.journal()) == before

"""JSON batching over real HTTPS: chunks of 20, ids correlated, per-item 429 retried after the longest
Retry-After, dependsOn kept in one chunk, and 424 for dependents of a failed item."""

from __future__ import annotations

import pytest

from teamsops.graph import GraphBadRequest


def _user_ids(client, count):
    page = client.get("/users", params={"$select": "id", "$top": count})
    return [u["id"] for u in page["value"]]


def test_any_number_of_requests_in_chunks_of_20(sim, make_client, recording_transport):
    transport = recording_transport(sim)
    client = make_client(sim, transport=transport)
    ids = _user_ids(client, 45)
    requests = [{"id": f"u{i}", "method": "GET", "url": f"/users/{uid}?$select=id,displayName"}
                for i, uid in enumerate(ids)]
    results = client.batch(requests)
    assert list(results) == [r["id"] for r in requests]  # keyed by our ids, in our order
    assert all(results[f"u{i}"]["status"] == 200 and results[f"u{i}"]["body"]["id"] == uid
               for i, uid in enumerate(ids))  # correlated by id although Graph shuffles responses
    batches = [r for r in transport.sent if r.url.path.endswith("/$batch")]
    assert len(batches) == 3  # 20 + 20 + 5


def test_per_item_429_is_retried_after_the_longest_retry_after(sim, make_client, sleeper):
    client = make_client(sim, sleep=sleeper)
    ids = _user_ids(client, 4)
    sim.inject("429", times=1, path=f"/users/{ids[1]}$", retry_after=0.2)
    sim.inject("503", times=1, path=f"/users/{ids[2]}$", retry_after=0.4)
    results = client.batch([{"id": str(i), "method": "GET", "url": f"/users/{uid}"} for i, uid in enumerate(ids)])
    assert {key: value["status"] for key, value in results.items()} == {"0": 200, "1": 200, "2": 200, "3": 200}
    assert sleeper.waits == [0.4]  # one new batch with both items, after the longest Retry-After
    assert sim.simulator.faults.pending() == []


def test_depends_on_failed_item_gives_424(sim, make_client):
    client = make_client(sim)
    uid = _user_ids(client, 1)[0]
    results = client.batch([
        {"id": "missing", "method": "GET", "url": "/users/00000000-0000-0000-0000-0000000000aa"},
        {"id": "after", "method": "GET", "url": f"/users/{uid}", "dependsOn": ["missing"]},
        {"id": "free", "method": "GET", "url": f"/users/{uid}"},
    ])
    assert results["missing"]["status"] == 404
    assert results["after"]["status"] == 424
    assert results["free"]["status"] == 200


def test_dependents_of_a_throttled_item_are_retried_with_it(sim, make_client, sleeper):
    client = make_client(sim, sleep=sleeper)
    first, second = _user_ids(client, 2)
    sim.inject("429", times=1, path=f"/users/{first}$", retry_after=0.1)
    results = client.batch([
        {"id": "a", "method": "GET", "url": f"/users/{first}"},
        {"id": "b", "method": "GET", "url": f"/users/{second}", "dependsOn": ["a"]},
    ])
    assert results["a"]["status"] == 200 and results["b"]["status"] == 200
    assert sleeper.waits == [0.1]


def test_budget_exhausted_returns_the_last_responses(sim, make_client, sleeper):
    client = make_client(sim, sleep=sleeper, max_attempts=2)
    uid = _user_ids(client, 1)[0]
    sim.inject("429", times=2, path=f"/users/{uid}$", retry_after=0.05)
    results = client.batch([{"id": "x", "method": "GET", "url": f"/users/{uid}"}])
    assert results["x"]["status"] == 429
    assert any(k.lower() == "retry-after" for k in results["x"]["headers"])


def test_writes_in_a_batch(fresh_sim, make_client):
    client = make_client(fresh_sim)
    users = [u for u in client.paginate("/users", params={"$select": "id,accountEnabled,userType"})
             if u["accountEnabled"] and u["userType"] == "Member" and not fresh_sim.tenant.holds_admin_role(u["id"])][:3]
    results = client.batch([{"id": u["id"], "method": "PATCH", "url": f"/users/{u['id']}",
                             "body": {"jobTitle": "Batched"}} for u in users])
    assert {r["status"] for r in results.values()} == {204}
    for user in users:
        assert client.get(f"/users/{user['id']}", params={"$select": "jobTitle"})["jobTitle"] == "Batched"


def test_invalid_batches_are_refused_before_sending(sim, make_client, recording_transport):
    transport = recording_transport(sim)
    client = make_client(sim, transport=transport)
    with pytest.raises(GraphBadRequest, match="used twice"):
        client.batch([{"id": "A", "method": "GET", "url": "/me"}, {"id": "a", "method": "GET", "url": "/me"}])
    with pytest.raises(GraphBadRequest, match="unknown id"):
        client.batch([{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}])
    chain = [{"id": str(i), "method": "GET", "url": "/organization", **({"dependsOn": [str(i - 1)]} if i else {})}
             for i in range(21)]
    with pytest.raises(GraphBadRequest, match="at most 20"):
        client.batch(chain)
    assert transport.sent == []

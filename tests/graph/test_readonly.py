"""Read-only connections (``access="read"``): every write is refused before anything is sent."""

from __future__ import annotations

import pytest

from teamsops.graph import ReadOnlyError


@pytest.fixture
def ro_client(sim, make_client, recording_transport):
    transport = recording_transport(sim)
    client = make_client(sim, settings={"access": "read"}, transport=transport)
    return client, transport


@pytest.mark.parametrize(("call", "args"), [
    ("post", ("/users", {"displayName": "x"})),
    ("patch", ("/users/00000000-0000-0000-0000-000000000001", {"accountEnabled": False})),
    ("put", ("/users/a/manager/$ref", {"@odata.id": "x"})),
    ("delete", ("/teams/t/members/m",)),
])
def test_writes_are_refused_and_nothing_is_sent(sim, ro_client, call, args):
    client, transport = ro_client
    before = len(sim.journal())
    with pytest.raises(ReadOnlyError) as info:
        getattr(client, call)(*args)
    assert "access='read'" in str(info.value) and "read_write" in str(info.value)
    assert transport.sent == [] and len(sim.journal()) == before


def test_batch_with_one_write_is_refused_whole(sim, ro_client):
    client, transport = ro_client
    with pytest.raises(ReadOnlyError):
        client.batch([{"id": "1", "method": "GET", "url": "/users?$top=1"},
                      {"id": "2", "method": "PATCH", "url": "/users/x", "body": {"accountEnabled": False}}])
    with pytest.raises(ReadOnlyError):
        client.request("POST", "/$batch", json={"requests": [{"id": "1", "method": "DELETE", "url": "/users/x"}]})
    assert transport.sent == []


def test_reads_still_work(sim, ro_client):
    client, transport = ro_client
    assert client.get("/organization")["value"]
    assert client.batch([{"id": "1", "method": "GET", "url": "/organization"}])["1"]["status"] == 200

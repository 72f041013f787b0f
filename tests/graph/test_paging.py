"""Paging over real HTTPS: a team of more than 1,000 members, nextLinks followed verbatim, request headers
re-sent on every page, ``@odata.count`` on the first page only, and the SSRF guard on links."""

from __future__ import annotations

import httpx
import pytest

from teamsops.graph import UnsafeNextLinkError
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.testing import run_simulator


@pytest.fixture(scope="module")
def big_sim():
    """A 5,000-user tenant: big enough for teams of more than 1,000 members."""
    with run_simulator(spec=TenantSpec(users=5000, teams=12, seed=5)) as running:
        yield running


def _biggest_team(tenant) -> tuple[str, int]:
    sizes = {team_id: len(tenant.team_member_ids(team_id)) for team_id in tenant.teams}
    team_id = max(sizes, key=sizes.get)
    return team_id, sizes[team_id]


def test_team_with_more_than_1000_members_is_paged_completely(big_sim, make_client, recording_transport):
    team_id, size = _biggest_team(big_sim.tenant)
    assert size > 1000, "the generator should produce a team over 1,000 members at 5,000 users"
    transport = recording_transport(big_sim)
    client = make_client(big_sim, transport=transport)
    pages = list(client.pages(f"/teams/{team_id}/members"))
    members = [m for page in pages for m in page["value"]]
    assert len(pages) > 1
    assert len(members) == size and len({m["id"] for m in members}) == size
    assert {m["userId"] for m in members} == set(big_sim.tenant.team_member_ids(team_id))
    graph_calls = [r for r in transport.sent if "/v1.0/" in r.url.path]
    for page, sent in zip(pages, graph_calls[1:], strict=False):
        assert str(sent.url) == str(httpx.URL(page["@odata.nextLink"]))  # followed verbatim, never rebuilt


def test_next_links_verbatim_and_headers_resent_on_every_page(big_sim, make_client, recording_transport):
    transport = recording_transport(big_sim)
    client = make_client(big_sim, transport=transport)
    params = {"$select": "id,displayName", "$top": 999, "$count": "true"}
    pages = list(client.pages("/users", params=params, headers={"ConsistencyLevel": "eventual"}))
    graph_calls = [r for r in transport.sent if "/v1.0/" in r.url.path]
    assert len(pages) == len(graph_calls) >= 5
    assert all(r.headers.get("ConsistencyLevel") == "eventual" for r in graph_calls)
    assert all(r.headers.get("client-request-id") for r in graph_calls)
    assert len({r.headers["client-request-id"] for r in graph_calls}) == len(graph_calls)
    assert graph_calls[0].url.params["$select"] == "id,displayName"
    for page, sent in zip(pages, graph_calls[1:], strict=False):
        assert str(sent.url) == str(httpx.URL(page["@odata.nextLink"]))
    assert pages[0]["@odata.count"] == big_sim.tenant.user_count()
    assert all("@odata.count" not in page for page in pages[1:])
    assert sum(len(page["value"]) for page in pages) == big_sim.tenant.user_count()
    assert "@odata.nextLink" not in pages[-1]


def test_paginate_yields_items(sim, make_client):
    client = make_client(sim)
    users = list(client.paginate("/users", params={"$select": "id", "$top": 40}))
    assert len(users) == sim.tenant.user_count()
    assert set(users[0]) <= {"id", "@odata.type"}


def test_a_link_to_another_host_is_refused_before_anything_is_sent(sim, make_client, recording_transport):
    transport = recording_transport(sim)
    tokens: list[str] = []
    client = make_client(sim, transport=transport, on_token=tokens.append)
    for link in (
        "https://evil.example.com/v1.0/users?$skiptoken=abc",
        sim.base_url.replace("https://", "http://") + "/v1.0/users",
        "https://localhost:1/v1.0/users",
    ):
        with pytest.raises(UnsafeNextLinkError):
            list(client.paginate(link))
        with pytest.raises(UnsafeNextLinkError):
            client.delta(link)
    assert transport.sent == [] and tokens == []  # no request and not even a token was fetched
    # the configured host itself is fine as a full URL
    assert client.get(sim.base_url + "/v1.0/users?$top=1")["value"]

"""403s name the missing application permission and where to grant it (directory and Teams endpoints)."""

from __future__ import annotations

import pytest

from teamsops.graph import GraphForbidden


def _without(sim, *removed: str) -> None:
    app_id = sim.credentials()["app_id"]
    sim.set_app(app_id, roles=sorted(set(sim.tenant.apps[app_id].roles) - set(removed)))


def test_teams_403_names_the_permission(fresh_sim, make_client):
    _without(fresh_sim, "TeamMember.Read.All", "TeamMember.ReadWrite.All")
    client = make_client(fresh_sim)
    team_id = next(iter(fresh_sim.tenant.teams))
    with pytest.raises(GraphForbidden) as info:
        client.get(f"/teams/{team_id}/members")
    err = info.value
    assert err.status == 403 and "TeamMember.Read.All" in err.required_permissions
    assert "TeamMember.Read.All" in str(err) and "Grant admin consent" in str(err)
    assert err.request_id and err.client_request_id and err.client_request_id in str(err)


def test_directory_403_names_the_permission(fresh_sim, make_client):
    _without(fresh_sim, "User.Read.All", "User.ReadWrite.All", "Directory.Read.All")
    client = make_client(fresh_sim)
    with pytest.raises(GraphForbidden) as info:
        client.get("/users", params={"$top": 1})
    err = info.value
    assert err.code == "Authorization_RequestDenied" and err.required_permissions[0] == "User.Read.All"
    assert "application permission User.Read.All" in str(err)
    assert "API permissions > Add a permission > Microsoft Graph > Application permissions" in str(err)

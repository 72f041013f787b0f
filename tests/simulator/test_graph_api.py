"""Graph v1.0 routes in-process: ``GraphApi.handle(SimRequest, CallContext)`` against generated tenants.

End-to-end HTTPS behaviour (tokens, headers, throttling, $batch) is tested elsewhere; here every assertion is about
the shape, codes and state rules of the Graph routes themselves.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlsplit

import pytest

from teamsops.simulator.generator import READ_ROLES, ROLE_IDS, WRITE_ROLES, TenantSpec, generate_tenant
from teamsops.simulator.graph_api import GraphApi
from teamsops.simulator.http import CallContext, Headers, SimRequest, SimResponse
from teamsops.simulator.model import Directory

BASE = "https://127.0.0.1:8443"
ALL_ROLES = frozenset(READ_ROLES | WRITE_ROLES)
PASSWORD = "xWwvJ]6NMw+bWH-d"
MEMBER_TYPE = "#microsoft.graph.aadUserConversationMember"


class Graph:
    """Calls GraphApi like the server does, as the tenant's sync app."""

    def __init__(self, directory: Directory, tenant, roles=ALL_ROLES) -> None:
        self.api, self.directory, self.tenant, self.roles = GraphApi(directory), directory, tenant, roles
        self.app_id = tenant.generated["sync_app_id"]

    def __call__(self, method: str, path: str, query: str = "", body=None, headers=None, roles=None) -> SimResponse:
        raw = json.dumps(body).encode() if body is not None else b""
        req = SimRequest(method, path, query, Headers(headers or {}), raw, BASE)
        ctx = CallContext(
            self.tenant.id, self.app_id, frozenset(self.roles if roles is None else roles), "req-1", "client-1"
        )
        return self.api.handle(req, ctx)

    def get(self, path: str, query: str = "", **kwargs) -> SimResponse:
        return self("GET", path, query, **kwargs)

    def follow(self, link: str, headers=None) -> SimResponse:
        parts = urlsplit(link)
        return self("GET", parts.path, parts.query, headers=headers)

    def all_pages(self, path: str, query: str = "", headers=None) -> list[dict]:
        page = self.get(path, query, headers=headers)
        assert page.status == 200, page.body
        items = list(page.body["value"])
        while "@odata.nextLink" in page.body:
            page = self.follow(page.body["@odata.nextLink"], headers)
            assert page.status == 200, page.body
            items.extend(page.body["value"])
        return items


def _error(resp: SimResponse, status: int, code: str) -> str:
    assert resp.status == status, resp.body
    error = resp.body["error"]
    assert error["code"] == code, error
    assert error["innerError"]["request-id"] == "req-1" and error["innerError"]["client-request-id"] == "client-1"
    assert "Z" not in error["innerError"]["date"] and "." not in error["innerError"]["date"]
    return error["message"]


@pytest.fixture(scope="module")
def reads():
    """A shared read-only tenant (tests using it must not write)."""
    tenant = generate_tenant(TenantSpec(users=1300, teams=20, seed=21, big_teams=1))
    directory = Directory()
    directory.add_tenant(tenant)
    return Graph(directory, tenant)


@pytest.fixture
def graph():
    """A fresh small tenant for tests that write."""
    tenant = generate_tenant(TenantSpec(users=120, teams=12, seed=11))
    directory = Directory()
    directory.add_tenant(tenant)
    return Graph(directory, tenant)


def _plain_member(tenant, predicate=lambda u: True):
    return next(
        u
        for u, v in tenant.users.items()
        if v["userType"] == "Member" and not tenant.holds_admin_role(u) and predicate(u)
    )


# ------------------------------------------------------------------------------------------------ users: reads


def test_users_default_properties_and_paging(reads):
    page = reads.get("/v1.0/users")
    assert page.status == 200
    assert page.body["@odata.context"] == f"{BASE}/v1.0/$metadata#users"
    assert len(page.body["value"]) == 100
    # The v1.0 default set as graph-facts §2.2 words it, written independently of the simulator's schema module;
    # Graph lists the others alphabetically and ``id`` last (the user-list.md response example).
    documented = "businessPhones, displayName, givenName, id, jobTitle, mail, mobilePhone, officeLocation, "
    documented += "preferredLanguage, surname, userPrincipalName"
    defaults = set(documented.split(", "))
    assert list(page.body["value"][0]) == [*sorted(defaults - {"id"}), "id"]
    users = reads.all_pages("/v1.0/users", "$select=id,userType,accountEnabled&$top=999")
    assert len(users) == 1300 == len({u["id"] for u in users})
    assert set(users[0]) == {"id", "userType", "accountEnabled"}


def test_next_link_repeats_the_original_query(reads):
    page = reads.get("/v1.0/users", "$top=5&%24select=id,displayName")
    link = page.body["@odata.nextLink"]
    assert link.startswith(f"{BASE}/v1.0/users?$top=5&%24select=id,displayName&$skiptoken=")
    assert page.body["@odata.context"].endswith("#users(id,displayName)")
    tampered = reads.get("/v1.0/users", "$top=6&%24select=id,displayName&" + urlsplit(link).query.split("&")[-1])
    _error(tampered, 400, "Directory_ExpiredPageToken")


def test_top_and_select_validation(reads):
    assert "between 1 and 999" in _error(reads.get("/v1.0/users", "$top=1000"), 400, "Request_BadRequest")
    message = _error(reads.get("/v1.0/users", "$select=id,nope"), 400, "Request_BadRequest")
    assert message == "Could not find a property named 'nope' on type 'microsoft.graph.user'."
    _error(reads.get("/v1.0/users", "$select=skills"), 501, "NotImplemented")


def test_sign_in_activity_needs_audit_log_permission_and_smaller_pages(reads):
    message = _error(reads.get("/v1.0/users", "$select=id,signInActivity"), 403, "Authorization_RequestDenied")
    assert "AuditLog.Read.All" in message
    roles = ALL_ROLES | {"AuditLog.Read.All"}
    _error(reads.get("/v1.0/users", "$select=id,signInActivity&$top=999", roles=roles), 400, "Request_BadRequest")
    page = reads.get("/v1.0/users", "$select=id,signInActivity&$top=500", roles=roles)
    assert page.status == 200 and "lastSignInDateTime" in page.body["value"][1]["signInActivity"]


def test_count_needs_consistency_level(reads):
    eventual = {"ConsistencyLevel": "eventual"}
    counted = reads.get("/v1.0/users", "$count=true&$top=10", headers=eventual)
    assert counted.body["@odata.count"] == 1300
    second = reads.follow(counted.body["@odata.nextLink"], eventual)
    assert "@odata.count" not in second.body  # first page only
    assert "@odata.count" not in reads.get("/v1.0/users", "$count=true&$top=10").body  # silently ignored
    _error(reads.get("/v1.0/users/$count"), 400, "Request_BadRequest")
    plain = reads.get("/v1.0/users/$count", "$filter=userType eq 'Guest'", headers=eventual)
    assert plain.status == 200 and plain.headers["Content-Type"] == "text/plain" and plain.body == "130"


@pytest.mark.parametrize(
    ("flt", "check"),
    [
        ("userType eq 'Guest'", lambda u: u["userType"] == "Guest"),
        ("accountEnabled eq false", lambda u: u["accountEnabled"] is False),
        ("startswith(displayName,'a')", lambda u: u["displayName"].lower().startswith("a")),
        (
            "assignedLicenses/any(s:s/skuId eq 05e9a617-0261-4cee-bb44-138d3ef5d965)",
            lambda u: any(lic["skuId"] == "05e9a617-0261-4cee-bb44-138d3ef5d965" for lic in u["assignedLicenses"]),
        ),
    ],
)
def test_user_filters(reads, flt, check):
    expected = {u["id"] for u in reads.tenant.users.values() if check(u)}
    got = reads.all_pages("/v1.0/users", f"$filter={quote(flt)}&$select=id&$top=999")
    assert expected and {u["id"] for u in got} == expected


def test_user_filter_by_upn_and_ids(reads):
    some = list(reads.tenant.users.values())[5:8]
    upn = some[0]["userPrincipalName"].upper()
    got = reads.get("/v1.0/users", f"$filter=userPrincipalName eq '{quote(upn)}'&$select=id").body["value"]
    assert got == [{"id": some[0]["id"]}]
    ids = ",".join(f"'{u['id']}'" for u in some)
    got = reads.get("/v1.0/users", f"$filter=id in ({ids})&$select=id").body["value"]
    assert {u["id"] for u in got} == {u["id"] for u in some}


def test_advanced_and_invalid_filters(reads):
    assert (
        _error(reads.get("/v1.0/users", "$filter=userType ne 'Guest'"), 400, "Request_UnsupportedQuery")
        == "Unsupported Query."
    )
    ok = reads.get("/v1.0/users", "$filter=userType ne 'Guest'&$count=true", headers={"ConsistencyLevel": "eventual"})
    assert ok.status == 200 and ok.body["@odata.count"] == 1170
    _error(reads.get("/v1.0/users", "$filter=nope eq 1"), 400, "Request_BadRequest")
    message = _error(reads.get("/v1.0/users", "$filter=aboutMe eq 'x'"), 400, "Request_UnsupportedQuery")
    assert "property 'aboutMe' of resource 'User'" in message
    assert "Syntax error" in _error(reads.get("/v1.0/users", "$filter=userType eq"), 400, "BadRequest")


def test_search_needs_eventual_and_matches_word_prefixes(reads):
    query = "$search=" + quote('"displayName:break"') + "&$select=id,displayName"
    message = _error(reads.get("/v1.0/users", query), 400, "Request_UnsupportedQuery")
    assert "ConsistencyLevel: eventual" in message
    found = reads.get("/v1.0/users", query, headers={"ConsistencyLevel": "eventual"}).body["value"]
    assert [u["displayName"] for u in found] == ["Break Glass Admin"]
    bad = "$search=" + quote('"aboutMe:x"')
    _error(reads.get("/v1.0/users", bad, headers={"ConsistencyLevel": "eventual"}), 400, "Request_UnsupportedQuery")
    team = next(iter(reads.tenant.teams.values()))["displayName"].split()[0]
    groups = reads.get(
        "/v1.0/groups", "$search=" + quote(f'"displayName:{team}"'), headers={"ConsistencyLevel": "eventual"}
    )
    assert groups.body["value"] and all(team.lower() in g["displayName"].lower() for g in groups.body["value"])


def test_unsupported_query_options_are_refused_not_ignored(reads):
    message = _error(reads.get("/v1.0/users", "$skip=10"), 400, "Request_BadRequest")
    assert message == "The query parameter '$skip' is not supported."
    team_id = next(iter(reads.tenant.teams))
    _error(reads.get(f"/v1.0/teams/{team_id}/channels", "$top=2"), 400, "BadRequest")
    _error(reads.get("/v1.0/users/delta", "$top=10"), 400, "Request_UnsupportedQuery")
    ordered = reads.get("/v1.0/groups", "$orderby=displayName&$select=displayName&$top=999").body["value"]
    names = [g["displayName"].lower() for g in ordered]
    assert names == sorted(names)


def test_get_user_by_id_and_upn(reads):
    user = list(reads.tenant.users.values())[10]
    by_id = reads.get(f"/v1.0/users/{user['id']}", "$select=id,accountEnabled,userType")
    assert by_id.body == {
        "@odata.context": f"{BASE}/v1.0/$metadata#users(id,accountEnabled,userType)/$entity",
        "id": user["id"],
        "accountEnabled": user["accountEnabled"],
        "userType": user["userType"],
    }
    by_upn = reads.get(f"/v1.0/users/{user['userPrincipalName'].swapcase()}")
    assert by_upn.body["id"] == user["id"]
    missing = "68be84bf-a585-4776-80b3-30aa5207aa22"
    message = _error(reads.get(f"/v1.0/users/{missing}"), 404, "Request_ResourceNotFound")
    assert message == (
        f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
    )
    assert (
        _error(reads.get("/v1.0/users/not-an-id"), 400, "Request_BadRequest")
        == "Invalid object identifier 'not-an-id'."
    )


def test_manager_direct_reports_member_of_joined_teams(reads):
    tenant = reads.tenant
    user_id = next(u for u in tenant.manager_of if tenant.reports_of.get(u) and tenant.joined_team_ids(u))
    manager = reads.get(f"/v1.0/users/{user_id}/manager")
    assert manager.body["id"] == tenant.manager_of[user_id]
    assert manager.body["@odata.type"] == "#microsoft.graph.user"
    ceo = next(u for u in tenant.users if u not in tenant.manager_of)
    assert _error(reads.get(f"/v1.0/users/{ceo}/manager"), 404, "Request_ResourceNotFound").startswith(
        "Resource 'manager'"
    )
    reports = reads.all_pages(f"/v1.0/users/{user_id}/directReports")
    assert {r["id"] for r in reports} == set(tenant.reports_of[user_id])
    groups = reads.all_pages(f"/v1.0/users/{user_id}/memberOf")
    assert {g["id"] for g in groups} == set(tenant.member_of[user_id])
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in groups)
    joined = reads.get(f"/v1.0/users/{user_id}/joinedTeams").body["value"]
    assert {t["id"] for t in joined} == set(tenant.joined_team_ids(user_id))
    assert all(set(t) == {"id", "displayName", "description"} for t in joined)


def test_expand_manager(reads):
    user = next(u for u in reads.tenant.manager_of)
    body = reads.get(f"/v1.0/users/{user}", "$select=id&$expand=manager").body
    assert body["manager"]["id"] == reads.tenant.manager_of[user]
    _error(reads.get("/v1.0/users", "$expand=photo"), 400, "Request_BadRequest")


# ------------------------------------------------------------------------------------------------ permissions


def test_missing_permissions_use_each_workload_shape(reads):
    assert _error(reads.get("/v1.0/users", roles={"Group.Read.All"}), 403, "Authorization_RequestDenied") == (
        "Insufficient privileges to complete the operation."
    )
    team_id = next(iter(reads.tenant.teams))
    message = _error(
        reads.get(f"/v1.0/teams/{team_id}/members", roles={"User.Read.All", "Group.Read.All"}), 403, "Forbidden"
    )
    assert message == (
        "Missing role permissions on the request. API requires one of 'TeamMember.Read.All, "
        "TeamMember.ReadWrite.All'. Roles on the request 'Group.Read.All, User.Read.All'."
    )
    assert reads.get("/v1.0/users", "$top=1", roles={"Directory.Read.All"}).status == 200
    _error(reads.get("/v1.0/subscribedSkus", roles={"User.Read.All"}), 403, "Authorization_RequestDenied")
    _error(
        reads.get("/v1.0/roleManagement/directory/roleDefinitions", roles={"User.Read.All"}),
        403,
        "Authorization_RequestDenied",
    )


def test_calls_only_see_their_own_tenant():
    first = generate_tenant(TenantSpec(users=30, teams=3, seed=1))
    second = generate_tenant(TenantSpec(users=40, teams=3, seed=1, tenant_id="5e5e5e5e-0000-4000-8000-000000000002"))
    directory = Directory()
    directory.add_tenant(first)
    directory.add_tenant(second)
    graph = Graph(directory, second)
    ids = {u["id"] for u in graph.all_pages("/v1.0/users", "$select=id")}
    assert ids == set(second.users)
    _error(graph.get(f"/v1.0/users/{next(iter(first.users))}"), 404, "Request_ResourceNotFound")


# ------------------------------------------------------------------------------------------------ routing


def test_unknown_segment_method_and_unserved_paths(reads):
    assert _error(reads.get("/v1.0/usres"), 400, "BadRequest") == "Resource not found for the segment 'usres'."
    user = next(iter(reads.tenant.users))
    assert "segment 'joinedTeam'" in _error(reads.get(f"/v1.0/users/{user}/joinedTeam"), 400, "BadRequest")
    assert _error(reads("DELETE", "/v1.0/subscribedSkus"), 405, "Request_BadRequest") == (
        "Specified HTTP method is not allowed for the request target."
    )
    _error(reads.get(f"/v1.0/users/{user}/licenseDetails"), 501, "NotImplemented")
    assert "delegated" in _error(reads.get("/v1.0/me"), 400, "BadRequest")
    assert reads.get(f"/v1.0/users('{user}')", "$select=id").body["id"] == user  # OData key syntax
    assert reads.get("/v1.0/Users", "$top=1").status == 200  # segments are case-insensitive


# ------------------------------------------------------------------------------------------------ groups and teams


def test_groups_teams_filter_and_members(reads):
    tenant = reads.tenant
    flt = quote("resourceProvisioningOptions/Any(x:x eq 'Team')")
    groups = reads.all_pages("/v1.0/groups", f"$filter={flt}&$select=id,displayName,resourceProvisioningOptions")
    assert {g["id"] for g in groups} == set(tenant.teams)
    assert len(tenant.groups) > len(tenant.teams)
    group_id = next(iter(tenant.teams))
    members = reads.all_pages(f"/v1.0/groups/{group_id}/members", "$select=id,userType")
    assert {m["id"] for m in members} == set(tenant.group_members[group_id])
    assert members[0]["@odata.type"] == "#microsoft.graph.user"
    cast = reads.get(f"/v1.0/groups/{group_id}/members/microsoft.graph.user", "$select=id&$top=5")
    assert cast.body["@odata.context"].endswith("#users(id)") and "@odata.nextLink" in cast.body
    owners = reads.all_pages(f"/v1.0/groups/{group_id}/owners", "$select=id")
    assert {o["id"] for o in owners} == set(tenant.group_owners.get(group_id, {}))
    _error(reads.get("/v1.0/groups/11111111-2222-4333-8444-555555555555"), 404, "Request_ResourceNotFound")


def test_teams_list_and_get(reads):
    tenant = reads.tenant
    teams = reads.all_pages("/v1.0/teams")
    assert {t["id"] for t in teams} == set(tenant.teams)
    assert all(set(t) == {"id", "displayName", "description"} for t in teams)
    team_id = teams[0]["id"]
    team = reads.get(f"/v1.0/teams/{team_id}").body
    assert team["summary"]["ownersCount"] == len(tenant.group_owners.get(team_id, {}))
    assert {"memberSettings", "funSettings", "webUrl", "isArchived"} <= set(team)
    missing = "11111111-2222-4333-8444-555555555555"
    assert _error(reads.get(f"/v1.0/teams/{missing}"), 404, "NotFound") == f"No team found with Group Id {missing}"


def test_big_team_members_need_several_pages(reads):
    tenant = reads.tenant
    team_id = max(tenant.teams, key=lambda t: len(tenant.group_members[t]))
    assert len(tenant.group_members[team_id]) > 1000
    first = reads.get(f"/v1.0/teams/{team_id}/members")
    assert "@odata.nextLink" in first.body and first.body["@odata.count"] == len(tenant.group_members[team_id])
    members = reads.all_pages(f"/v1.0/teams/{team_id}/members")
    assert len(members) == len(tenant.group_members[team_id]) == len({m["id"] for m in members})
    sample = members[0]
    assert sample["@odata.type"] == MEMBER_TYPE
    decoded = base64.b64decode(sample["id"]).decode()
    assert decoded == f"{team_id}##{sample['userId']}"
    roles = {tuple(m["roles"]) for m in members}
    assert roles <= {(), ("owner",), ("guest",)}
    guests = [m for m in members if tenant.users[m["userId"]]["userType"] == "Guest"]
    assert all(m["roles"] == ["guest"] for m in guests)


def test_team_member_filter_and_get(reads):
    tenant = reads.tenant
    team_id = next(iter(tenant.teams))
    user_id = list(tenant.group_members[team_id])[3]
    flt = quote(f"(microsoft.graph.aadUserConversationMember/userId eq '{user_id}')")
    got = reads.get(f"/v1.0/teams/{team_id}/members", f"$filter={flt}").body["value"]
    assert [m["userId"] for m in got] == [user_id]
    member = reads.get(f"/v1.0/teams/{team_id}/members/{got[0]['id']}").body
    assert member["userId"] == user_id and member["@odata.context"].endswith(f"teams('{team_id}')/members/$entity")
    _error(reads.get(f"/v1.0/teams/{team_id}/members/bm9wZQ=="), 404, "NotFound")


def test_shared_channels_need_the_prefer_header(reads):
    tenant = reads.tenant
    team_id = next(
        (t for t, chans in tenant.channels.items() if any(c["membershipType"] == "shared" for c in chans)), None
    )
    if team_id is None:  # make one shared channel to test the evolvable enum
        team_id = next(iter(tenant.channels))
        channel = tenant.channels[team_id][-1]
        tenant.channels[team_id][-1] = {**channel, "membershipType": "shared"}
    plain = reads.get(f"/v1.0/teams/{team_id}/channels").body["value"]
    opted = reads.get(f"/v1.0/teams/{team_id}/channels", headers={"Prefer": "include-unknown-enum-members"}).body[
        "value"
    ]
    assert "shared" not in {c["membershipType"] for c in plain} and "unknownFutureValue" in {
        c["membershipType"] for c in plain
    }
    assert "shared" in {c["membershipType"] for c in opted}
    private = reads.get(f"/v1.0/teams/{team_id}/channels", quote("$filter=membershipType eq 'private'", safe="$=")).body
    assert all(c["membershipType"] == "private" for c in private["value"])


def test_installed_apps_for_users_and_teams(reads):
    tenant = reads.tenant
    bot_app = tenant.apps[tenant.generated["bot_app_id"]].teams_app_id
    external_id = tenant.catalog[bot_app]["externalId"]
    user_id = next(u for u in tenant.users if bot_app in tenant.user_apps.get(u, {}))
    path = f"/v1.0/users/{user_id}/teamwork/installedApps"
    everything = reads.get(path, "$expand=teamsAppDefinition").body
    assert len(everything["value"]) == len(tenant.user_apps[user_id])
    assert {"teamsAppId", "displayName", "version"} <= set(everything["value"][0]["teamsAppDefinition"])
    flt = quote(f"teamsApp/externalId eq '{external_id}'")
    mine = reads.get(path, f"$expand=teamsApp,teamsAppDefinition&$filter={flt}").body
    assert mine["@odata.count"] == 1
    install = mine["value"][0]
    assert install["teamsApp"]["distributionMethod"] == "organization"
    assert install["teamsAppDefinition"]["azureADAppId"] == tenant.generated["bot_app_id"]
    chat = reads.get(f"{path}/{install['id']}/chat").body
    assert chat["id"] == f"19:{user_id}_{tenant.generated['bot_app_id']}@unq.gbl.spaces"
    assert chat["@odata.context"].endswith("#chats/$entity")
    team_id = next(t for t in tenant.teams if bot_app in tenant.team_apps.get(t, {}))
    team_apps = reads.get(f"/v1.0/teams/{team_id}/installedApps", "$expand=teamsApp").body["value"]
    assert bot_app in {a["teamsApp"]["id"] for a in team_apps}
    _error(reads.get(path, roles={"User.Read.All"}), 403, "Forbidden")


# ------------------------------------------------------------------------------------------------ directory


def test_organization_skus_roles(reads):
    org = reads.get("/v1.0/organization").body["value"][0]
    assert org["id"] == reads.tenant.id and org["tenantType"] == "AAD"
    assert {d["name"] for d in org["verifiedDomains"]} == set(reads.tenant.verified_domains)
    skus = reads.get("/v1.0/subscribedSkus", "$select=skuPartNumber,consumedUnits,prepaidUnits").body["value"]
    assert all(set(s) == {"skuPartNumber", "consumedUnits", "prepaidUnits"} for s in skus)
    _error(reads.get("/v1.0/subscribedSkus", "$filter=skuPartNumber eq 'SPE_E3'"), 400, "Request_BadRequest")
    definitions = reads.all_pages("/v1.0/roleManagement/directory/roleDefinitions")
    assert len(definitions) >= 15 and all(d["id"] == d["templateId"] for d in definitions)
    global_admin = ROLE_IDS["Global Administrator"]
    by_role = quote(f"roleDefinitionId eq '{global_admin}'")
    assignments = reads.get(
        "/v1.0/roleManagement/directory/roleAssignments", f"$filter={by_role}&$expand=principal"
    ).body
    assert assignments["@odata.context"].endswith("roleAssignments(principal())")
    names = {a["principal"]["userPrincipalName"] for a in assignments["value"]}
    assert any(n.startswith("breakglass-admin@") for n in names)
    sp = next(a for a in reads.tenant.role_assignments.values() if a["principalId"] in reads.tenant.service_principals)
    by_principal_query = quote(f"principalId eq '{sp['principalId']}'")
    by_principal = reads.get(
        "/v1.0/roleManagement/directory/roleAssignments", f"$filter={by_principal_query}&$expand=principal"
    ).body["value"]
    assert by_principal[0]["principal"]["@odata.type"] == "#microsoft.graph.servicePrincipal"


def test_deleted_users_are_listed(reads):
    deleted = reads.all_pages("/v1.0/directory/deletedItems/microsoft.graph.user", "$select=id,deletedDateTime")
    assert {d["id"] for d in deleted} == set(reads.tenant.deleted_users)
    assert all(d["@odata.type"] == "#microsoft.graph.user" and d["deletedDateTime"] for d in deleted)


# ------------------------------------------------------------------------------------------------ user writes


def _create_body(tenant, nick="new.hire", **extra):
    return {
        "accountEnabled": True,
        "displayName": "New Hire",
        "mailNickname": nick,
        "userPrincipalName": f"{nick}@{tenant.verified_domains[0]}",
        "passwordProfile": {"password": PASSWORD},
        **extra,
    }


def test_create_user(graph):
    created = graph("POST", "/v1.0/users", body=_create_body(graph.tenant, department="IT"))
    assert created.status == 201 and created.body["@odata.context"].endswith("#users/$entity")
    user_id = created.body["id"]
    assert graph.tenant.users[user_id]["department"] == "IT" and "passwordProfile" not in graph.tenant.users[user_id]
    assert graph.directory.journal[-1]["target"] == user_id and graph.directory.journal[-1]["status"] == 201
    duplicate = graph("POST", "/v1.0/users", body=_create_body(graph.tenant))
    assert _error(duplicate, 400, "Request_BadRequest") == (
        "Another object with the same value for property userPrincipalName already exists."
    )
    foreign = _create_body(graph.tenant, "x", userPrincipalName="x@not-ours.example")
    assert "verified domain" in _error(graph("POST", "/v1.0/users", body=foreign), 400, "Request_BadRequest")
    weak = _create_body(graph.tenant, "y", passwordProfile={"password": "password"})
    assert "complexity" in _error(graph("POST", "/v1.0/users", body=weak), 400, "Request_BadRequest")
    missing = {k: v for k, v in _create_body(graph.tenant, "z").items() if k != "mailNickname"}
    assert "'mailNickname'" in _error(graph("POST", "/v1.0/users", body=missing), 400, "Request_BadRequest")
    _error(
        graph("POST", "/v1.0/users", body=_create_body(graph.tenant, "w"), roles=READ_ROLES),
        403,
        "Authorization_RequestDenied",
    )
    assert len(graph.directory.journal) == 1  # failures are never journaled


def test_update_user_rules(graph):
    user_id = _plain_member(graph.tenant)
    path = f"/v1.0/users/{user_id}"
    ok = graph("PATCH", path, body={"jobTitle": "Lead", "accountEnabled": False})
    assert ok.status == 204 and ok.body is None
    assert graph.tenant.users[user_id]["jobTitle"] == "Lead" and graph.tenant.users[user_id]["accountEnabled"] is False
    _error(graph("PATCH", path, body={"displayName": ""}), 400, "Request_BadRequest")
    assert "does not exist on type" in _error(graph("PATCH", path, body={"nope": 1}), 400, "BadRequest")
    assert "read-only" in _error(
        graph("PATCH", path, body={"createdDateTime": "2020-01-01T00:00:00Z"}), 400, "Request_BadRequest"
    )
    assert "Edm.Boolean" in _error(graph("PATCH", path, body={"accountEnabled": "no"}), 400, "BadRequest")
    _error(graph("PATCH", path, body={"passwordProfile": {"password": PASSWORD}}), 403, "Authorization_RequestDenied")
    with_password_role = ALL_ROLES | {"User-PasswordProfile.ReadWrite.All"}
    assert (
        graph("PATCH", path, body={"passwordProfile": {"password": PASSWORD}}, roles=with_password_role).status == 204
    )
    _error(graph("PATCH", "/v1.0/users", body={}), 405, "Request_BadRequest")
    assert [e["status"] for e in graph.directory.journal] == [204, 204]


def test_enable_disable_permission_covers_only_account_enabled(graph):
    user_id = _plain_member(graph.tenant)
    roles = {"User.EnableDisableAccount.All", "User.Read.All"}
    assert graph("PATCH", f"/v1.0/users/{user_id}", body={"accountEnabled": False}, roles=roles).status == 204
    _error(
        graph("PATCH", f"/v1.0/users/{user_id}", body={"accountEnabled": True, "jobTitle": "x"}, roles=roles),
        403,
        "Authorization_RequestDenied",
    )


def test_privileged_users_are_protected(graph):
    tenant = graph.tenant
    admin = next(
        a["principalId"]
        for a in tenant.role_assignments.values()
        if a["roleDefinitionId"] == ROLE_IDS["Global Administrator"] and a["principalId"] in tenant.users
    )
    _error(graph("PATCH", f"/v1.0/users/{admin}", body={"accountEnabled": False}), 403, "Authorization_RequestDenied")
    assert graph("PATCH", f"/v1.0/users/{admin}", body={"jobTitle": "Admin"}).status == 204  # not sensitive
    _error(graph("DELETE", f"/v1.0/users/{admin}"), 403, "Authorization_RequestDenied")
    # An app whose service principal holds Privileged Authentication Administrator may do both.
    sp_id = tenant.apps[graph.app_id].service_principal_id
    tenant.role_assignments["pa"] = {
        "id": "pa",
        "principalId": sp_id,
        "roleDefinitionId": ROLE_IDS["Privileged Authentication Administrator"],
        "directoryScopeId": "/",
        "resourceScope": "/",
    }
    assert graph("PATCH", f"/v1.0/users/{admin}", body={"accountEnabled": False}).status == 204


def test_delete_restore_and_purge(graph):
    tenant = graph.tenant
    user_id = _plain_member(tenant, lambda u: bool(tenant.member_of.get(u)))
    groups = set(tenant.member_of[user_id])
    assert graph("DELETE", f"/v1.0/users/{user_id}").status == 204
    _error(graph.get(f"/v1.0/users/{user_id}"), 404, "Request_ResourceNotFound")
    deleted = graph.get(f"/v1.0/directory/deletedItems/{user_id}").body
    assert deleted["deletedDateTime"] and deleted["@odata.type"] == "#microsoft.graph.user"
    restored = graph("POST", f"/v1.0/directory/deletedItems/{user_id}/restore")
    assert restored.status == 200 and restored.body["id"] == user_id
    assert restored.body["@odata.context"].endswith("#directoryObjects/$entity")
    assert set(tenant.member_of[user_id]) == groups
    assert graph("DELETE", f"/v1.0/users/{user_id}").status == 204
    assert graph("DELETE", f"/v1.0/directory/deletedItems/{user_id}").status == 204
    _error(graph("POST", f"/v1.0/directory/deletedItems/{user_id}/restore"), 404, "Request_ResourceNotFound")
    assert [e["method"] for e in graph.directory.journal] == ["DELETE", "POST", "DELETE", "DELETE"]


def test_manager_reference(graph):
    tenant = graph.tenant
    user_id = _plain_member(tenant, lambda u: u in tenant.manager_of)
    new_manager = _plain_member(
        tenant,
        lambda u: u != user_id and u not in tenant.reports_of.get(user_id, {}) and tenant.manager_of.get(u) != user_id,
    )
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{new_manager}"}
    assert graph("PUT", f"/v1.0/users/{user_id}/manager/$ref", body=ref).status == 204
    assert tenant.manager_of[user_id] == new_manager
    self_ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{user_id}"}
    _error(graph("PUT", f"/v1.0/users/{user_id}/manager/$ref", body=self_ref), 400, "Request_BadRequest")
    ghost = {"@odata.id": "https://graph.microsoft.com/v1.0/users/11111111-2222-4333-8444-555555555555"}
    _error(graph("PUT", f"/v1.0/users/{user_id}/manager/$ref", body=ghost), 404, "Request_ResourceNotFound")
    _error(graph("PUT", f"/v1.0/users/{user_id}/manager/$ref", body={"id": "x"}), 400, "Request_BadRequest")
    assert graph("DELETE", f"/v1.0/users/{user_id}/manager/$ref").status == 204
    _error(graph("DELETE", f"/v1.0/users/{user_id}/manager/$ref"), 404, "Request_ResourceNotFound")


def test_revoke_sign_in_sessions(graph):
    user_id = _plain_member(graph.tenant)
    before = graph.tenant.users[user_id]["signInSessionsValidFromDateTime"]
    resp = graph("POST", f"/v1.0/users/{user_id}/revokeSignInSessions")
    assert resp.status == 200
    assert resp.body == {"@odata.context": f"{BASE}/v1.0/$metadata#Edm.Boolean", "value": True}
    assert graph.tenant.users[user_id]["signInSessionsValidFromDateTime"] > before
    assert graph("POST", f"/v1.0/users/{user_id}/revokeSignInSessions", roles={"User.RevokeSessions.All"}).status == 200
    _error(
        graph("POST", f"/v1.0/users/{user_id}/revokeSignInSessions", roles=READ_ROLES),
        403,
        "Authorization_RequestDenied",
    )


# ------------------------------------------------------------------------------------------------ team member writes


def test_team_member_add_update_remove(graph):
    tenant = graph.tenant
    team_id = next(t for t in tenant.teams if tenant.group_owners.get(t) and len(tenant.group_members[t]) < 50)
    user_id = _plain_member(
        tenant, lambda u: u not in tenant.group_members[team_id] and tenant.users[u]["accountEnabled"]
    )
    upn = tenant.users[user_id]["userPrincipalName"]
    body = {
        "@odata.type": MEMBER_TYPE,
        "roles": ["owner"],
        "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{upn}')",
    }
    added = graph("POST", f"/v1.0/teams/{team_id}/members", body=body)
    assert added.status == 201 and added.body["roles"] == ["owner"] and added.body["userId"] == user_id
    again = graph("POST", f"/v1.0/teams/{team_id}/members", body={**body, "roles": []})
    assert again.status == 201 and again.body["roles"] == []  # re-adding applies the roles, like Teams
    membership = added.body["id"]
    patched = graph(
        "PATCH", f"/v1.0/teams/{team_id}/members/{membership}", body={"@odata.type": MEMBER_TYPE, "roles": ["owner"]}
    )
    assert patched.status == 200 and patched.body["roles"] == ["owner"]
    assert graph("DELETE", f"/v1.0/teams/{team_id}/members/{membership}").status == 204
    assert user_id not in tenant.group_members[team_id]
    _error(graph("DELETE", f"/v1.0/teams/{team_id}/members/{membership}"), 404, "NotFound")
    assert len(graph.directory.journal) == 4


def test_team_member_write_errors(graph):
    tenant = graph.tenant
    team_id = next(t for t in tenant.teams if len(tenant.group_owners.get(t, {})) == 1)
    owner = next(iter(tenant.group_owners[team_id]))
    membership = base64.b64encode(f"{team_id}##{owner}".encode()).decode()
    message = _error(graph("DELETE", f"/v1.0/teams/{team_id}/members/{membership}"), 400, "BadRequest")
    assert "at least one owner" in message
    guest = next(u for u, v in tenant.users.items() if v["userType"] == "Guest")
    body = {
        "@odata.type": MEMBER_TYPE,
        "roles": ["owner"],
        "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{guest}')",
    }
    _error(graph("POST", f"/v1.0/teams/{team_id}/members", body=body), 400, "BadRequest")
    guest_add = graph("POST", f"/v1.0/teams/{team_id}/members", body={**body, "roles": []})
    assert guest_add.status == 201 and guest_add.body["roles"] == ["guest"]
    _error(graph("POST", f"/v1.0/teams/{team_id}/members", body={"roles": []}), 400, "BadRequest")
    ghost = {
        **body,
        "roles": [],
        "user@odata.bind": "https://graph.microsoft.com/v1.0/users('11111111-2222-4333-8444-555555555555')",
    }
    _error(graph("POST", f"/v1.0/teams/{team_id}/members", body=ghost), 404, "NotFound")
    _error(
        graph("POST", f"/v1.0/teams/{team_id}/members", body={**body, "roles": []}, roles=READ_ROLES), 403, "Forbidden"
    )
    _error(graph("POST", "/v1.0/teams/11111111-2222-4333-8444-555555555555/members", body=body), 404, "NotFound")


def test_bodies_must_be_json_objects(graph):
    user_id = _plain_member(graph.tenant)
    api_req = SimRequest("PATCH", f"/v1.0/users/{user_id}", "", Headers({}), b"{not json", BASE)
    resp = graph.api.handle(api_req, CallContext(graph.tenant.id, graph.app_id, ALL_ROLES, "req-1", "client-1"))
    assert "Unable to read JSON" in _error(resp, 400, "BadRequest")
    assert _error(graph("POST", "/v1.0/users"), 400, "BadRequest") == "Empty Payload. JSON content expected."


def test_install_app_for_user(graph):
    tenant = graph.tenant
    bot_app = tenant.apps[tenant.generated["bot_app_id"]].teams_app_id
    user_id = _plain_member(tenant, lambda u: bot_app not in tenant.user_apps.get(u, {}))
    body = {"teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{bot_app}"}
    path = f"/v1.0/users/{user_id}/teamwork/installedApps"
    _error(graph("POST", path, body=body), 403, "Forbidden")
    roles = ALL_ROLES | {"TeamsAppInstallation.ReadWriteForUser.All"}
    created = graph("POST", path, body=body, roles=roles)
    assert created.status == 201 and created.body is None
    assert bot_app in tenant.user_apps[user_id]
    _error(graph("POST", path, body=body, roles=roles), 409, "Conflict")


# ------------------------------------------------------------------------------------------------ delta


def _delta_round(graph, link_or_path, query="", headers=None):
    """Follow one delta round to its deltaLink: (items, deltaLink, pages)."""
    page = (
        graph.follow(link_or_path, headers)
        if link_or_path.startswith("http")
        else graph.get(link_or_path, query, headers=headers)
    )
    pages = [page]
    items = list(page.body["value"])
    while "@odata.nextLink" in page.body:
        page = graph.follow(page.body["@odata.nextLink"], headers)
        assert page.status == 200, page.body
        pages.append(page)
        items.extend(page.body["value"])
    return items, page.body["@odata.deltaLink"], pages


def test_users_delta_initial_and_incremental(graph):
    tenant = graph.tenant
    small = {"Prefer": "odata.maxpagesize=25"}
    items, delta_link, pages = _delta_round(
        graph, "/v1.0/users/delta", "$select=displayName,accountEnabled,manager", small
    )
    assert len(pages) == 5 and len(items) == tenant.user_count()
    assert set(items[1]) <= {"id", "displayName", "accountEnabled", "manager@delta"}
    with_manager = next(i for i in items if "manager@delta" in i)
    assert with_manager["manager@delta"][0]["id"] == tenant.manager_of[with_manager["id"]]
    assert "$select" not in delta_link and "$deltatoken=" in delta_link

    quiet, delta_link, _ = _delta_round(graph, delta_link)
    assert quiet == []

    changed, untracked, gone = (
        _plain_member(tenant, lambda u, i=i: list(tenant.users).index(u) > i) for i in (5, 30, 60)
    )
    graph("PATCH", f"/v1.0/users/{changed}", body={"accountEnabled": False})
    graph("PATCH", f"/v1.0/users/{untracked}", body={"department": "Legal"})  # not selected: not reported
    graph("DELETE", f"/v1.0/users/{gone}")
    items, delta_link, _ = _delta_round(graph, delta_link)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {changed, gone}
    assert by_id[changed]["accountEnabled"] is False
    assert by_id[gone] == {"id": gone, "@removed": {"reason": "changed"}}

    graph("DELETE", f"/v1.0/directory/deletedItems/{gone}")
    items, _, _ = _delta_round(graph, delta_link)
    assert items == [{"id": gone, "@removed": {"reason": "deleted"}}]


def test_minimal_delta_and_latest(graph):
    tenant = graph.tenant
    latest = graph.get("/v1.0/users/delta", "$select=displayName,jobTitle&$deltatoken=latest").body
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    user_id = _plain_member(tenant)
    graph("PATCH", f"/v1.0/users/{user_id}", body={"jobTitle": "CTO"})
    full, _, _ = _delta_round(graph, latest["@odata.deltaLink"])
    minimal, _, _ = _delta_round(graph, latest["@odata.deltaLink"], headers={"Prefer": "return=minimal"})
    assert full == [{"id": user_id, "displayName": tenant.users[user_id]["displayName"], "jobTitle": "CTO"}]
    assert minimal == [{"id": user_id, "jobTitle": "CTO"}]


def test_groups_delta_chunks_members_and_reports_changes(graph):
    tenant = graph.tenant
    headers = {"Prefer": "odata.maxpagesize=10"}
    items, delta_link, _ = _delta_round(graph, "/v1.0/groups/delta", "$select=displayName,members", headers)
    merged: dict[str, set] = {}
    for item in items:
        merged.setdefault(item["id"], set()).update(m["id"] for m in item.get("members@delta", []))
    assert set(merged) == set(tenant.groups)
    assert all(merged[g] == set(tenant.group_members.get(g, {})) for g in tenant.groups)
    big = max(tenant.groups, key=lambda g: len(tenant.group_members.get(g, {})))
    assert sum(1 for i in items if i["id"] == big) > 1, "a big group is repeated across pages"

    team_id = next(t for t in tenant.teams if len(tenant.group_members[t]) < 50)
    user_id = _plain_member(tenant, lambda u: u not in tenant.group_members[team_id])
    body = {
        "@odata.type": MEMBER_TYPE,
        "roles": [],
        "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{user_id}')",
    }
    added = graph("POST", f"/v1.0/teams/{team_id}/members", body=body)
    items, delta_link, _ = _delta_round(graph, delta_link)
    assert items == [
        {
            "id": team_id,
            "displayName": tenant.groups[team_id]["displayName"],
            "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": user_id}],
        }
    ]
    graph("DELETE", f"/v1.0/teams/{team_id}/members/{added.body['id']}")
    items, _, _ = _delta_round(graph, delta_link)
    assert items[0]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.user", "id": user_id, "@removed": {"reason": "deleted"}}
    ]


def test_delta_filter_by_ids_and_unsupported_options(graph):
    ids = list(graph.tenant.users)[:3]
    flt = quote(" or ".join(f"id eq '{i}'" for i in ids))
    items, _, _ = _delta_round(graph, "/v1.0/users/delta", f"$filter={flt}&$select=displayName")
    assert [i["id"] for i in items] == ids
    _error(graph.get("/v1.0/users/delta", "$filter=userType eq 'Guest'"), 400, "Request_UnsupportedQuery")
    _error(graph.get("/v1.0/users/delta", "$orderby=displayName"), 400, "Request_UnsupportedQuery")


@pytest.mark.parametrize("mode", ["syncStateNotFound", "reset410"])
def test_expired_delta_tokens(graph, mode):
    items, delta_link, _ = _delta_round(graph, "/v1.0/users/delta", "$select=displayName")
    mid_round = graph.get("/v1.0/users/delta", "$select=displayName", headers={"Prefer": "odata.maxpagesize=10"})
    graph.directory.expire_delta_tokens(graph.tenant.id, mode)
    expired = graph.follow(delta_link)
    skip_expired = graph.follow(mid_round.body["@odata.nextLink"])
    if mode == "syncStateNotFound":
        _error(expired, 410, "syncStateNotFound")
        _error(skip_expired, 410, "syncStateNotFound")
    else:
        _error(expired, 410, "resyncRequired")
        location = expired.headers["Location"]
        assert location == f"{BASE}/v1.0/users/delta?$select=displayName&$deltatoken="
        restarted, new_link, _ = _delta_round(graph, location)
        assert len(restarted) == len(items) and graph.follow(new_link).status == 200

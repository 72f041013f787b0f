"""Fidelity: Microsoft's own Graph SDK for Python (msgraph-sdk + azure-identity + kiota), which we did not write,
authenticates against the simulator and pages through users and a big team's members.

If the SDK rejects a simulator response (shape, paging links, token format), the simulator is wrong.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _graph_client(sim):
    from azure.identity.aio import ClientSecretCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    creds = sim.credentials()
    credential = ClientSecretCredential(
        creds["tenant_id"], creds["app_id"], creds["secret"],
        authority=sim.base_url, disable_instance_discovery=True, connection_verify=sim.ca_path,
    )  # fmt: skip
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=sim.ca_path))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{sim.base_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential


async def _all_pages(first_page, fetch_next):
    items = list(first_page.value or [])
    link = first_page.odata_next_link
    while link:
        page = await fetch_next(link)
        items.extend(page.value or [])
        link = page.odata_next_link
    return items


def test_sdk_pages_through_users(sim):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder

    async def run():
        client, credential = _graph_client(sim)
        try:
            query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                select=["id", "userPrincipalName", "accountEnabled", "userType"], top=40
            )
            first = await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
            users = await _all_pages(first, lambda link: client.users.with_url(link).get())
        finally:
            await credential.close()
        return first, users

    first, users = asyncio.run(run())
    assert len(first.value) == 40 and first.odata_next_link
    assert len(users) == sim.tenant.user_count()
    assert len({u.id for u in users}) == len(users)
    assert {u.user_type for u in users} == {"Member", "Guest"}


def test_sdk_pages_through_team_members(sim):
    members_by_team: dict[str, int] = {}
    for row in sim.tenant.snapshot("team_members"):
        members_by_team[row["team_id"]] = members_by_team.get(row["team_id"], 0) + 1
    team_id, expected = max(members_by_team.items(), key=lambda kv: kv[1])

    async def run():
        client, credential = _graph_client(sim)
        try:
            builder = client.teams.by_team_id(team_id).members
            first = await builder.get()
            return await _all_pages(first, lambda link: builder.with_url(link).get())
        finally:
            await credential.close()

    members = asyncio.run(run())
    assert len(members) == expected
    assert all(m.odata_type == "#microsoft.graph.aadUserConversationMember" for m in members)
    assert {r for m in members for r in (m.roles or [])} <= {"owner", "guest"}


def test_sdk_reports_missing_permission_as_odata_error(fresh_sim):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    creds = fresh_sim.credentials()
    roles = set(fresh_sim.tenant.apps[creds["app_id"]].roles)
    fresh_sim.set_app(creds["app_id"], roles=sorted(roles - {"User.Read.All", "User.ReadWrite.All"}))

    async def run():
        client, credential = _graph_client(fresh_sim)
        try:
            await client.users.get()
        finally:
            await credential.close()

    with pytest.raises(ODataError) as caught:
        asyncio.run(run())
    assert caught.value.response_status_code == 403
    assert caught.value.error.code == "Authorization_RequestDenied"

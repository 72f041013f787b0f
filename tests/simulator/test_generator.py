"""The tenant generator: determinism, realism (distributions, consistency rules) and speed."""

from __future__ import annotations

import json
import uuid

import pytest

from teamsops.simulator.generator import (
    BOTFRAMEWORK_TENANT_ID,
    DEMO_APP_ID,
    DEMO_APP_SECRET,
    DEMO_BOT_APP_ID,
    DEMO_BOT_APP_SECRET,
    DEMO_TENANT_DOMAIN,
    DEMO_TENANT_ID,
    READ_ROLES,
    ROLE_IDS,
    SKU_IDS,
    WRITE_ROLES,
    TenantSpec,
    app_credentials,
    demo_directory,
    generate_tenant,
)

COLLECTIONS = (
    "users",
    "groups",
    "team_members",
    "channels",
    "skus",
    "installed_apps",
    "role_definitions",
    "role_assignments",
    "deleted_users",
    "managers",
)


def _fingerprint(tenant) -> str:
    return json.dumps(
        {name: tenant.snapshot(name) for name in COLLECTIONS} | {"org": tenant.organization}, sort_keys=True
    )


@pytest.fixture(scope="module")
def demo():
    return generate_tenant(TenantSpec(users=400, teams=40, seed=5))


def test_same_spec_gives_the_same_tenant_byte_for_byte():
    spec = TenantSpec(users=150, teams=15, seed=9)
    assert _fingerprint(generate_tenant(spec)) == _fingerprint(generate_tenant(spec))
    assert _fingerprint(generate_tenant(spec)) != _fingerprint(
        generate_tenant(TenantSpec(users=150, teams=15, seed=10))
    )


def test_default_spec_is_the_demo_tenant_with_fixed_credentials(demo):
    assert (demo.id, demo.initial_domain) == (DEMO_TENANT_ID, DEMO_TENANT_DOMAIN)
    assert app_credentials(demo) == {
        "app_id": DEMO_APP_ID,
        "secret": DEMO_APP_SECRET,
        "bot_app_id": DEMO_BOT_APP_ID,
        "bot_secret": DEMO_BOT_APP_SECRET,
    }
    sync, bot = demo.apps[DEMO_APP_ID], demo.apps[DEMO_BOT_APP_ID]
    assert sync.roles == set(READ_ROLES | WRITE_ROLES) and not sync.bot
    assert sync.secrets[0].expires_at.year >= 2099
    assert bot.bot and demo.catalog[bot.teams_app_id]["displayName"] == "IT Ops Bot"
    assert demo.catalog[bot.teams_app_id]["distributionMethod"] == "organization"
    assert demo.app_definitions[bot.teams_app_id]["azureADAppId"] == DEMO_BOT_APP_ID
    assert BOTFRAMEWORK_TENANT_ID == "d6d49420-f39b-4df7-a1dc-d59a935871db"


def test_a_second_tenant_has_its_own_ids_and_apps(demo):
    other = generate_tenant(
        TenantSpec(
            users=60,
            teams=6,
            seed=5,
            tenant_id="9b1c2d3e-0000-4000-8000-0000000000f2",
            domain="fabrikam-sim.onmicrosoft.com",
        )
    )
    creds = app_credentials(other)
    assert other.id == "9b1c2d3e-0000-4000-8000-0000000000f2"
    assert other.verified_domains == ["fabrikam-sim.com", "fabrikam-sim.onmicrosoft.com"]
    assert not set(creds.values()) & set(app_credentials(demo).values())
    assert not set(other.users) & set(demo.users)
    assert creds == app_credentials(generate_tenant(other.generated["spec"]))  # derived, so reproducible


def test_user_mix_follows_the_spec(demo):
    users = list(demo.users.values())
    guests = [u for u in users if u["userType"] == "Guest"]
    members = [u for u in users if u["userType"] == "Member"]
    disabled = [u for u in members if not u["accountEnabled"]]
    assert len(users) == demo.user_count() == 400
    assert len(guests) == 40
    assert 0.01 < len(disabled) / len(members) < 0.12
    for guest in guests:
        assert "#EXT#@" + DEMO_TENANT_DOMAIN in guest["userPrincipalName"]
        assert guest["creationType"] == "Invitation" and not guest["assignedLicenses"]
    assert all(uuid.UUID(u["id"]).version == 4 for u in users)
    assert len({u["userPrincipalName"].lower() for u in users}) == len(users)


def test_licences_match_subscribed_skus(demo):
    consumed = {sku_id: 0 for sku_id in demo.skus}
    for user in demo.users.values():
        for licence in user["assignedLicenses"]:
            consumed[licence["skuId"]] += 1
    for sku_id, sku in demo.skus.items():
        assert sku["consumedUnits"] == consumed[sku_id]
        assert sku["prepaidUnits"]["enabled"] >= sku["consumedUnits"]
        assert sku["id"] == f"{demo.id}_{sku_id}"
    assert {
        "ENTERPRISEPREMIUM",
        "SPE_E3",
        "SPE_E5",
        "O365_BUSINESS_PREMIUM",
        "TEAMS_EXPLORATORY",
        "FLOW_FREE",
        "POWER_BI_STANDARD",
    } <= {s["skuPartNumber"] for s in demo.skus.values()}
    assert SKU_IDS["SPE_E3"] == "05e9a617-0261-4cee-bb44-138d3ef5d965"


def test_manager_hierarchy_has_no_cycles(demo):
    assert len(demo.manager_of) > 0.8 * sum(1 for u in demo.users.values() if u["userType"] == "Member")
    for user_id in demo.manager_of:
        seen, cursor = set(), user_id
        while cursor in demo.manager_of:
            assert cursor not in seen, "manager cycle"
            seen.add(cursor)
            cursor = demo.manager_of[cursor]
    for manager, reports in demo.reports_of.items():
        assert all(demo.manager_of[r] == manager for r in reports)


def test_teams_groups_channels_and_roles(demo):
    assert len(demo.teams) == 40
    assert all(demo.groups[t]["resourceProvisioningOptions"] == ["Team"] for t in demo.teams)
    non_teams = [g for g in demo.groups.values() if g["id"] not in demo.teams]
    assert any(g["groupTypes"] == ["Unified"] for g in non_teams) and any(g["securityEnabled"] for g in non_teams)
    for team_id in demo.teams:
        owners, members = demo.group_owners.get(team_id, {}), demo.group_members[team_id]
        assert set(owners) <= set(members)
        assert all(demo.users[o]["userType"] == "Member" for o in owners)
        channels = demo.channels[team_id]
        assert channels[0]["displayName"] == "General" and channels[0]["id"].endswith("@thread.tacv2")
    kinds = {c["membershipType"] for chans in demo.channels.values() for c in chans}
    assert {"standard", "private"} <= kinds
    assert len(demo.role_definitions) >= 15
    assert (
        demo.role_definitions[ROLE_IDS["Global Administrator"]]["templateId"] == "62e90394-69f5-4237-9190-012177145e10"
    )
    break_glass = demo.resolve_user(f"breakglass-admin@{DEMO_TENANT_DOMAIN}")
    assert ROLE_IDS["Global Administrator"] in demo.role_ids_of(break_glass["id"])
    principals = {a["principalId"] for a in demo.role_assignments.values()}
    assert principals & set(demo.service_principals), "a service principal holds a role"
    assert demo.deleted_users and all(
        d.user["userPrincipalName"].startswith(uid.replace("-", "")) for uid, d in demo.deleted_users.items()
    )


def test_bot_installed_for_most_members_and_many_teams(demo):
    bot_app = demo.apps[DEMO_BOT_APP_ID].teams_app_id
    members = [u for u, v in demo.users.items() if v["userType"] == "Member"]
    with_bot = sum(1 for u in members if bot_app in demo.user_apps.get(u, {}))
    teams_with_bot = sum(1 for t in demo.teams if bot_app in demo.team_apps.get(t, {}))
    assert 0.55 < with_bot / len(members) < 0.85
    assert 0.35 < teams_with_bot / len(demo.teams) < 0.85
    assert not any(bot_app in demo.user_apps.get(u, {}) for u, v in demo.users.items() if v["userType"] == "Guest")


def test_big_tenants_have_teams_over_a_thousand_members():
    tenant = generate_tenant(TenantSpec(users=5000, teams=200, seed=2))
    sizes = sorted((len(m) for t, m in tenant.group_members.items() if t in tenant.teams), reverse=True)
    assert sum(1 for s in sizes if s > 1000) >= 2
    assert sizes[len(sizes) // 2] < 50, "most teams are small (heavy tail)"


def test_hundred_thousand_user_tenant_is_complete():
    # How fast it generates is a benchmark figure (`python -m teamsops.simulator generate --users 100000`), not a test.
    tenant = generate_tenant(TenantSpec(users=100_000, teams=5_000, seed=1))
    assert tenant.user_count() == 100_000
    sizes: dict[str, int] = {}
    for row in tenant.snapshot("team_members"):
        sizes[row["team_id"]] = sizes.get(row["team_id"], 0) + 1
    assert len(sizes) == 5_000
    assert sum(size > 1_000 for size in sizes.values()) >= 2


def test_demo_directory_holds_one_tenant():
    directory = demo_directory(TenantSpec(users=20, teams=2, seed=1))
    assert list(directory.tenants) == [DEMO_TENANT_ID]
    with pytest.raises(ValueError):
        generate_tenant(TenantSpec(users=1))

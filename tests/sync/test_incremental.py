"""Incremental runs: after users are added, changed and soft-deleted, members added and removed and a team created
(all through Graph writes, except the team: see ``create_team``), the incremental run publishes exactly what a
fresh full sync publishes - while re-reading only the teams that changed. An expired deltaLink gives a full
resync; the rolling installed-apps mode covers every user within ``installed_apps_full_every`` runs."""

from __future__ import annotations

import logging

import pytest
from upath import UPath

from teamsops.simulator.generator import READ_ROLES, WRITE_ROLES
from teamsops.sync import TABLE_ORDER, SyncConfig
from teamsops.sync.fanout import installed_apps_bucket

CONFIG = SyncConfig(shards=2, workers_per_shard=4, page_size=25)
INSTALLER = "TeamsAppInstallation.ReadWriteForUser.All"


def _plain_members(sim) -> list[dict]:
    """Enabled members without admin roles and not owning any team (safe to change, delete or demote)."""
    tenant = sim.tenant
    admins = {a["principalId"] for a in tenant.snapshot("role_assignments")}
    owners = {u for t in tenant.teams for u in tenant.group_owners.get(t, {})}
    return [u for u in tenant.snapshot("users")
            if u["userType"] == "Member" and u["accountEnabled"] and u["id"] not in admins | owners]


def _teams_of(sim, user_id: str) -> set[str]:
    return {t for t in sim.tenant.teams if user_id in sim.tenant.group_members.get(t, {})}


def _membership_id(writer, team_id: str, user_id: str) -> str:
    members = writer.paginate(f"/teams/{team_id}/members")
    return next(m["id"] for m in members if m["userId"] == user_id)


def _uninstalled_app(sim, user_id: str) -> str:
    installed = sim.tenant.user_apps.get(user_id, {})
    return next(a for a in sim.tenant.catalog if a not in installed)


def test_incremental_after_changes_equals_a_fresh_full_sync(tenant_sim, make_client, root, tmp_path, sync,
                                                            matches_tenant, new_team, published_rows):
    client = make_client(tenant_sim)
    first = sync(client, root, "run-1", CONFIG)
    tenant, domain = tenant_sim.tenant, tenant_sim.tenant.verified_domains[0]
    tenant_sim.set_app(tenant_sim.credentials()["app_id"], roles=READ_ROLES | WRITE_ROLES | {INSTALLER})
    writer = make_client(tenant_sim)  # a token issued after the consent carries the installer role
    plain = _plain_members(tenant_sim)
    changed, manager_of, demoted, deleted, removed = plain[0], plain[1], plain[2], plain[3], plain[4]
    team_ids = sorted(tenant.teams)
    touched: set[str] = set()

    created = writer.post("/users", json={
        "accountEnabled": True, "displayName": "Nina New", "mailNickname": "nina.new",
        "userPrincipalName": f"nina.new@{domain}", "department": "Research", "jobTitle": "Analyst",
        "passwordProfile": {"password": "Xy7!verylongpass", "forceChangePasswordNextSignIn": True}})
    writer.patch(f"/users/{changed['id']}", json={"department": "Finance", "jobTitle": "Controller"})
    writer.put(f"/users/{manager_of['id']}/manager/$ref",
               json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{changed['id']}"})
    writer.patch(f"/users/{demoted['id']}", json={"userType": "Guest"})  # their team role becomes "guest"
    touched |= _teams_of(tenant_sim, demoted["id"]) | _teams_of(tenant_sim, deleted["id"])
    writer.delete(f"/users/{deleted['id']}")  # soft delete: memberships and manager links go too
    joined = team_ids[1]
    writer.post(f"/teams/{joined}/members", json={
        "@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": [],
        "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{created['id']}')"})
    left = next(t for t in team_ids if removed["id"] in tenant.group_members.get(t, {}))
    writer.delete(f"/teams/{left}/members/{_membership_id(writer, left, removed['id'])}")
    fresh_team = new_team(tenant_sim, "Quantum Lab", members=[created["id"], changed["id"]], owners=[changed["id"]])
    writer.post(f"/users/{changed['id']}/teamwork/installedApps", json={
        "teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/"
                               f"{_uninstalled_app(tenant_sim, changed['id'])}"})
    touched |= {joined, left, fresh_team}

    second = sync(client, root, "run-2", CONFIG)
    assert second.plan.mode == "incremental" and second.plan.previous_run_id == "run-1"
    assert second.manifest["mode"] == "incremental" and not second.manifest["resyncs"]
    matches_tenant(tenant_sim, root, second.plan.tenant_id)

    fresh_root = UPath(f"file://{tmp_path}/fresh")
    fresh = sync(make_client(tenant_sim), fresh_root, "fresh-full", CONFIG)
    assert fresh.plan.mode == "full"
    for table in TABLE_ORDER:
        assert published_rows(root, second.plan.tenant_id, table) == published_rows(
            fresh_root, fresh.plan.tenant_id, table), table

    # Only the teams that changed were read again; users and groups came from one short delta round each.
    members = second.manifest["tables"]["team_members"]
    assert 3 <= members["extra"]["fetched_parents"] <= len(touched) < len(tenant.teams)
    assert members["extra"]["carried_rows"] > 0
    assert members["requests"] < first.manifest["tables"]["team_members"]["requests"]
    assert second.manifest["tables"]["users"]["requests"] == 1
    assert second.manifest["tables"]["users"]["extra"]["user_type_changed"] == 1


@pytest.mark.parametrize("expiry", ["syncStateNotFound", "reset410"])
def test_expired_delta_link_gives_a_full_resync(expiry, tenant_sim, make_client, root, sync, matches_tenant, caplog):
    client = make_client(tenant_sim)
    sync(client, root, "run-1")
    some_user = _plain_members(tenant_sim)[0]["id"]
    client.patch(f"/users/{some_user}", json={"jobTitle": "Resynced"})
    tenant_sim.expire_delta_tokens(expiry)

    with caplog.at_level(logging.WARNING, logger="teamsops.sync"):
        second = sync(client, root, "run-2")
    assert second.plan.mode == "incremental"  # the plan could not know; the tables found out
    assert second.manifest["mode"] == "full"
    assert set(second.manifest["resyncs"]) == {"users", "teams"}
    assert second.manifest["tables"]["team_members"]["extra"]["reason"].startswith("the teams table was resynced")
    assert any("running a full resync of users" in r.getMessage() for r in caplog.records)
    matches_tenant(tenant_sim, root, second.plan.tenant_id)

    third = sync(client, root, "run-3")  # the new deltaLinks work again
    assert third.manifest["mode"] == "incremental" and not third.manifest["resyncs"]


def test_rolling_installed_apps_cover_every_user_within_full_every_runs(tenant_sim, make_client, root, sync,
                                                                       matches_tenant):
    config = SyncConfig(installed_apps_fraction=0.5, installed_apps_full_every=2)
    assert config.installed_apps_buckets == 2
    client = make_client(tenant_sim)
    sync(client, root, "run-1", config)
    tenant_sim.set_app(tenant_sim.credentials()["app_id"], roles=READ_ROLES | WRITE_ROLES | {INSTALLER})
    writer = make_client(tenant_sim)
    users = _plain_members(tenant_sim)[:12]
    assert {installed_apps_bucket(u["id"], 2) for u in users} == {0, 1}
    for user in users:
        writer.post(f"/users/{user['id']}/teamwork/installedApps", json={
            "teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/"
                                   f"{_uninstalled_app(tenant_sim, user['id'])}"})

    second = sync(client, root, "run-2", config)
    apps = second.manifest["tables"]["user_installed_apps"]
    assert apps["mode"] == "incremental" and apps["extra"]["cycle"] == 1
    assert 0 < apps["extra"]["fetched_parents"] < len(tenant_sim.tenant.users)
    with pytest.raises(AssertionError, match="user_installed_apps"):  # half the users are not re-read yet
        matches_tenant(tenant_sim, root, second.plan.tenant_id, ("user_installed_apps",))
    matches_tenant(tenant_sim, root, second.plan.tenant_id, tuple(t for t in TABLE_ORDER if t != "user_installed_apps"))

    third = sync(client, root, "run-3", config)  # the other bucket: every user re-read within 2 runs
    assert third.manifest["tables"]["user_installed_apps"]["extra"]["cycle"] == 2
    matches_tenant(tenant_sim, root, third.plan.tenant_id)


def test_installed_apps_buckets_never_exceed_full_every():
    assert SyncConfig().installed_apps_buckets == 1
    assert SyncConfig(installed_apps_fraction=0.3).installed_apps_buckets == 4
    assert SyncConfig(installed_apps_fraction=0.01, installed_apps_full_every=7).installed_apps_buckets == 7
    with pytest.raises(ValueError, match="installed_apps_fraction"):
        SyncConfig(installed_apps_fraction=0)

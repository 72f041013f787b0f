"""The simulator's state rules (teamsops.simulator.model), exercised directly on a small generated tenant."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from teamsops.simulator.generator import TenantSpec, generate_tenant
from teamsops.simulator.model import (
    Directory,
    RuleViolation,
    check_password,
    opaque_id,
    parse_opaque_id,
    utcnow,
)


@pytest.fixture
def tenant():
    return generate_tenant(TenantSpec(users=80, teams=8, seed=3))


def _member_with_groups(tenant):
    return next(
        u
        for u in tenant.users
        if tenant.member_of.get(u)
        and tenant.manager_of.get(u)
        and not tenant.holds_admin_role(u)
        and tenant.reports_of.get(u)
    )


def _new_user(tenant, upn, password="Str0ng!Passw0rd"):
    props = {
        "accountEnabled": True,
        "displayName": "T",
        "mailNickname": "t",
        "userPrincipalName": upn,
        "passwordProfile": {"password": password},
    }
    return tenant.create_user(props, "11111111-1111-4111-8111-111111111111", utcnow())


def test_upn_must_use_a_verified_domain_and_be_unique(tenant):
    existing = next(iter(tenant.users.values()))["userPrincipalName"]
    with pytest.raises(RuleViolation, match="domain portion"):
        _new_user(tenant, "someone@not-verified.example")
    with pytest.raises(RuleViolation, match="same value for property userPrincipalName"):
        _new_user(tenant, existing.upper())  # uniqueness ignores case
    with pytest.raises(RuleViolation, match="userPrincipalName"):
        _new_user(tenant, f"bad space@{tenant.verified_domains[0]}")
    user = _new_user(tenant, f"Fresh.User@{tenant.verified_domains[1]}")
    assert tenant.resolve_user("fresh.user@" + tenant.verified_domains[1].upper()) is user


@pytest.mark.parametrize("password", ["short1A", "alllowercase1", "ALLUPPER!!", "", None])
def test_weak_passwords_are_refused(password):
    with pytest.raises(RuleViolation) as caught:
        check_password(password)
    assert caught.value.kind == "invalid"


def test_good_password_passes():
    check_password("xWwvJ]6NMw+bWH-d")


def test_soft_delete_removes_links_and_restore_brings_them_back(tenant):
    user_id = _member_with_groups(tenant)
    groups = list(tenant.member_of[user_id])
    manager = tenant.manager_of[user_id]
    reports = list(tenant.reports_of[user_id])
    upn = tenant.users[user_id]["userPrincipalName"]
    sku_id = (
        tenant.users[user_id]["assignedLicenses"][0]["skuId"] if tenant.users[user_id]["assignedLicenses"] else None
    )
    consumed = tenant.skus[sku_id]["consumedUnits"] if sku_id else None

    tenant.delete_user(user_id, utcnow())
    assert user_id not in tenant.users and tenant.resolve_user(upn) is None
    assert all(user_id not in tenant.group_members[g] for g in groups)
    assert not tenant.member_of.get(user_id)  # the reverse index follows
    assert user_id not in tenant.manager_of and all(r not in tenant.manager_of for r in reports)
    deleted = tenant.deleted_users[user_id].user
    assert deleted["userPrincipalName"] == user_id.replace("-", "") + upn  # Entra's rename of deleted UPNs
    if sku_id:
        assert tenant.skus[sku_id]["consumedUnits"] == consumed - 1

    tenant.restore_user(user_id)
    assert tenant.users[user_id]["userPrincipalName"] == upn
    assert all(user_id in tenant.group_members[g] for g in groups)
    assert tenant.manager_of[user_id] == manager
    assert all(tenant.manager_of[r] == user_id for r in reports)
    if sku_id:
        assert tenant.skus[sku_id]["consumedUnits"] == consumed


def test_restore_refuses_when_the_upn_was_reused(tenant):
    user_id = _member_with_groups(tenant)
    upn = tenant.users[user_id]["userPrincipalName"]
    tenant.delete_user(user_id, utcnow())
    _new_user(tenant, upn)
    with pytest.raises(RuleViolation, match="same value"):
        tenant.restore_user(user_id)
    assert user_id in tenant.deleted_users


def test_manager_cycles_and_self_are_refused(tenant):
    user_id = _member_with_groups(tenant)
    report = next(iter(tenant.reports_of[user_id]))
    with pytest.raises(RuleViolation, match="own manager"):
        tenant.set_manager(user_id, user_id)
    with pytest.raises(RuleViolation, match="circular"):
        tenant.set_manager(user_id, report)
    tenant.remove_manager(report)
    with pytest.raises(RuleViolation) as caught:
        tenant.remove_manager(report)
    assert caught.value.kind == "not_found"


def test_last_owner_cannot_be_removed_or_demoted(tenant):
    team_id = next(t for t in tenant.teams if len(tenant.group_owners.get(t, {})) == 1)
    owner = next(iter(tenant.group_owners[team_id]))
    with pytest.raises(RuleViolation, match="at least one owner"):
        tenant.remove_team_member(team_id, owner)
    with pytest.raises(RuleViolation, match="at least one owner"):
        tenant.set_team_member_owner(team_id, owner, owner=False)
    other = next(u for u in tenant.group_members[team_id] if u != owner and tenant.users[u]["userType"] == "Member")
    tenant.set_team_member_owner(team_id, other, owner=True)
    tenant.remove_team_member(team_id, owner)  # allowed now that another owner exists
    assert owner not in tenant.group_members[team_id] and owner not in tenant.group_owners[team_id]
    assert team_id not in tenant.member_of[owner] and team_id not in tenant.owner_of[owner]


def test_guests_cannot_be_team_owners(tenant):
    team_id = next(iter(tenant.teams))
    guest = next(u for u, v in tenant.users.items() if v["userType"] == "Guest")
    with pytest.raises(RuleViolation, match="Guest"):
        tenant.add_team_member(team_id, guest, owner=True)
    tenant.add_team_member(team_id, guest, owner=False)
    assert tenant.team_roles(team_id, guest) == ["guest"]


def test_writes_feed_the_change_log(tenant):
    user_id = _member_with_groups(tenant)
    before = tenant.change_seq
    tenant.update_user(user_id, {"department": "Legal"}, utcnow())
    change = tenant.changes[-1]
    assert (change.seq, change.kind, change.object_id, change.props) == (before + 1, "user", user_id, {"department"})
    team_id = next(iter(tenant.teams))
    outsider = next(
        u for u in tenant.users if u not in tenant.group_members[team_id] and tenant.users[u]["userType"] == "Member"
    )
    tenant.add_team_member(team_id, outsider, owner=False)
    assert tenant.changes[-1].links == (("members", outsider, True),)


def test_snapshot_returns_detached_json_rows(tenant):
    users = tenant.snapshot("users")
    assert len(users) == tenant.user_count() == 80
    users[0]["displayName"] = "changed"
    assert tenant.users[users[0]["id"]]["displayName"] != "changed"
    for name in (
        "groups",
        "team_members",
        "channels",
        "skus",
        "installed_apps",
        "role_definitions",
        "role_assignments",
        "deleted_users",
        "managers",
        "bot_messages",
    ):
        json.dumps(tenant.snapshot(name))
    row = tenant.snapshot("team_members")[0]
    assert parse_opaque_id(row["membership_id"]) == [row["team_id"], row["user_id"]]
    with pytest.raises(KeyError, match="unknown collection"):
        tenant.snapshot("nope")


def test_opaque_ids_round_trip():
    assert parse_opaque_id(opaque_id("a", "b")) == ["a", "b"]
    assert parse_opaque_id("not base64!") is None


def test_journal_and_delta_expiry_bookkeeping(tenant):
    directory = Directory()
    directory.add_tenant(tenant)
    entry = directory.record_write(
        tenant_id=tenant.id,
        app_id="app",
        method="PATCH",
        path="/v1.0/users/x",
        status=204,
        request_id="r",
        client_request_id="c",
        target="x",
    )
    assert entry["seq"] == 1 and directory.journal_since(0) == [entry] and directory.journal_since(1) == []
    directory.expire_delta_tokens(tenant.initial_domain, "reset410")  # by domain as well as by id
    assert tenant.delta_epoch == 1 and tenant.delta_expired_modes == {0: "reset410"}
    with pytest.raises(ValueError, match="mode"):
        directory.expire_delta_tokens(tenant.id, "bogus")
    with pytest.raises(KeyError):
        directory.expire_delta_tokens("00000000-0000-0000-0000-000000000000")


def test_expired_soft_deleted_users_can_be_purged(tenant):
    deleted_id = next(iter(tenant.deleted_users))
    later = tenant.deleted_users[deleted_id].deleted_at + timedelta(days=31)
    tenant.purge_expired_deleted_users(later)
    assert deleted_id not in tenant.deleted_users
    assert tenant.changes[-1].lifecycle == "purged"


def test_directory_resolves_tenants_and_apps(tenant):
    directory = Directory()
    directory.add_tenant(tenant)
    assert directory.get_tenant(tenant.id.upper()) is tenant
    assert directory.get_tenant(tenant.verified_domains[0].upper()) is tenant
    assert directory.get_tenant("unknown.example") is None
    app_id = tenant.generated["sync_app_id"]
    assert directory.find_app(app_id) == (tenant, tenant.apps[app_id])

"""Safeguards: protected accounts (configured and privileged role holders), the explicit override shown in bold,
the last-owner rule, batch limits, and the re-check right before applying. Each refusal is a clear error and leaves
the journal without a single write."""

from __future__ import annotations

import pytest

from teamsops.actions import (
    ACTIONS,
    ApplyFailed,
    SafeguardError,
    Safeguards,
    apply_plan,
    build_plan,
    raise_for_outcome,
    render_plan,
    verify_plan,
)
from teamsops.simulator.generator import ROLE_IDS

WHY = {"reason": "security review", "ticket": "SEC-7"}


def test_configured_protected_account_is_refused_even_with_override(client, pick, journal):
    uid = pick.user()
    guards = Safeguards(protected_accounts=frozenset({pick.upn(uid).upper()}))
    with pytest.raises(SafeguardError, match="protected accounts") as info:
        build_plan(client, "msteams_disable_user", {"user": uid, "override_protection": True, **WHY},
                   safeguards=guards)
    assert "configured protected account (break-glass)" in str(info.value)
    assert journal.entries() == []


def test_break_glass_global_admin_is_refused(client, pick, journal):
    with pytest.raises(SafeguardError) as info:
        build_plan(client, "msteams_offboard_user", {"user": pick.upn(pick.break_glass()), **WHY})
    assert "Global Administrator" in str(info.value) and "override_protection" in str(info.value)
    assert journal.entries() == []


def test_batch_lists_every_protected_user(client, pick, journal):
    admins = [pick.admin("Global Administrator"), pick.admin("User Administrator")]
    with pytest.raises(SafeguardError) as info:
        build_plan(client, "msteams_revoke_sessions", {"users": [*admins, pick.user()], **WHY})
    assert len(info.value.problems) == 2
    assert "Global Administrator" in info.value.problems[0] and "User Administrator" in info.value.problems[1]
    assert journal.entries() == []


def test_override_is_bold_in_the_approval_and_graph_still_protects_admins(client, pick, journal, settle):
    admin = pick.admin("Global Administrator")
    plan = build_plan(client, "msteams_disable_user", {"user": admin, "override_protection": True, **WHY})
    body = render_plan(plan)
    assert "**OVERRIDE: the protection of privileged accounts is lifted for this run" in body
    assert "Global Administrator" in body and plan["overrides"]["overridden"][admin]["roles"]
    result = apply_plan(client, plan, settle=settle)
    # app-only User.ReadWrite.All cannot change accountEnabled of a privileged admin: Graph answers 403
    assert result["outcome"] == "failed" and "403" in result["errors"][0]
    assert journal.graph() == []
    with pytest.raises(ApplyFailed, match="failed"):
        raise_for_outcome(result)


def test_override_lets_a_teams_admin_be_added_to_a_team(client, pick, journal, settle):
    admin = pick.admin("Teams Administrator")
    team = pick.team(not_member=admin)
    conf = {"user": admin, "team": team, "role": "member"}
    with pytest.raises(SafeguardError, match="Teams Administrator"):
        build_plan(client, "msteams_add_to_team", conf)
    plan = build_plan(client, "msteams_add_to_team", {**conf, "override_protection": True})
    assert "**OVERRIDE" in render_plan(plan)
    assert apply_plan(client, plan, settle=settle)["outcome"] == "success"
    assert journal.graph_matches([("POST", f"/v1.0/teams/{team}/members")])


def test_role_held_through_a_role_assignable_group_is_protected(sim, client, pick, journal):
    uid = pick.user()
    group_id = "0b5e1c8e-1111-4222-8333-444455556666"
    with sim.tenant.lock:
        sim.tenant.groups[group_id] = {"id": group_id, "displayName": "Helpdesk admins", "isAssignableToRole": True,
                                       "securityEnabled": True, "mailEnabled": False, "groupTypes": []}
        sim.tenant.link_member(group_id, uid)
        sim.tenant.role_assignments["grp-assignment"] = {
            "id": "grp-assignment", "principalId": group_id, "resourceScope": "/", "directoryScopeId": "/",
            "roleDefinitionId": ROLE_IDS["Helpdesk Administrator"]}
    with pytest.raises(SafeguardError, match=r"Helpdesk Administrator \(through a group\)"):
        build_plan(client, "msteams_disable_user", {"user": uid, **WHY})
    assert journal.entries() == []


def test_a_target_that_became_admin_after_approval_is_refused_before_any_write(sim, client, pick, journal, settle):
    uid = pick.user()
    plan = build_plan(client, "msteams_disable_user", {"user": uid, **WHY})
    with sim.tenant.lock:  # someone assigns a privileged role while the run waits for approval
        sim.tenant.role_assignments["late"] = {"id": "late", "principalId": uid, "resourceScope": "/",
                                               "directoryScopeId": "/",
                                               "roleDefinitionId": ROLE_IDS["Privileged Role Administrator"]}
    with pytest.raises(SafeguardError, match="became protected"):
        apply_plan(client, plan, settle=settle)
    assert journal.entries() == []


def test_batch_above_the_limit_is_refused(client, pick, journal):
    users = pick.users()[:3]
    with pytest.raises(SafeguardError, match="3 users in one run is above the configured limit of 2"):
        build_plan(client, "msteams_disable_user", {"users": users, **WHY}, safeguards=Safeguards(max_batch=2))
    with pytest.raises(SafeguardError, match="recipients"):
        build_plan(client, "msteams_bot_message_users", {"users": users, "message": "hi"},
                   safeguards=Safeguards(max_recipients=2))
    assert journal.entries() == []


def test_safeguards_from_configuration():
    guards = Safeguards.from_mapping({"protected_accounts": "bg1@contoso.com; BG2@contoso.com", "max_batch": 5,
                                      "extra_protected_roles": {"11111111-2222-3333-4444-555555555555": "Custom"}})
    assert guards.protected_accounts == {"bg1@contoso.com", "bg2@contoso.com"} and guards.max_batch == 5
    assert guards.protected_roles["11111111-2222-3333-4444-555555555555"] == "Custom"
    assert guards.protected_roles[ROLE_IDS["Global Administrator"]] == "Global Administrator"
    with pytest.raises(ValueError, match="unknown safeguard setting"):
        Safeguards.from_mapping({"max_batches": 3})


def test_removing_the_last_owner_needs_a_new_owner(client, pick, journal, settle):
    owner = pick.user(sole_owner=True)
    team = pick.owns_alone(owner)[0]
    conf = {"user": pick.upn(owner), "team": team, **WHY}
    with pytest.raises(SafeguardError, match="without an owner") as info:
        build_plan(client, "msteams_remove_from_team", conf)
    assert pick.team_name(team) in str(info.value)
    assert journal.entries() == []

    heir = pick.user(exclude=(owner,), owner=False)
    plan = build_plan(client, "msteams_remove_from_team", {**conf, "new_owner": pick.upn(heir)})
    assert [s["kind"] for s in plan["steps"]] == ["add_team_member", "remove_team_member"]
    result = apply_plan(client, plan, settle=settle)
    assert result["outcome"] == "success"
    heir_was_member = plan["steps"][0]["before"]["member"]
    first = ("PATCH", f"/v1.0/teams/{team}/members/[A-Za-z0-9+/=]+") if heir_was_member else \
        ("POST", f"/v1.0/teams/{team}/members")
    assert journal.graph_matches([first, ("DELETE", f"/v1.0/teams/{team}/members/[A-Za-z0-9+/=]+")])
    assert list(pick.t.group_owners[team]) == [heir]
    assert verify_plan(client, plan, result, settle=settle)["ok"]


def test_owners_leaving_together_do_not_count_as_remaining_owners(sim, client, pick, settle):
    a, b = pick.users(sole_owner=False, owner=False)[:2]
    team = pick.team()
    with sim.tenant.lock:  # the team is owned by exactly a and b, who are offboarded in one batch
        for uid in list(sim.tenant.group_owners.get(team, {})):
            sim.tenant.unlink_owner(team, uid)
        for uid in (a, b):
            sim.tenant.link_member(team, uid)
            sim.tenant.link_owner(team, uid)
    conf = {"users": [a, b], **WHY}
    with pytest.raises(SafeguardError) as info:
        build_plan(client, "msteams_remove_from_all_teams", conf)
    assert len(info.value.problems) == 2
    heir = pick.user(exclude=(a, b))
    plan = build_plan(client, "msteams_remove_from_all_teams", {**conf, "new_owner": heir})
    promotions = [s for s in plan["steps"] if s["kind"] == "add_team_member"]
    assert len(promotions) == 1 and promotions[0]["object"]["id"] == team
    assert apply_plan(client, plan, settle=settle)["outcome"] == "success"
    assert list(sim.tenant.group_owners[team]) == [heir]


def test_guests_cannot_become_owners(client, pick, journal):
    guest = pick.guest()
    with pytest.raises(SafeguardError, match="guests cannot be team owners"):
        build_plan(client, "msteams_add_to_team", {"user": guest, "team": pick.team(), "role": "owner"})
    owner = pick.user(sole_owner=True)
    with pytest.raises(SafeguardError, match="guests cannot own teams"):
        build_plan(client, "msteams_remove_from_all_teams", {"user": owner, "new_owner": guest, **WHY})
    assert journal.entries() == []


def test_circular_manager_chain_is_refused(client, pick, journal):
    report = next(u for u in pick.users(manager=True) if not pick.is_admin(pick.t.manager_of[u]))
    boss = pick.t.manager_of[report]
    with pytest.raises(SafeguardError, match="circular reporting chain"):
        build_plan(client, "msteams_assign_manager", {"user": boss, "manager": report})
    assert journal.entries() == []


PROTECTED_ACTIONS = sorted(d for d, spec in ACTIONS.items() if "override_protection" in spec.params)


@pytest.mark.parametrize("dag_id", PROTECTED_ACTIONS)
def test_every_action_refuses_a_privileged_target(dag_id, sim, client, pick, journal, scenarios):
    conf, _, _ = scenarios[dag_id](pick)
    admin = pick.admin("User Administrator")
    if dag_id == "msteams_restore_user":
        admin = conf["user"]  # a deleted user who held a privileged role
        with sim.tenant.lock:
            sim.tenant.role_assignments["deleted-admin"] = {
                "id": "deleted-admin", "principalId": admin, "resourceScope": "/", "directoryScopeId": "/",
                "roleDefinitionId": ROLE_IDS["User Administrator"]}
    elif "users" in conf:
        conf["users"] = [pick.upn(admin)]
    else:
        conf["user"] = pick.upn(admin)
    with pytest.raises(SafeguardError, match="User Administrator"):
        build_plan(client, dag_id, conf)
    assert journal.entries() == []


def test_deleting_a_last_owner_is_refused(client, pick, journal):
    owner = pick.user(sole_owner=True)
    team = pick.owns_alone(owner)[0]
    for dag_id, extra in (("msteams_delete_user", {}),
                          ("msteams_offboard_user", {"delete": True, "remove_from_all_teams": False})):
        with pytest.raises(SafeguardError, match="without an owner") as info:
            build_plan(client, dag_id, {"user": owner, **WHY, **extra})
        assert team in str(info.value) and "new_owner" in str(info.value)
    assert journal.entries() == []


def test_create_user_on_an_existing_protected_upn_is_refused(client, pick, journal):
    admin = pick.admin("Global Administrator")
    user = pick.t.users[admin]
    conf = {"user_principal_name": user["userPrincipalName"], "display_name": "X", "mail_nickname": "x",
            "manager": pick.upn(pick.user())}
    with pytest.raises(SafeguardError, match="Global Administrator"):
        build_plan(client, "msteams_create_user", conf)
    assert journal.entries() == []

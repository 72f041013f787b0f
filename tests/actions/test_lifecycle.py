"""Creating users (the temporary password reaches the manager by bot and nowhere else) and restoring them (with
the team memberships the audit log recorded)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from teamsops.actions import (
    ConfError,
    PlanError,
    SafeguardError,
    apply_plan,
    build_plan,
    render_plan,
    render_result,
    verify_plan,
)
from teamsops.actions.passwords import PASSWORD_CLASSES, temporary_password
from teamsops.audit import AuditLog

WHY = {"reason": "left", "ticket": "HR-9"}


def _create_conf(pick, manager: str | None) -> dict:
    domain = pick.t.verified_domains[0]
    conf = {"user_principal_name": f"jane.new@{domain}", "display_name": "Jane New", "mail_nickname": "jane.new",
            "usage_location": "DE"}
    if manager:
        conf["manager"] = pick.upn(manager)
    return conf


def test_password_goes_to_the_manager_and_nowhere_else(client, bot, pick, journal, tmp_path, caplog, settle):
    caplog.set_level(logging.DEBUG)
    manager = pick.user(bot=True)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    plan = build_plan(client, "msteams_create_user", _create_conf(pick, manager))
    audit.record_plan(plan)
    result = apply_plan(client, plan, bot=bot, on_step=audit.step_recorder(plan), settle=settle)
    report = verify_plan(client, plan, result, settle=settle)
    audit.record_result(plan, result, report)
    assert result["outcome"] == "success" and report["ok"]
    assert result["password"] == {"generated": True, "delivered": True,
                                  "delivered_to": f"{pick.t.users[manager]['displayName']} <{pick.upn(manager)}>"}

    [message] = journal.messages()
    assert message["user_id"] == manager
    password = re.search(r"Temporary password: `([^`]+)`", message["text"]).group(1)
    assert len(password) == 16 and all(any(c in cls for c in password) for cls in PASSWORD_CLASSES)
    stored = json.dumps([plan, result, report, render_plan(plan), render_result(plan, result, report),
                         audit.query(limit=10_000)], default=str)
    assert password not in stored and password not in caplog.text
    created = next(u for u in pick.t.users.values() if u["userPrincipalName"].startswith("jane.new@"))
    assert created["usageLocation"] == "DE" and pick.t.manager_of[created["id"]] == manager
    audit.close()


def test_without_a_manager_an_admin_must_reset_the_password(client, bot, pick, journal, settle):
    plan = build_plan(client, "msteams_create_user", _create_conf(pick, None))
    assert any("admin must reset" in w for w in plan["warnings"])
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "success" and journal.graph_matches([("POST", "/v1.0/users")])
    assert result["password"]["delivered"] is False and "Entra admin center" in result["password"]["advice"]
    assert "admin must reset" in render_result(plan, result)
    assert journal.messages() == []


def test_a_manager_without_the_bot_means_an_admin_must_reset_it(client, bot, pick, journal, settle):
    manager = pick.user(bot=False)
    plan = build_plan(client, "msteams_create_user", _create_conf(pick, manager))
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "partial" and result["password"]["delivered"] is False
    assert [s["status"] for s in result["steps"]] == ["applied", "applied", "not_reachable"]
    assert journal.messages() == []


def test_an_existing_upn_is_a_no_op_without_a_new_password(client, bot, pick, journal, settle):
    uid = pick.user(manager=True)
    user = pick.t.users[uid]
    conf = {"user_principal_name": user["userPrincipalName"], "display_name": "Someone Else",
            "mail_nickname": user["mailNickname"], "manager": pick.upn(pick.t.manager_of[uid])}
    plan = build_plan(client, "msteams_create_user", conf)
    assert plan["summary"]["changes"] == 0 and any("differs" in w for w in plan["warnings"])
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["password"]["generated"] is False and journal.entries() == []


def test_unverified_domain_is_refused(client, journal):
    with pytest.raises(ConfError, match="not a verified domain"):
        build_plan(client, "msteams_create_user", {"user_principal_name": "x@fabrikam.com", "display_name": "X",
                                                   "mail_nickname": "x"})
    assert journal.entries() == []


def test_temporary_passwords_are_random_and_complex():
    seen = {temporary_password() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        assert len(password) == 16 and all(any(c in cls for c in password) for cls in PASSWORD_CLASSES)


def test_offboard_delete_then_restore_with_recorded_memberships(sim, client, bot, pick, journal, tmp_path, settle):
    uid = pick.user(teams=2, sole_owner=False)
    team = next(t for t in pick.t.teams if uid in pick.t.group_members.get(t, {}))
    with sim.tenant.lock:  # make the user a co-owner of one team, so the owner role must come back too
        sim.tenant.link_owner(team, uid)
    before = {t: ("owner" if uid in pick.t.group_owners.get(t, {}) else "member") for t in pick.t.joined_team_ids(uid)}
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    off = build_plan(client, "msteams_offboard_user", {"user": uid, "delete": True, "notify_manager": False, **WHY},
                     run_id="r1")
    result = apply_plan(client, off, bot=bot, on_step=audit.step_recorder(off), settle=settle)
    assert result["outcome"] == "success" and uid in pick.t.deleted_users
    assert audit.membership_undo(uid) == sorted(
        [{"team_id": t, "team_name": pick.team_name(t), "role": r} for t, r in before.items()],
        key=lambda e: e["team_name"])

    journal.mark()
    plan = build_plan(client, "msteams_restore_user", {"user": uid, "restore_memberships": True}, audit=audit)
    assert [s["kind"] for s in plan["steps"]] == ["restore_user", *["add_team_member"] * len(before)]
    restored = apply_plan(client, plan, settle=settle)
    assert restored["outcome"] == "success"
    assert journal.graph_matches([("POST", f"/v1.0/directory/deletedItems/{uid}/restore"),
                                          *[("POST", r"/v1\.0/teams/[0-9a-f-]{36}/members")] * len(before)])
    after = {t: ("owner" if uid in pick.t.group_owners.get(t, {}) else "member") for t in pick.t.joined_team_ids(uid)}
    assert after == before
    assert verify_plan(client, plan, restored, settle=settle)["ok"]
    audit.close()


def test_restore_memberships_needs_the_audit_log(client, pick):
    with pytest.raises(PlanError, match="audit log"):
        build_plan(client, "msteams_restore_user", {"user": pick.deleted_user(), "restore_memberships": True})


def test_restore_is_refused_when_the_upn_was_reused(sim, client, pick, journal):
    uid = pick.deleted_user()
    original = sim.tenant.deleted_users[uid].original_upn
    other = pick.user()
    with sim.tenant.lock:  # someone got the UPN meanwhile
        old = sim.tenant.users[other]["userPrincipalName"]
        sim.tenant.upn_index.pop(old.lower())
        sim.tenant.users[other] = {**sim.tenant.users[other], "userPrincipalName": original}
        sim.tenant.upn_index[original.lower()] = other
    with pytest.raises(SafeguardError, match="another user now has the UPN"):
        build_plan(client, "msteams_restore_user", {"user": uid})
    assert journal.entries() == []


def test_crash_between_create_and_delivery_says_the_password_is_gone(client, bot, pick, journal, settle):
    manager = pick.user(bot=True)
    plan = build_plan(client, "msteams_create_user", _create_conf(pick, manager))

    def killed(step, outcome):
        if step["kind"] == "create_user":
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        apply_plan(client, plan, bot=bot, on_step=killed, settle=settle)
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert [s["status"] for s in result["steps"]] == ["already_done", "applied", "skipped"]
    assert result["password"]["delivered"] is False and "earlier attempt" in result["password"]["reason"]
    assert journal.graph_matches([("POST", "/v1.0/users"), ("PUT", r"/v1\.0/users/jane\.new@.*/manager/\$ref")])
    assert journal.messages() == []

"""The offboarding runbook under failure: a worker killed between two writes, connections dropped after a write was
sent (outcome unknown) or before it was handled, and one user of a batch failing. In every case the journal ends
with each expected write applied exactly once and the audit log holds every step."""

from __future__ import annotations

import pytest

from teamsops.actions import apply_plan, build_plan, verify_plan
from teamsops.audit import AuditLog

WHY = {"reason": "contract ended", "ticket": "HR-77"}
MEMBERSHIP = "[A-Za-z0-9+/=]+"


def _expected(uid: str, teams: list[str]) -> list[tuple[str, str]]:
    return [("POST", f"/v1.0/users/{uid}/revokeSignInSessions"), ("PATCH", f"/v1.0/users/{uid}"),
            *[("DELETE", f"/v1.0/teams/{t}/members/{MEMBERSHIP}") for t in teams],
            ("DELETE", f"/v1.0/users/{uid}/manager/\\$ref")]


@pytest.fixture
def audit(tmp_path):
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    yield log
    log.close()


@pytest.mark.parametrize("crash_after", ["1", "3", "5"])
def test_killed_between_two_writes_then_rerun_applies_each_write_once(crash_after, client, bot, pick, journal, audit,
                                                                     settle):
    uid = pick.user(manager_bot=True, teams=2, sole_owner=False)
    teams = pick.t.joined_team_ids(uid)
    plan = build_plan(client, "msteams_offboard_user", {"user": uid, **WHY}, run_id="manual__off")
    recorder = audit.step_recorder(plan, approver="bob")

    def killed(step, outcome):
        recorder(step, outcome)
        if step["id"] == crash_after:
            raise SystemExit("worker killed")  # not an Exception: nothing in apply may swallow it

    with pytest.raises(SystemExit):
        apply_plan(client, plan, bot=bot, on_step=killed, settle=settle)
    first = journal.graph()
    assert 0 < len(first) <= int(crash_after)

    done = audit.applied_step_ids(plan["plan_id"], "manual__off")
    result = apply_plan(client, plan, bot=bot, on_step=recorder, done_step_ids=done, settle=settle)
    assert result["outcome"] == "success"
    assert journal.graph_matches(_expected(uid, teams)), journal.graph()
    assert len(journal.messages()) == 1  # the manager is told once
    report = verify_plan(client, plan, result, settle=settle)
    assert report["ok"]
    audit.record_result(plan, result, report, approver="bob")

    rows = audit.query(plan_id=plan["plan_id"], phase="apply")
    applied = [r["step_id"] for r in rows if r["outcome"] == "applied"]
    assert sorted(applied, key=int) == [s["id"] for s in plan["steps"]]  # every step applied in exactly one attempt
    graph_ids = [rid for r in rows for rid in r["request_ids"] or []]
    assert sorted(graph_ids) == sorted(journal.graph_request_ids())
    assert {r["step_id"] for r in audit.query(plan_id=plan["plan_id"], phase="verify")} == \
        {s["id"] for s in plan["steps"]}
    assert audit.query(plan_id=plan["plan_id"], phase="run")[0]["outcome"] == "success"


@pytest.mark.parametrize(("path", "method"), [
    (r"/v1\.0/teams/.*/members/", "DELETE"),
    (r"/revokeSignInSessions$", "POST"),
    (r"/v1\.0/users/[^/]+$", "PATCH"),
])
def test_connection_lost_after_the_write_is_verified_not_resent(path, method, sim, client, bot, pick, journal, settle):
    uid = pick.user(manager_bot=True, teams=1, sole_owner=False)
    teams = pick.t.joined_team_ids(uid)
    plan = build_plan(client, "msteams_offboard_user", {"user": uid, **WHY})
    sim.inject("reset_after", times=1, path=path, method=method)
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "success"
    assert journal.graph_matches(_expected(uid, teams))
    noted = [s for s in result["steps"] if s["note"] and "not sent again" in s["note"]]
    assert len(noted) == 1 and noted[0]["request_ids"] == []
    assert verify_plan(client, plan, result, settle=settle)["ok"]


def test_connection_lost_before_the_write_is_checked_then_sent_once(sim, client, pick, journal, settle):
    owner, team, heir = next((o, t, h) for o in pick.users(sole_owner=True) for t in pick.owns_alone(o)
                             for h in pick.users(exclude=(o,)) if h not in pick.t.group_members.get(t, {}))
    plan = build_plan(client, "msteams_remove_from_team", {"user": owner, "team": team, "new_owner": heir, **WHY})
    sim.inject("reset_before", times=1, path=rf"/v1\.0/teams/{team}/members$", method="POST")
    result = apply_plan(client, plan, settle=settle)
    assert result["outcome"] == "success"
    assert journal.graph_matches([("POST", f"/v1.0/teams/{team}/members"),
                                          ("DELETE", f"/v1.0/teams/{team}/members/{MEMBERSHIP}")])
    assert "sent once more" in result["steps"][0]["note"]
    assert list(pick.t.group_owners[team]) == [heir]


def test_one_failing_user_does_not_stop_the_others_and_a_rerun_finishes(sim, client, bot, pick, journal, settle):
    a, b = pick.users(manager=True, sole_owner=False)[:2]
    conf = {"users": [a, b], "notify_manager": False, "remove_from_all_teams": False, **WHY}
    plan = build_plan(client, "msteams_offboard_user", conf)
    sim.inject("503", times=50, path=rf"/v1\.0/users/{a}$", method="PATCH", retry_after=0)
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "failed"
    statuses = {(s["target_id"], s["kind"]): s["status"] for s in result["steps"]}
    assert statuses[(a, "revoke_sessions")] == "applied" and statuses[(a, "disable_user")] == "failed"
    assert statuses[(a, "remove_manager")] == "not_run"
    assert {statuses[(b, k)] for k in ("revoke_sessions", "disable_user", "remove_manager")} == {"applied"}
    report = verify_plan(client, plan, result, settle=settle)
    assert not report["ok"] and len(report["failures"]) == 2

    sim.simulator.faults.clear()
    journal.mark()
    rerun = apply_plan(client, plan, bot=bot, settle=settle)
    assert rerun["outcome"] == "success"
    assert journal.graph_matches([("PATCH", f"/v1.0/users/{a}"), ("DELETE", f"/v1.0/users/{a}/manager/\\$ref")])
    assert verify_plan(client, plan, rerun, settle=settle)["ok"]


def test_offboarding_with_delete_verifies_from_deleted_items(client, bot, pick, journal, settle):
    uid = pick.user(manager_bot=True, teams=1, sole_owner=False)
    plan = build_plan(client, "msteams_offboard_user", {"user": uid, "delete": True, **WHY})
    assert plan["steps"][-1]["kind"] == "delete_user"
    assert set(plan["steps"][-1]["undo"]) == {"accountEnabled", "userType", "manager", "teams"}
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "success" and journal.graph()[-1] == ("DELETE", f"/v1.0/users/{uid}")
    report = verify_plan(client, plan, result, settle=settle)
    assert report["ok"], report["failures"]
    assert any("deletedItems" in (s["note"] or "") for s in report["steps"])

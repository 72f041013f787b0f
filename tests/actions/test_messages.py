"""Bot messages: recipients without the bot are reported by name and the others still get the message; nobody
reachable fails the run with zero messages; a retried apply does not message anyone twice (the audit log says who
already got it)."""

from __future__ import annotations

import pytest

from teamsops.actions import ApplyFailed, NotFoundError, apply_plan, build_plan, raise_for_outcome, verify_plan
from teamsops.audit import AuditLog


def _label(pick, uid: str) -> str:
    user = pick.t.users[uid]
    return f"{user['displayName']} <{user['userPrincipalName']}>"


def test_users_without_the_bot_are_reported_by_name_and_the_others_get_it(client, bot, pick, journal, settle):
    reachable = pick.users(bot=True)[:2]
    lonely = pick.user(bot=False)
    plan = build_plan(client, "msteams_bot_message_users",
                      {"users": [*reachable, pick.upn(lonely)], "message": "Password expiry reminder"})
    assert _label(pick, lonely) in plan["warnings"][0]
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "partial"
    assert result["messages"] == {"delivered": 2, "not_reachable": [_label(pick, lonely)], "failed": []}
    assert sorted(m["user_id"] for m in journal.messages()) == sorted(reachable)
    assert all(m["text"] == "Password expiry reminder" for m in journal.messages())
    assert journal.graph() == []
    raise_for_outcome(result)  # partial is not a failure
    report = verify_plan(client, plan, result, settle=settle)
    assert report["ok"] and [s["ok"] for s in report["steps"]] == [True, True, None]


def test_a_single_user_without_the_bot_is_a_clear_failure_with_no_message(client, bot, pick, journal, settle):
    lonely = pick.user(bot=False)
    plan = build_plan(client, "msteams_bot_message_users", {"users": [lonely], "message": "hello"})
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "failed" and result["messages"]["not_reachable"] == [_label(pick, lonely)]
    with pytest.raises(ApplyFailed) as info:
        raise_for_outcome(result)
    assert _label(pick, lonely) in str(info.value) and "not installed" in str(info.value)
    assert journal.entries() == []


def test_channel_of_a_team_without_the_bot(client, bot, pick, journal, settle):
    team = pick.team(bot=False)
    plan = build_plan(client, "msteams_bot_message_channel", {"team": team, "channel": "General", "message": "hi"})
    assert "not installed in team" in plan["warnings"][0]
    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "failed" and "add the app to the team" in result["errors"][0]
    assert journal.entries() == []


def test_unknown_recipient_is_refused_before_sending(client, pick, journal):
    with pytest.raises(NotFoundError, match="recipient"):
        build_plan(client, "msteams_bot_message_users", {"users": [pick.user(bot=True), "nobody@contoso-demo.com"],
                                                         "message": "hi"})
    assert journal.entries() == []


def test_a_retried_apply_does_not_message_anyone_twice(client, bot, pick, journal, tmp_path, settle):
    users = pick.users(bot=True)[:3]
    plan = build_plan(client, "msteams_bot_message_users", {"users": users, "message": "Town hall at 4pm"},
                      run_id="manual__msg")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    recorder = audit.step_recorder(plan, approver="bob")

    def crash_after_first(step, outcome):
        recorder(step, outcome)
        if step["id"] == "1":
            raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        apply_plan(client, plan, bot=bot, on_step=crash_after_first, settle=settle)
    assert [m["user_id"] for m in journal.messages()] == users[:1]

    done = audit.applied_step_ids(plan["plan_id"], "manual__msg")
    assert done == {"1"}
    result = apply_plan(client, plan, bot=bot, on_step=recorder, done_step_ids=done, settle=settle)
    assert result["outcome"] == "success" and result["messages"]["delivered"] == 3
    assert sorted(m["user_id"] for m in journal.messages()) == sorted(users)  # each exactly once
    audit.record_result(plan, result, verify_plan(client, plan, result, settle=settle), approver="bob")
    run = audit.query(plan_id=plan["plan_id"], phase="run")
    assert run[0]["outcome"] == "success" and run[0]["details"]["messages"]["delivered"] == 3
    audit.close()


def test_a_message_whose_connection_dropped_is_not_sent_again(sim, client, bot, pick, journal, settle):
    a, b = pick.users(bot=True)[:2]
    plan = build_plan(client, "msteams_bot_message_users", {"users": [a, b], "message": "Office closed Friday"})
    sim.inject("reset_after", times=1, path=r"/v3/conversations/[^/]+/activities$", method="POST")
    result = apply_plan(client, plan, bot=bot, settle=settle)
    first, second = result["steps"]
    assert first["status"] == "failed" and "not sent again" in first["error"] and "arrived" in first["error"]
    assert second["status"] == "applied"
    assert sorted(m["user_id"] for m in journal.messages()) == sorted([a, b])  # the first one did arrive, once
    assert result["outcome"] == "failed" and result["messages"]["failed"] == [_label(pick, a)]

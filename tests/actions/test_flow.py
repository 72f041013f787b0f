"""Every action DAG through plan -> apply -> verify against the simulator, with the write journal as ground truth:

* a dry run (plan only) performs zero writes, and its plan is refused by apply;
* the approved run performs exactly the expected Graph writes (and bot messages), once, records Graph's request id of
  each write, and verify passes;
* applying the same plan again (an Airflow retry / cleared task) performs zero writes;
* a new plan for the same conf after success is all no-ops (except revoking sessions: a new request revokes again).
"""

from __future__ import annotations

import json

import pytest

from teamsops.actions import (
    ACTIONS,
    NotFoundError,
    PlanError,
    apply_plan,
    build_plan,
    render_plan,
    verify_plan,
)


def test_every_action_dag_has_a_scenario(scenarios) -> None:
    assert set(scenarios) == set(ACTIONS)


@pytest.mark.parametrize("dag_id", sorted(ACTIONS))
def test_dry_run_then_approved_run_then_rerun(dag_id, client, bot, pick, journal, settle, scenarios) -> None:
    conf, expected_writes, expected_messages = scenarios[dag_id](pick)

    dry = build_plan(client, dag_id, {**conf, "dry_run": True}, requester="alice")
    assert dry["dry_run"] and journal.graph() == [] and journal.bot() == []
    with pytest.raises(PlanError, match="dry run"):
        apply_plan(client, dry, bot=bot)
    assert journal.entries() == []

    plan = build_plan(client, dag_id, conf, requester="alice", run_id="manual__1")
    assert json.loads(json.dumps(plan)) == plan and len(json.dumps(plan)) < 20_000
    assert plan["summary"]["changes"] == len(plan["steps"]) > 0
    assert "alice" in render_plan(plan)
    assert journal.entries() == []  # planning only reads

    result = apply_plan(client, plan, bot=bot, settle=settle)
    assert result["outcome"] == "success", result["errors"]
    assert journal.graph_matches(expected_writes), journal.graph()
    assert len(journal.messages()) == expected_messages
    assert result["request_ids"] == journal.graph_request_ids()  # every write's Graph request-id is recorded
    assert json.loads(json.dumps(result)) == result
    report = verify_plan(client, plan, result, settle=settle)
    assert report["ok"], report["failures"]

    journal.mark()
    delivered = [s["id"] for s in result["steps"] if s["status"] == "applied" and s["kind"].startswith("send")]
    again = apply_plan(client, plan, bot=bot, done_step_ids=delivered, settle=settle)
    assert journal.entries() == [] and again["counts"]["applied"] == 0 and again["outcome"] == "success"
    assert verify_plan(client, plan, again, settle=settle)["ok"]

    if dag_id == "msteams_delete_user":
        with pytest.raises(NotFoundError, match="Deleted users"):
            build_plan(client, dag_id, conf)
    elif dag_id not in ("msteams_bot_message_users", "msteams_bot_message_channel"):
        fresh = build_plan(client, dag_id, conf)
        changes = [s for s in fresh["steps"] if not s["noop"] and s["kind"] not in ("revoke_sessions",
                                                                                    "send_user_message")]
        assert changes == [], changes
        assert apply_plan(client, fresh, bot=bot, settle=settle)["counts"]["applied"] == sum(
            1 for s in fresh["steps"] if not s["noop"])


def test_guest_addressed_by_ext_upn(client, pick, journal, settle):
    guest = pick.guest()
    upn = pick.upn(guest)
    assert "#EXT#" in upn
    plan = build_plan(client, "msteams_revoke_sessions", {"user": upn, "reason": "guest left", "ticket": "T-3"})
    assert "home tenant" in plan["steps"][0]["note"]
    assert apply_plan(client, plan, settle=settle)["outcome"] == "success"
    assert journal.graph_matches([("POST", f"/v1.0/users/{guest}/revokeSignInSessions")])

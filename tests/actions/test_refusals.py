"""Runs that must not go ahead: invalid conf, read-only connection, unknown or ambiguous objects. Each one is a clear
error naming what is wrong, raised at plan time with zero writes."""

from __future__ import annotations

import pytest

from teamsops.actions import (
    ACTIONS,
    AmbiguousError,
    ConfError,
    NotFoundError,
    PlanError,
    ReadOnlyConnectionError,
    apply_plan,
    build_plan,
    validate_conf,
)

WHY = {"reason": "cleanup", "ticket": "OPS-1"}


@pytest.mark.parametrize("dag_id", sorted(ACTIONS))
def test_read_only_connection_refuses_every_action_at_plan_time(dag_id, ro_client, pick, journal, scenarios):
    conf, _, _ = scenarios[dag_id](pick)
    with pytest.raises(ReadOnlyConnectionError) as info:
        build_plan(ro_client, dag_id, conf)
    text = str(info.value)
    assert "read-only (access='read')" in text and "read_write" in text and "msteams_default" in text
    assert journal.entries() == []


def test_a_plan_is_not_applied_through_a_read_only_connection_or_another_tenant(client, ro_client, pick, journal):
    plan = build_plan(client, "msteams_enable_user", {"user": pick.user()})
    with pytest.raises(PlanError, match="read-only"):
        apply_plan(ro_client, plan)
    with pytest.raises(PlanError, match="made for tenant"):
        apply_plan(client, {**plan, "tenant_id": "11111111-1111-1111-1111-111111111111"})
    with pytest.raises(PlanError, match="bot messages"):
        apply_plan(client, build_plan(client, "msteams_bot_message_users",
                                      {"users": [pick.user(bot=True)], "message": "hi"}))
    assert journal.entries() == []


@pytest.mark.parametrize(("dag_id", "conf", "expected"), [
    ("msteams_disable_user", {"user": "a@contoso.com"}, ["reason", "ticket"]),
    ("msteams_disable_user", {"user": "a@contoso.com", "users": ["b@contoso.com"], **WHY}, ["exactly one"]),
    ("msteams_disable_user", {**WHY}, ["exactly one"]),
    ("msteams_enable_user", {"user": "not an address"}, ["'not an address' is not a UPN"]),
    ("msteams_enable_user", {"user": "a@contoso.com", "dryrun": True}, ["unknown key(s) 'dryrun'"]),
    ("msteams_enable_user", {"user": "a@contoso.com", "approved": True}, ["unknown key(s) 'approved'"]),
    ("msteams_update_user", {"user": "a@contoso.com", "properties": {"passwordProfile": {}}},
     ["unknown key(s) 'passwordProfile'"]),
    ("msteams_update_user", {"user": "a@contoso.com", "properties": {"usageLocation": "USA"}}, ["usageLocation"]),
    ("msteams_update_user", {"user": "a@contoso.com", "properties": {}}, ["properties"]),
    ("msteams_add_to_team", {"user": "a@contoso.com", "team": "Sales", "role": "admin"}, ["role"]),
    ("msteams_change_user_type", {"user": "a@contoso.com", "user_type": "Visitor", **WHY}, ["user_type"]),
    ("msteams_restore_user", {"user": "adele@contoso.com"}, ["is not an object id"]),
    ("msteams_offboard_user", {"user": "a@contoso.com", "revoke_sessions": False, "disable": False,
                               "remove_from_all_teams": False, "remove_manager": False, "notify_manager": False,
                               **WHY}, ["nothing to do"]),
    ("msteams_assign_manager", {"user": "a@contoso.com", "manager": "A@contoso.com"}, ["themselves"]),
    ("msteams_create_user", {"user_principal_name": "x..y@contoso.com", "display_name": "X",
                             "mail_nickname": "x y"}, ["'..'", "mail_nickname"]),
    ("msteams_bot_message_users", {"users": [], "message": ""}, ["users", "message"]),
    ("msteams_unknown", {}, ["known:"]),
])
def test_invalid_conf_is_refused_with_every_problem(dag_id, conf, expected, client, journal):
    with pytest.raises(ConfError) as info:
        build_plan(client, dag_id, conf)
    text = str(info.value)
    for fragment in expected:
        assert fragment in text, text
    assert journal.entries() == []


def test_conf_is_normalized():
    conf = validate_conf("msteams_disable_user", {"users": [" A@contoso.com", "a@contoso.com", "b@contoso.com"],
                                                  **WHY})
    assert conf["users"] == ["A@contoso.com", "b@contoso.com"] and "user" not in conf
    assert conf["dry_run"] is False and conf["connection"] == "msteams_default"
    assert conf["override_protection"] is False
    assert validate_conf("msteams_enable_user", {"user": "x@contoso.com"})["users"] == ["x@contoso.com"]


def test_unknown_users_are_all_named(client, pick, journal):
    conf = {"users": [pick.user(), "ghost@contoso-demo.com", "6e0f3c1a-0000-4000-8000-000000000001"], **WHY}
    with pytest.raises(NotFoundError) as info:
        build_plan(client, "msteams_offboard_user", conf)
    assert "2 user(s) not found" in str(info.value)
    assert "ghost@contoso-demo.com" in info.value.problems[0] and "restore" in info.value.problems[1]
    assert journal.entries() == []


def test_unknown_manager_and_new_owner_are_named(client, pick, journal):
    with pytest.raises(NotFoundError, match="manager 'nobody@contoso-demo.com' was not found"):
        build_plan(client, "msteams_assign_manager", {"user": pick.user(), "manager": "nobody@contoso-demo.com"})
    with pytest.raises(NotFoundError, match="new_owner"):
        build_plan(client, "msteams_remove_from_all_teams", {"user": pick.user(), "new_owner": "no@contoso-demo.com",
                                                             **WHY})
    assert journal.entries() == []


def test_team_and_channel_lookups(sim, client, pick, journal):
    team = pick.team(bot=True)
    name = pick.team_name(team)
    with pytest.raises(NotFoundError, match="did you mean"):
        build_plan(client, "msteams_add_to_team", {"user": pick.user(), "team": name.upper()})
    with pytest.raises(NotFoundError, match="no team has this id"):
        build_plan(client, "msteams_add_to_team", {"user": pick.user(), "team": "6e0f3c1a-0000-4000-8000-0000000000aa"})
    with pytest.raises(NotFoundError, match="channel 'Nope' was not found"):
        build_plan(client, "msteams_bot_message_channel", {"team": team, "channel": "Nope", "message": "hi"})
    other = next(t for t in pick.t.teams if t != team)
    with sim.tenant.lock:  # two teams with the same display name
        sim.tenant.teams[other] = {**sim.tenant.teams[other], "displayName": name}
        sim.tenant.groups[other] = {**sim.tenant.groups[other], "displayName": name}
    with pytest.raises(AmbiguousError) as info:
        build_plan(client, "msteams_add_to_team", {"user": pick.user(), "team": name})
    assert {team, other} <= {p.split()[0] for p in info.value.problems}
    assert journal.entries() == []


def test_restore_of_an_unknown_or_purged_user(client, journal):
    with pytest.raises(NotFoundError, match="permanently deleted"):
        build_plan(client, "msteams_restore_user", {"user": "6e0f3c1a-0000-4000-8000-0000000000bb"})
    assert journal.entries() == []


@pytest.mark.parametrize("dag_id", sorted(ACTIONS))
def test_every_action_names_what_was_not_found(dag_id, client, pick, journal, scenarios):
    conf, _, _ = scenarios[dag_id](pick)
    ghost = "ghost.user@contoso-demo.com"
    if dag_id == "msteams_create_user":
        conf["manager"], missing = ghost, "manager 'ghost.user@contoso-demo.com'"
    elif dag_id == "msteams_restore_user":
        conf["user"], missing = "6e0f3c1a-0000-4000-8000-0000000000cc", "6e0f3c1a-0000-4000-8000-0000000000cc"
    elif dag_id == "msteams_bot_message_channel":
        conf["team"], missing = "No Such Team", "team 'No Such Team'"
    elif "users" in conf:
        conf["users"], missing = [*conf["users"], ghost], ghost
    else:
        conf["user"], missing = ghost, ghost
    with pytest.raises(NotFoundError) as info:
        build_plan(client, dag_id, conf)
    assert missing in str(info.value) and "nothing was changed" in str(info.value)
    assert journal.entries() == []

"""The conf interface as Airflow sees it (every key becomes a valid ``Param`` that refuses bad values), and the
approval body as approvers read it (no-ops marked, destructive steps called out, overrides in bold, tenant values
escaped)."""

from __future__ import annotations

import pytest

from teamsops.actions import ACTIONS, APP_ONLY_LIMITS, render_plan
from teamsops.actions.conf import OFFBOARD_STEPS

EXPECTED_KEYS = {
    "msteams_create_user": {"user_principal_name", "display_name", "mail_nickname", "account_enabled", "user_type",
                            "department", "job_title", "usage_location", "manager"},
    "msteams_update_user": {"user", "properties"},
    "msteams_delete_user": {"user", "users"},
    "msteams_enable_user": {"user", "users"},
    "msteams_disable_user": {"user", "users"},
    "msteams_assign_manager": {"user", "manager"},
    "msteams_remove_manager": {"user"},
    "msteams_change_user_type": {"user", "users", "user_type"},
    "msteams_revoke_sessions": {"user", "users"},
    "msteams_add_to_team": {"user", "team", "role"},
    "msteams_remove_from_team": {"user", "team", "new_owner"},
    "msteams_remove_from_all_teams": {"user", "users", "new_owner"},
    "msteams_bot_message_users": {"users", "message"},
    "msteams_bot_message_channel": {"team", "channel", "message"},
    "msteams_offboard_user": {"user", "users", "new_owner", *OFFBOARD_STEPS},
    "msteams_restore_user": {"user", "restore_memberships"},
}
DESTRUCTIVE = {"msteams_delete_user", "msteams_disable_user", "msteams_change_user_type", "msteams_revoke_sessions",
               "msteams_remove_manager", "msteams_remove_from_team", "msteams_remove_from_all_teams",
               "msteams_offboard_user"}


def test_dag_ids_and_conf_keys_are_the_interface():
    assert set(ACTIONS) == set(EXPECTED_KEYS)
    for dag_id, spec in ACTIONS.items():
        common = {"reason", "ticket", "dry_run", "connection"}
        assert set(spec.params) - {"override_protection"} == EXPECTED_KEYS[dag_id] | common, dag_id
        assert spec.destructive is (dag_id in DESTRUCTIVE)
        assert ("reason" in spec.required and "ticket" in spec.required) is spec.destructive
        assert spec.params["dry_run"]["default"] is False
        assert spec.params["connection"]["default"] == "msteams_default"
        assert all(schema.get("title") for schema in spec.params.values()), dag_id


@pytest.mark.parametrize("dag_id", sorted(ACTIONS))
def test_every_key_is_a_valid_airflow_param(dag_id):
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    spec = ACTIONS[dag_id]
    for key, kwargs in spec.airflow_params().items():
        param = Param(**kwargs)
        if key in spec.required:
            with pytest.raises(ParamValidationError):
                param.resolve(None)
        else:
            assert param.resolve() == spec.params[key]["default"]
    if "user" in spec.params and spec.params["user"].get("pattern"):
        with pytest.raises(ParamValidationError):
            Param(**spec.airflow_params()["user"]).resolve("not a user")


def test_app_only_limits_are_stated_where_people_look():
    assert "password" in APP_ONLY_LIMITS and "signed-in" in APP_ONLY_LIMITS
    assert "Passwords cannot be changed here" in ACTIONS["msteams_update_user"].description
    assert "not from a person" in ACTIONS["msteams_bot_message_users"].description
    assert "signed-in user is not possible" in ACTIONS["msteams_bot_message_channel"].params["message"]["description"]


def _plan(**overrides):
    plan = {
        "plan_id": "p1", "title": "Disable users", "dry_run": False, "requester": "alice", "ticket": "T-1",
        "reason": "left | gone", "connection": "msteams_default", "tenant_id": "t1", "created_at": "now",
        "overrides": {"override_protection": False, "overridden": {}}, "warnings": ["check *this*"], "texts": {},
        "summary": {"steps": 2, "changes": 1, "noops": 1, "destructive_changes": 1, "messages": 0},
        "steps": [
            {"id": "1", "kind": "disable_user", "title": "Disable the account", "noop": False, "destructive": True,
             "target": {"label": "Eve | Admin <eve@contoso.com>"}, "before": {"accountEnabled": True},
             "after": {"accountEnabled": False}, "note": None},
            {"id": "2", "kind": "disable_user", "title": "Disable the account", "noop": True, "destructive": True,
             "target": {"label": "Bob <bob@contoso.com>"}, "before": {"accountEnabled": False},
             "after": {"accountEnabled": False}, "note": None},
        ]}
    plan.update(overrides)
    return plan


def test_approval_body_marks_noops_destructive_steps_and_escapes_values():
    body = render_plan(_plan())
    assert "**Disable the account** (DESTRUCTIVE)" in body
    assert "no-op: Disable the account (already in the target state)" in body
    assert "Eve \\| Admin \\<eve@contoso.com\\>" in body and "left \\| gone" in body
    assert "check \\*this\\*" in body
    assert "OVERRIDE" not in body
    rows = [line for line in body.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert len(rows) == 2 and all(row.count(" | ") == 4 for row in rows)


def test_approval_body_shows_the_override_in_bold():
    body = render_plan(_plan(overrides={"override_protection": True, "overridden": {
        "u1": {"label": "Eve <eve@contoso.com>", "roles": ["Global Administrator"]}}}))
    assert body.index("**OVERRIDE: the protection of privileged accounts is lifted for this run; it changes Eve "
                      "\\<eve@contoso.com\\> (Global Administrator).**") < body.index("| # |")


def test_long_plans_are_cut_in_the_body():
    step = _plan()["steps"][0]
    body = render_plan(_plan(steps=[{**step, "id": str(i)} for i in range(1, 400)]))
    assert "and 249 more step(s)" in body and len(body) < 60_000

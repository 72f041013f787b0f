"""The action DAGs run for real with ``dag.test()`` on a migrated SQLite metadata DB, against a fresh simulated tenant.

The approval is answered from a helper thread through the function Airflow's REST API runs for
``PATCH .../hitlDetails`` (``InProcessResponder`` in tests/airflow_server.py), so assigned-user checks and the resume
of the parked task are Airflow's own. The simulator's write journal is the ground truth for what changed, and the
audit log (an ``msteams_audit`` SQLite connection per test) must tell the same story.

For every action DAG: the approved run performs exactly the expected writes and verify passes; a rerun with the same
conf performs zero writes (delete: refused because the user is gone; revoke and messages: a new request acts again,
by design); a dry run and a Reject perform zero writes; an invalid conf is refused before a run starts. Then the
approval rules: the requester cannot approve their own run, MSTEAMS_APPROVERS restricts who may answer, no conf key
skips the approval, and refused runs (not found, protected account, read-only connection) write nothing but are
audited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import airflow_server  # tests/airflow_server.py (tests/ is on sys.path, see conftest.py)
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
REQUESTER = "dag_test"  # dag.test() records this triggering user
DESTRUCTIVE = {"reason": "left the company", "ticket": "HR-1042"}
MEMBERSHIP = "[A-Za-z0-9+/=_-]+"



# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture
def dags() -> dict:
    """The action DAGs, parsed for each test: dag.test() runs tasks in this process, and resolving a run's params
    stores their values on the DAG's Param objects, which would let a later run's missing key pass validation."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "msteams_actions.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


@pytest.fixture
def tenant(airflow_db, monkeypatch, tmp_path) -> Iterator[Tenant]:
    """A fresh simulated tenant (60 users, 8 teams) as ``msteams_default``, and an audit DB of its own."""
    from teamsops.simulator.generator import TenantSpec
    from teamsops.simulator.testing import run_simulator

    for name in ("MSTEAMS_APPROVERS", "MSTEAMS_APPROVAL_TIMEOUT_HOURS", "MSTEAMS_SAFEGUARDS"):
        monkeypatch.delenv(name, raising=False)
    audit_db = tmp_path / "audit.db"
    monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_AUDIT", json.dumps({"conn_type": "sqlite", "host": str(audit_db)}))
    with run_simulator(spec=TenantSpec(users=60, teams=8, seed=5)) as sim:
        monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_DEFAULT", json.dumps(sim.connection()))
        yield Tenant(sim, f"sqlite:///{audit_db}")


class Tenant:
    """The simulator, its write journal since a mark, the audit log, and a picker of users and teams."""

    def __init__(self, sim: Any, audit_url: str) -> None:
        self.sim = sim
        self.t = sim.tenant
        self.audit_url = audit_url
        self.bot_app = self.t.apps[self.t.generated["bot_app_id"]].teams_app_id
        self.mark()

    # journal
    def mark(self) -> None:
        self.start = len(self.sim.journal())
        self.messages_start = len(self.t.bot_messages)

    def writes(self) -> list[tuple[str, str]]:
        return [(e["method"], e["path"]) for e in self.sim.journal(self.start) if e["path"].startswith("/v1.0/")]

    def request_ids(self) -> list[str]:
        return [e["request_id"] for e in self.sim.journal(self.start) if e["path"].startswith("/v1.0/")]

    def everything(self) -> list[dict]:
        return self.sim.journal(self.start)

    def messages(self) -> list[dict]:
        return self.t.bot_messages[self.messages_start:]

    def audit(self, **filters: Any) -> list[dict]:
        from teamsops.audit import AuditLog

        with AuditLog(self.audit_url) as audit:
            return audit.query(**filters)

    # picking (arrangement from the simulator's state, not assertions)
    def upn(self, uid: str) -> str:
        return self.t.users[uid]["userPrincipalName"]

    def has_bot(self, uid: str) -> bool:
        return self.bot_app in self.t.user_apps.get(uid, {})

    def users(self, *, manager: bool | None = None, manager_bot: bool | None = None, bot: bool | None = None,
              teams: int = 0, sole_owner: bool | None = None, owner: bool | None = None) -> list[str]:
        """Enabled members without directory roles, matching every given condition."""
        found = []
        for uid, user in self.t.users.items():
            if user.get("userType") != "Member" or not user.get("accountEnabled") or self.t.role_ids_of(uid):
                continue
            if user["userPrincipalName"].startswith("breakglass"):
                continue
            boss = self.t.manager_of.get(uid)
            owns = [tid for tid in self.t.teams if uid in self.t.group_owners.get(tid, {})]
            alone = [tid for tid in owns if list(self.t.group_owners.get(tid, {})) == [uid]]
            if manager is not None and (boss is not None) is not manager:
                continue
            if manager_bot is not None and (boss is None or self.has_bot(boss) is not manager_bot):
                continue
            if bot is not None and self.has_bot(uid) is not bot:
                continue
            if len(self.t.joined_team_ids(uid)) < teams:
                continue
            if sole_owner is not None and bool(alone) is not sole_owner:
                continue
            if owner is not None and bool(owns) is not owner:
                continue
            found.append(uid)
        if not found:
            raise LookupError("no user matches")
        return found

    def team(self, *, bot: bool | None = None, not_member: str | None = None) -> str:
        for tid, team in self.t.teams.items():
            has_bot = self.bot_app in self.t.team_apps.get(tid, {})
            if team.get("isArchived") or (bot is not None and has_bot is not bot):
                continue
            if not_member and not_member in self.t.group_members.get(tid, {}):
                continue
            return tid
        raise LookupError("no team matches")

    def global_admin(self) -> str:
        """A Global Administrator (role template 62e90394-...) who is not a break-glass account."""
        return next(uid for uid, u in self.t.users.items()
                    if "62e90394-69f5-4237-9190-012177145e10" in self.t.role_ids_of(uid)
                    and not u["userPrincipalName"].startswith("breakglass"))


def run_dag(dags: dict, dag_id: str, conf: dict, answers: list[tuple[bool, str]] = (), *, delay: float = 0.0):
    """``dag.test(run_conf=conf)`` with the approval answered by ``answers``; returns (run, task states, responder)."""
    responder_cls = airflow_server.InProcessResponder
    with responder_cls(dag_id, list(answers), delay=delay) as responder:
        run = dags[dag_id].test(run_conf=conf)
    assert not responder.errors, responder.errors
    return run, task_states(run), responder


def task_states(run) -> dict[str, str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {ti.task_id: ti.state for ti in tis}


def match_writes(actual: list[tuple[str, str]], expected: list[tuple[str, str]]) -> bool:
    """Every expected (method, path regex) exactly once, in order, and nothing else."""
    return len(actual) == len(expected) and all(
        m == em and re.fullmatch(ep, p) for (m, p), (em, ep) in zip(actual, expected, strict=True))


# ---------------------------------------------------------------------------------------------- scenarios
@dataclass
class Scenario:
    conf: dict[str, Any]
    writes: list[tuple[str, str]]  # expected Graph writes (method, path regex), in order
    messages: int = 0  # bot messages delivered
    rerun: str = "noop"  # a second run with the same conf: noop | refused | repeats


def _create_user(t: Tenant) -> Scenario:
    manager = t.users(bot=True)[0]
    domain = t.t.verified_domains[0]
    conf = {"user_principal_name": f"new.hire@{domain}", "display_name": "New Hire", "mail_nickname": "new.hire",
            "department": "Sales", "usage_location": "us", "manager": t.upn(manager)}
    return Scenario(conf, [("POST", "/v1.0/users"), ("PUT", f"/v1.0/users/new.hire@{domain}/manager/\\$ref")], 1)


def _update_user(t: Tenant) -> Scenario:
    uid = t.users()[0]
    conf = {"user": t.upn(uid), "properties": {"jobTitle": "Principal Engineer", "officeLocation": None}}
    return Scenario(conf, [("PATCH", f"/v1.0/users/{uid}")])


def _delete_user(t: Tenant) -> Scenario:
    uid = t.users()[0]
    return Scenario({"user": uid, **DESTRUCTIVE}, [("DELETE", f"/v1.0/users/{uid}")], rerun="refused")


def _enable_user(t: Tenant) -> Scenario:
    uid = next(u for u, user in t.t.users.items() if user.get("userType") == "Member"
               and user.get("accountEnabled") is False and not t.t.role_ids_of(u))
    return Scenario({"user": t.upn(uid)}, [("PATCH", f"/v1.0/users/{uid}")])


def _disable_user(t: Tenant) -> Scenario:
    a, b = t.users()[:2]
    return Scenario({"users": [t.upn(a), b], **DESTRUCTIVE},
                    [("PATCH", f"/v1.0/users/{a}"), ("PATCH", f"/v1.0/users/{b}")])


def _assign_manager(t: Tenant) -> Scenario:
    leaf = next(u for u in t.users(manager=True) if not t.t.reports_of.get(u))
    manager = next(u for u in t.users() if u not in (leaf, t.t.manager_of[leaf]))
    return Scenario({"user": t.upn(leaf), "manager": t.upn(manager)}, [("PUT", f"/v1.0/users/{leaf}/manager/\\$ref")])


def _remove_manager(t: Tenant) -> Scenario:
    uid = t.users(manager=True)[0]
    return Scenario({"user": t.upn(uid), **DESTRUCTIVE}, [("DELETE", f"/v1.0/users/{uid}/manager/\\$ref")])


def _change_user_type(t: Tenant) -> Scenario:
    uid = t.users(owner=False)[0]
    return Scenario({"user": uid, "user_type": "Guest", **DESTRUCTIVE}, [("PATCH", f"/v1.0/users/{uid}")])


def _revoke_sessions(t: Tenant) -> Scenario:
    uid = t.users()[0]
    return Scenario({"user": t.upn(uid), **DESTRUCTIVE}, [("POST", f"/v1.0/users/{uid}/revokeSignInSessions")],
                    rerun="repeats")


def _add_to_team(t: Tenant) -> Scenario:
    uid = t.users()[0]
    team = t.team(not_member=uid)
    return Scenario({"user": t.upn(uid), "team": team, "role": "owner"}, [("POST", f"/v1.0/teams/{team}/members")])


def _remove_from_team(t: Tenant) -> Scenario:
    uid = t.users(teams=1, owner=False)[0]
    team = t.t.joined_team_ids(uid)[0]
    return Scenario({"user": t.upn(uid), "team": team, **DESTRUCTIVE},
                    [("DELETE", f"/v1.0/teams/{team}/members/{MEMBERSHIP}")])


def _remove_from_all_teams(t: Tenant) -> Scenario:
    uid = t.users(teams=2, sole_owner=False)[0]
    return Scenario({"users": [t.upn(uid)], **DESTRUCTIVE},
                    [("DELETE", f"/v1.0/teams/{tid}/members/{MEMBERSHIP}") for tid in t.t.joined_team_ids(uid)])


def _bot_message_users(t: Tenant) -> Scenario:
    a, b = t.users(bot=True)[:2]
    return Scenario({"users": [t.upn(a), b], "message": "Maintenance on Saturday 22:00-23:00."}, [], 2,
                    rerun="repeats")


def _bot_message_channel(t: Tenant) -> Scenario:
    team = t.team(bot=True)
    return Scenario({"team": team, "channel": "General", "message": "Welcome to the team!"}, [], 1, rerun="repeats")


def _offboard_user(t: Tenant) -> Scenario:
    uid = t.users(manager_bot=True, teams=2, sole_owner=False)[0]
    writes = [("POST", f"/v1.0/users/{uid}/revokeSignInSessions"), ("PATCH", f"/v1.0/users/{uid}"),
              *[("DELETE", f"/v1.0/teams/{tid}/members/{MEMBERSHIP}") for tid in t.t.joined_team_ids(uid)],
              ("DELETE", f"/v1.0/users/{uid}/manager/\\$ref")]
    # A rerun revokes sessions again (a new request) and tells the manager again; everything else is done.
    return Scenario({"user": t.upn(uid), **DESTRUCTIVE}, writes, 1, rerun="repeats")


def _restore_user(t: Tenant) -> Scenario:
    uid = next(iter(t.t.deleted_users))
    return Scenario({"user": uid}, [("POST", f"/v1.0/directory/deletedItems/{uid}/restore")])


SCENARIOS: dict[str, Callable[[Tenant], Scenario]] = {
    "msteams_create_user": _create_user,
    "msteams_update_user": _update_user,
    "msteams_delete_user": _delete_user,
    "msteams_enable_user": _enable_user,
    "msteams_disable_user": _disable_user,
    "msteams_assign_manager": _assign_manager,
    "msteams_remove_manager": _remove_manager,
    "msteams_change_user_type": _change_user_type,
    "msteams_revoke_sessions": _revoke_sessions,
    "msteams_add_to_team": _add_to_team,
    "msteams_remove_from_team": _remove_from_team,
    "msteams_remove_from_all_teams": _remove_from_all_teams,
    "msteams_bot_message_users": _bot_message_users,
    "msteams_bot_message_channel": _bot_message_channel,
    "msteams_offboard_user": _offboard_user,
    "msteams_restore_user": _restore_user,
}


def test_every_action_dag_has_a_scenario(dags) -> None:
    from teamsops.actions import ACTIONS

    assert set(SCENARIOS) == set(ACTIONS) == set(dags)


# ---------------------------------------------------------------------------------------------- every DAG
@pytest.mark.parametrize("dag_id", sorted(SCENARIOS))
def test_approved_run_writes_exactly_the_plan_and_a_rerun_writes_nothing_more(dag_id, dags, tenant) -> None:
    scenario = SCENARIOS[dag_id](tenant)
    run, states, responder = run_dag(dags, dag_id, scenario.conf, [(True, "itops2")])

    assert run.state == "success", states
    assert states == {t: "success" for t in ("resolve", "plan", "approve", "apply", "verify", "audit")}
    assert responder.answered == [("approve", "Approve", "itops2")]
    assert match_writes(tenant.writes(), scenario.writes), tenant.writes()
    assert len(tenant.messages()) == scenario.messages
    rows = tenant.audit(run_id=run.run_id)
    assert [(r["outcome"], r["approver"], r["requester"]) for r in rows if r["phase"] == "approval"] == \
        [("approved", "itops2", REQUESTER)]
    assert [r["outcome"] for r in rows if r["phase"] == "run"] == ["success"]
    recorded_ids = [rid for r in rows if r["phase"] == "apply" for rid in (r["request_ids"] or [])]
    assert recorded_ids == tenant.request_ids()  # every Graph write's request id is in the audit log
    assert all(r["outcome"] == "verified" for r in rows if r["phase"] == "verify" and r["step_kind"] not in
               ("send_user_message", "send_channel_message", "deliver_password"))

    tenant.mark()
    again, states, _ = run_dag(dags, dag_id, scenario.conf, [(True, "itops2")])
    if scenario.rerun == "noop":
        assert again.state == "success", states
        assert tenant.everything() == []
        outcomes = {r["outcome"] for r in tenant.audit(run_id=again.run_id, phase="apply")}
        assert outcomes <= {"already_done", "skipped"}, outcomes  # an empty plan (nothing left) has no steps
    elif scenario.rerun == "refused":
        assert again.state == "failed" and states["resolve"] == "failed", states
        assert tenant.everything() == []
    else:  # a new request to revoke or to message acts again, and only that
        assert again.state == "success", states
        kinds = {r["step_kind"] for r in tenant.audit(run_id=again.run_id, phase="apply", outcome="applied")}
        assert kinds <= {"revoke_sessions", "send_user_message", "send_channel_message"}, kinds


@pytest.mark.parametrize("dag_id", sorted(SCENARIOS))
def test_dry_run_and_reject_change_nothing(dag_id, dags, tenant) -> None:
    scenario = SCENARIOS[dag_id](tenant)

    dry, states, responder = run_dag(dags, dag_id, {**scenario.conf, "dry_run": True}, [(True, "itops2")])
    assert dry.state == "success", states
    assert states["approve"] == states["apply"] == states["verify"] == "skipped", states
    assert responder.answered == []  # a dry run never asks
    assert tenant.everything() == []
    plan_rows = tenant.audit(run_id=dry.run_id)
    assert plan_rows and {r["phase"] for r in plan_rows} == {"plan"}
    assert {r["outcome"] for r in plan_rows} == {"dry_run"} and all(r["dry_run"] for r in plan_rows)

    rejected, states, responder = run_dag(dags, dag_id, scenario.conf, [(False, "itops2")])
    assert rejected.state == "success", states
    assert states["apply"] == states["verify"] == "skipped" and states["audit"] == "success", states
    assert responder.answered == [("approve", "Reject", "itops2")]
    assert tenant.everything() == [] and tenant.messages() == []
    rows = tenant.audit(run_id=rejected.run_id)
    assert [(r["outcome"], r["approver"]) for r in rows if r["phase"] == "approval"] == [("rejected", "itops2")]
    assert [r["outcome"] for r in rows if r["phase"] == "run"] == ["rejected"]
    assert not [r for r in rows if r["phase"] == "apply"]


def _invalid_conf(dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """A conf the trigger form refuses: a required key missing, or a value of the wrong shape."""
    from teamsops.actions import ACTIONS

    spec = ACTIONS[dag_id]
    required = [k for k in spec.required if k in conf]
    if required:
        return {k: v for k, v in conf.items() if k != required[0]}
    return {**conf, "dry_run": "yes please"}  # not a boolean


@pytest.mark.parametrize("dag_id", sorted(SCENARIOS))
def test_invalid_conf_is_refused_before_a_run_starts(dag_id, dags, tenant) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    bad = _invalid_conf(dag_id, SCENARIOS[dag_id](tenant).conf)
    with pytest.raises(ParamValidationError, match="Invalid input for param"):
        dags[dag_id].test(run_conf=bad)
    with pytest.raises(ParamValidationError, match="Invalid input for param|not one of"):
        dags[dag_id].test(run_conf={**bad, "connection": "no spaces allowed"})
    assert tenant.everything() == []


# ---------------------------------------------------------------------------------------------- approval rules
def test_requester_cannot_approve_their_own_run(dags, tenant) -> None:
    uid = tenant.users()[0]
    run, states, responder = run_dag(dags, "msteams_disable_user", {"user": uid, **DESTRUCTIVE},
                                     [(True, REQUESTER)])
    assert responder.answered == [("approve", "Approve", REQUESTER)]  # accepted by Airflow: no approver list is set
    assert run.state == "failed" and states["apply"] == "failed" and states["audit"] == "failed", states
    assert tenant.everything() == [] and tenant.t.users[uid]["accountEnabled"] is True
    (row,) = tenant.audit(run_id=run.run_id, phase="run")
    assert row["outcome"] == "not_applied" and "cannot approve their own run" in row["error"]


def test_configured_approvers_exclude_the_requester(dags, tenant, monkeypatch) -> None:
    monkeypatch.setenv("MSTEAMS_APPROVERS", f"{REQUESTER},itops2")
    uid = tenant.users()[0]
    run, states, responder = run_dag(dags, "msteams_disable_user", {"user": uid, **DESTRUCTIVE},
                                     [(True, REQUESTER), (True, "itops"), (True, "itops2")])
    assert [(user, status) for user, status, _ in responder.refusals] == [(REQUESTER, 403), ("itops", 403)]
    assert responder.answered == [("approve", "Approve", "itops2")]
    assert run.state == "success", states
    assert match_writes(tenant.writes(), [("PATCH", f"/v1.0/users/{uid}")])


def test_no_approver_but_the_requester_fails_fast(dags, tenant, monkeypatch) -> None:
    monkeypatch.setenv("MSTEAMS_APPROVERS", REQUESTER)
    run, states, responder = run_dag(dags, "msteams_disable_user", {"user": tenant.users()[0], **DESTRUCTIVE})
    assert run.state == "failed" and states["approve"] == "failed", states
    assert tenant.everything() == []
    (row,) = tenant.audit(run_id=run.run_id, phase="run")
    assert row["outcome"] == "not_applied"


def test_no_answer_before_the_timeout_changes_nothing(dags, tenant, monkeypatch) -> None:
    monkeypatch.setenv("MSTEAMS_APPROVAL_TIMEOUT_HOURS", str(1 / 3600))  # one second
    uid = tenant.users()[0]
    run, states, responder = run_dag(dags, "msteams_disable_user", {"user": uid, **DESTRUCTIVE}, [None])
    assert responder.answered == [("approve", "timed out", "nobody")]
    assert run.state == "success" and states["apply"] == states["verify"] == "skipped", states
    assert tenant.everything() == [] and tenant.t.users[uid]["accountEnabled"] is True
    rows = tenant.audit(run_id=run.run_id)
    assert [(r["outcome"], r["approver"]) for r in rows if r["phase"] == "approval"] == [("timed_out", None)]
    assert [r["outcome"] for r in rows if r["phase"] == "run"] == ["timed_out"]


@pytest.mark.parametrize("extra", [{"approved": True}, {"skip_approval": True}, {"approver": "itops2"}])
def test_no_conf_key_skips_the_approval(dags, tenant, extra) -> None:
    run, states, responder = run_dag(dags, "msteams_disable_user",
                                     {"user": tenant.users()[0], **DESTRUCTIVE, **extra})
    assert run.state == "failed" and states["resolve"] == "failed" and states["approve"] == "upstream_failed"
    assert responder.answered == [] and tenant.everything() == []
    (row,) = tenant.audit(run_id=run.run_id)
    assert row["outcome"] == "refused" and "unknown key" in row["error"]


# ---------------------------------------------------------------------------------------------- refusals
def test_unknown_users_are_named_and_nothing_is_written(dags, tenant) -> None:
    known = tenant.users()[0]
    missing = "nobody.here@contoso-demo.com"
    run, states, _ = run_dag(dags, "msteams_disable_user", {"users": [known, missing], **DESTRUCTIVE})
    assert run.state == "failed" and states["resolve"] == "failed", states
    assert tenant.everything() == []
    (row,) = tenant.audit(run_id=run.run_id)
    assert row["outcome"] == "refused" and missing in row["error"] and "not found" in row["error"]


def test_protected_account_is_refused_at_plan_time(dags, tenant) -> None:
    admin = tenant.global_admin()
    run, states, responder = run_dag(dags, "msteams_disable_user", {"user": admin, **DESTRUCTIVE},
                                     [(True, "itops2")])
    assert run.state == "failed" and states["plan"] == "failed" and responder.answered == [], states
    assert tenant.everything() == []
    (row,) = tenant.audit(run_id=run.run_id)
    assert row["outcome"] == "refused" and row["error"]


def test_configured_protected_account_is_refused(dags, tenant, monkeypatch) -> None:
    uid = tenant.users()[0]
    monkeypatch.setenv("MSTEAMS_SAFEGUARDS", json.dumps({"protected_accounts": [tenant.upn(uid)]}))
    run, states, _ = run_dag(dags, "msteams_disable_user", {"user": uid, **DESTRUCTIVE, "override_protection": True})
    assert run.state == "failed" and states["plan"] == "failed", states
    assert tenant.everything() == []


def test_read_only_connection_is_refused(dags, tenant, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_READONLY", json.dumps(tenant.sim.connection(access="read")))
    run, states, _ = run_dag(dags, "msteams_enable_user", {"user": tenant.users()[0], "connection": "msteams_readonly"})
    assert run.state == "failed" and states["resolve"] == "failed", states
    assert tenant.everything() == []
    (row,) = tenant.audit(run_id=run.run_id)
    assert "read-only" in row["error"]


def test_conflicting_user_and_users_is_refused(dags, tenant) -> None:
    a, b = tenant.users()[:2]
    run, states, _ = run_dag(dags, "msteams_enable_user", {"user": a, "users": [b]})
    assert run.state == "failed" and states["resolve"] == "failed", states
    (row,) = tenant.audit(run_id=run.run_id)
    assert "exactly one of 'user'" in row["error"]


# ---------------------------------------------------------------------------------------------- the rules, unit by unit
def test_approver_and_timeout_settings_are_parsed_strictly() -> None:
    from teamsops_airflow.hitl import ApprovalConfigError, approval_timeout, configured_approvers, eligible_approvers

    assert configured_approvers("") == []
    users = configured_approvers(" itops2 , 7:alice,itops2 ")
    assert users == [{"id": "itops2", "name": "itops2"}, {"id": "7", "name": "alice"}]
    assert eligible_approvers(users, "ALICE") == [{"id": "itops2", "name": "itops2"}]
    with pytest.raises(ApprovalConfigError, match="MSTEAMS_APPROVERS"):
        configured_approvers(":bob")
    assert approval_timeout("").total_seconds() == 24 * 3600
    assert approval_timeout("0.5").total_seconds() == 1800
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ApprovalConfigError, match="MSTEAMS_APPROVAL_TIMEOUT_HOURS"):
            approval_timeout(bad)


def test_apply_needs_an_approve_from_someone_else() -> None:
    from teamsops_airflow.hitl import ApprovalRefused, Decision, require_approval

    def answer(option: str, user: dict | None, timedout: bool = False) -> dict:
        return {"chosen_options": [option], "responded_by_user": user, "responded_at": "2026-01-01T00:00:00+00:00",
                "timedout": timedout}

    bob = {"id": "bob", "name": "bob"}
    assert require_approval(answer("Approve", bob), "alice").approver == "bob"
    assert require_approval(answer("Approve", bob), None).approver == "bob"  # requester unknown: nothing to compare
    for payload, requester, why in [
        (None, "alice", "No approval answer"),
        ({"chosen_options": []}, "alice", "No approval answer"),
        (answer("Reject", bob), "alice", "'rejected'"),
        (answer("Reject", None, timedout=True), "alice", "'timed_out'"),
        (answer("Approve", None), "alice", "no named approver"),
        (answer("Approve", {"id": "7", "name": "Alice"}), "alice", "cannot approve their own run"),
    ]:
        with pytest.raises(ApprovalRefused, match=why):
            require_approval(payload, requester)
    assert Decision.from_payload(answer("Reject", None, timedout=True)).outcome == "timed_out"


def test_audit_database_url_comes_from_the_connection(monkeypatch, tmp_path) -> None:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowFailException

    from teamsops_airflow.actions_dag import audit_url, connection_sqlalchemy_url

    pg = Connection(conn_id="msteams_audit", conn_type="postgres", host="db", port=5432, login="audit",
                    password="p@ss/word", schema="teamsops")
    assert connection_sqlalchemy_url(pg) == "postgresql://audit:p%40ss%2Fword@db:5432/teamsops"
    lite = Connection(conn_id="msteams_audit", conn_type="sqlite", host=str(tmp_path / "a.db"))
    assert connection_sqlalchemy_url(lite) == f"sqlite:///{tmp_path / 'a.db'}"
    explicit = Connection(conn_id="msteams_audit", conn_type="generic", extra=json.dumps({"sqlalchemy_url": "x://y"}))
    assert connection_sqlalchemy_url(explicit) == "x://y"
    with pytest.raises(AirflowFailException, match="postgres or sqlite"):
        connection_sqlalchemy_url(Connection(conn_id="msteams_audit", conn_type="http", host="h"))
    monkeypatch.delenv("AIRFLOW_CONN_MSTEAMS_AUDIT", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert audit_url() == f"sqlite:///{tmp_path / 'msteams_audit.db'}"

"""Plan an action: validate the conf, refuse read-only connections, resolve every object, read the current state,
apply the safeguards, and compute before -> after for each step (marking no-ops).

:func:`build_plan` is the one entry point; it only reads (nothing is written before approval). The plan it returns
is a small JSON-serialisable dict that travels through XCom to the approval, apply, verify and audit tasks::

    {"version": 1, "plan_id": "...", "dag_id": "msteams_disable_user", "action": "disable_user", "title": "...",
     "destructive": true, "created_at": "...Z", "graph_time": "...Z" | null, "tenant_id": "...",
     "connection": "msteams_default", "requester": "alice" | null, "run_id": "..." | null,
     "reason": "...", "ticket": "...", "dry_run": false, "conf": {...normalized conf...},
     "overrides": {"override_protection": false, "overridden": {user_id: {"label", "roles"}}},
     "targets": [{"type": "user", "id", "label", "userPrincipalName", "snapshot"?: {undo data}}],
     "steps": [step, ...],                  # see teamsops.actions.context
     "texts": {"message": "..."},           # message texts, referenced by steps' params.text_key
     "warnings": ["..."],
     "summary": {"steps", "changes", "noops", "destructive_changes", "messages"}}

Errors are raised before anything is written: :class:`ConfError`, :class:`ReadOnlyConnectionError`,
:class:`NotFoundError`, :class:`AmbiguousError`, :class:`SafeguardError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from teamsops.actions.bot_messages import plan_bot_message_channel, plan_bot_message_users
from teamsops.actions.conf import ACTIONS, BATCHABLE, validate_conf
from teamsops.actions.context import PlanContext, memberships, team_object, user_snapshot, user_target
from teamsops.actions.errors import ReadOnlyConnectionError, SafeguardError
from teamsops.actions.lifecycle import plan_create_user, plan_restore_user
from teamsops.actions.resolve import resolve_team, resolve_user, resolve_users
from teamsops.actions.runbooks import (
    TeamHandover,
    plan_offboard,
    plan_remove_from_all_teams,
    plan_remove_from_team,
    raise_missing_owner,
    refuse_orphaning_deletes,
    revoke_step,
)
from teamsops.actions.safeguards import Safeguards, user_label
from teamsops.actions.steps import read_manager, read_membership, read_user_props
from teamsops.graph import GraphClient

__all__ = ["BUILDERS", "build_plan"]

log = logging.getLogger(__name__)


def build_plan(client: GraphClient, dag_id: str, conf: Mapping[str, Any] | None, *,
               safeguards: Safeguards | None = None, requester: str | None = None, run_id: str | None = None,
               audit: Any = None) -> dict[str, Any]:
    """Plan one run of an action DAG (reads only).

    :param client: the Graph client of the run's connection (``conf["connection"]``).
    :param dag_id: one of :data:`teamsops.actions.conf.ACTIONS`.
    :param conf: the run conf (validated here; see :func:`teamsops.actions.conf.validate_conf`).
    :param safeguards: protected accounts, role protection, batch limits (defaults when None).
    :param requester: who triggered the run (shown in the approval and the audit log).
    :param run_id: the Airflow run id (recorded in the plan).
    :param audit: a :class:`teamsops.audit.AuditLog`; needed by ``msteams_restore_user`` with
        ``restore_memberships`` (the recorded memberships are read from it).
    :raises ActionError: (a subclass) when the run must not go ahead; nothing has been written.
    """
    normalized = validate_conf(dag_id, conf)
    refuse_read_only(client, normalized.get("connection"))
    spec = ACTIONS[dag_id]
    safeguards = safeguards or Safeguards()
    if dag_id in BATCHABLE:
        safeguards.check_batch(len(normalized["users"]))
    ctx = PlanContext(client, dag_id, normalized, safeguards, audit=audit)
    BUILDERS[dag_id](ctx)
    plan = ctx.finish(title=spec.title, destructive=spec.destructive, requester=requester, run_id=run_id)
    log.info("planned %s: %d step(s), %d change(s), %d no-op(s)", dag_id, plan["summary"]["steps"],
             plan["summary"]["changes"], plan["summary"]["noops"])
    return plan


def refuse_read_only(client: GraphClient, connection: str | None) -> None:
    """Every action is refused at plan time on a read-only connection, before anything is read."""
    if client.settings.read_only:
        raise ReadOnlyConnectionError(
            f"connection {connection or '(this connection)'!r} is read-only (access='read'): actions are refused "
            "before anything is read or changed",
            ["to allow actions, set the connection's extra 'access' to 'read_write' and grant the app the write "
             "permissions (User.ReadWrite.All, TeamMember.ReadWrite.All, User.RevokeSessions.All) with admin "
             "consent", "or pick another connection with the run conf key 'connection'"])


# ------------------------------------------------------------------------------------------------ account state
def _account_flag(ctx: PlanContext, kind: str, prop: str, value: Any, title: str,
                  note: Callable[[dict[str, Any]], str | None] | None = None) -> None:
    users = resolve_users(ctx.client, ctx.conf["users"])
    ctx.protect(users)
    for user in users:
        ctx.add_target(user, {"accountEnabled": user.get("accountEnabled"), "userType": user.get("userType")})
        ctx.step(kind, title, target=user_target(user), params={"user": user["id"], "properties": {prop: value}},
                 before={prop: user.get(prop)}, after={prop: value}, undo={prop: user.get(prop)},
                 note=note(user) if note else None)


def plan_enable(ctx: PlanContext) -> None:
    _account_flag(ctx, "enable_user", "accountEnabled", True, "Enable the account")


def plan_disable(ctx: PlanContext) -> None:
    _account_flag(ctx, "disable_user", "accountEnabled", False, "Disable the account (block sign-in)",
                  note=lambda _user: "existing sessions stay valid until they expire: revoke them too")


def plan_change_user_type(ctx: PlanContext) -> None:
    wanted = ctx.conf["user_type"]

    def note(user: dict[str, Any]) -> str | None:
        if wanted == "Guest" and user.get("userType") != "Guest":
            return "guests cannot own teams: this user's owner roles may need a new owner"
        return None

    _account_flag(ctx, "change_user_type", "userType", wanted, f"Change the user type to {wanted}", note=note)


def plan_update(ctx: PlanContext) -> None:
    user = resolve_user(ctx.client, ctx.conf["user"])
    ctx.protect([user])
    props = dict(ctx.conf["properties"])
    if props.get("usageLocation"):
        props["usageLocation"] = props["usageLocation"].upper()
    before = read_user_props(ctx.client, user["id"], list(props))
    before.pop("exists", None)
    ctx.add_target(user)
    ctx.step("update_user", f"Update {', '.join(props)}", target=user_target(user),
             params={"user": user["id"], "properties": props}, before=before, after=props, undo=before)


def plan_revoke(ctx: PlanContext) -> None:
    users = resolve_users(ctx.client, ctx.conf["users"])
    ctx.protect(users)
    for user in users:
        ctx.add_target(user)
        revoke_step(ctx, user)


def plan_delete(ctx: PlanContext) -> None:
    users = resolve_users(ctx.client, ctx.conf["users"])
    ctx.protect(users)
    handover = TeamHandover({u["id"] for u in users}, None)
    for user in users:
        teams = memberships(ctx.client, user["id"])
        refuse_orphaning_deletes(ctx, user, teams, handover)
        snapshot = user_snapshot(ctx.client, user, teams=teams)
        ctx.add_target(user, snapshot)
        ctx.step("delete_user", "Delete the account (soft delete, restorable for 30 days)", target=user_target(user),
                 params={"user": user["id"]}, before={"state": "active"}, after={"state": "deleted"}, undo=snapshot)
    raise_missing_owner(handover)


# ------------------------------------------------------------------------------------------------ manager
def plan_assign_manager(ctx: PlanContext) -> None:
    user = resolve_user(ctx.client, ctx.conf["user"])
    manager = resolve_user(ctx.client, ctx.conf["manager"], role="manager")
    if manager["id"] == user["id"]:
        raise SafeguardError("a user cannot be their own manager (nothing was changed)")
    ctx.protect([user])
    _refuse_cycle(ctx, user, manager)
    current = read_manager(ctx.client, user["id"]).get("manager")
    ctx.add_target(user, {"manager": current})
    wanted = {"id": manager["id"], "userPrincipalName": manager.get("userPrincipalName"),
              "displayName": manager.get("displayName")}
    ctx.step("set_manager", f"Set the manager to {user_label(manager)}", target=user_target(user),
             params={"user": user["id"], "manager_id": manager["id"], "manager_label": user_label(manager)},
             before={"manager": current}, after={"manager": wanted}, undo={"manager": current})


def _refuse_cycle(ctx: PlanContext, user: dict[str, Any], manager: dict[str, Any], depth: int = 50) -> None:
    """Graph refuses a circular reporting chain; say so before approval, naming the chain."""
    chain, cursor = [user_label(manager)], manager["id"]
    for _ in range(depth):
        above = read_manager(ctx.client, cursor).get("manager")
        if not above:
            return
        if above["id"] == user["id"]:
            raise SafeguardError(f"{user_label(manager)} reports (directly or not) to {user_label(user)}: making "
                                 "them the manager would create a circular reporting chain (nothing was changed)",
                                 [" -> ".join([*chain, user_label(user)])])
        chain.append(user_label(above))
        cursor = above["id"]


def plan_remove_manager(ctx: PlanContext) -> None:
    user = resolve_user(ctx.client, ctx.conf["user"])
    ctx.protect([user])
    current = read_manager(ctx.client, user["id"]).get("manager")
    ctx.add_target(user, {"manager": current})
    ctx.step("remove_manager", "Remove the manager", target=user_target(user), params={"user": user["id"]},
             before={"manager": current}, after={"manager": None}, undo={"manager": current},
             note=None if current else "the user has no manager")


# ------------------------------------------------------------------------------------------------ teams
def plan_add_to_team(ctx: PlanContext) -> None:
    user = resolve_user(ctx.client, ctx.conf["user"])
    team = resolve_team(ctx.client, ctx.conf["team"])
    role = ctx.conf["role"]
    if role == "owner" and user.get("userType") == "Guest":
        raise SafeguardError(f"{user_label(user)} is a guest: guests cannot be team owners (nothing was changed)",
                             ["add them with role 'member', or change their user type first"])
    ctx.protect([user])
    before = read_membership(ctx.client, team["id"], user["id"])
    before.pop("membership_id", None)
    note = None
    if role == "member" and before.get("role") == "owner":
        note = "already an owner (owners are members): not demoted"
    if team.get("isArchived"):
        ctx.warnings.append(f"team {team['displayName']!r} is archived: Teams may refuse membership changes")
    ctx.add_target(user)
    ctx.step("add_team_member", f"Add to team {team['displayName']!r} as {role}", target=user_target(user),
             obj=team_object(team),
             params={"team_id": team["id"], "team_name": team["displayName"], "user": user["id"], "role": role},
             before=before, after={"member": True, "role": role},
             undo={"team_id": team["id"], "team_name": team["displayName"], "member": before.get("member"),
                   "role": before.get("role")}, note=note)


BUILDERS: dict[str, Callable[[PlanContext], None]] = {
    "msteams_create_user": plan_create_user,
    "msteams_update_user": plan_update,
    "msteams_delete_user": plan_delete,
    "msteams_enable_user": plan_enable,
    "msteams_disable_user": plan_disable,
    "msteams_assign_manager": plan_assign_manager,
    "msteams_remove_manager": plan_remove_manager,
    "msteams_change_user_type": plan_change_user_type,
    "msteams_revoke_sessions": plan_revoke,
    "msteams_add_to_team": plan_add_to_team,
    "msteams_remove_from_team": plan_remove_from_team,
    "msteams_remove_from_all_teams": plan_remove_from_all_teams,
    "msteams_bot_message_users": plan_bot_message_users,
    "msteams_bot_message_channel": plan_bot_message_channel,
    "msteams_offboard_user": plan_offboard,
    "msteams_restore_user": plan_restore_user,
}
assert set(BUILDERS) == set(ACTIONS), "every action DAG needs a plan builder"

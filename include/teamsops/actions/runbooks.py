"""Multi-step runbooks: removing users from teams (with last-owner handover) and offboarding.

Offboarding one user is a sequence of independent steps, each with its own before/after, so a rerun after a crash
half-way applies only what is left (every step re-reads its state before writing)::

    revoke sessions -> disable -> remove from every team (promote new_owner first where the user is the last
    owner) -> remove the manager -> tell the (former) manager by bot -> delete (off by default)

Team removal never leaves a team without an owner: when the user is its only owner (other owners being removed in
the same batch do not count), ``new_owner`` is promoted first, in a step that comes before the removal; without a
``new_owner`` the plan is refused and lists the teams concerned.
"""

from __future__ import annotations

from typing import Any

from teamsops.actions.bot_messages import bot_installed_for_user
from teamsops.actions.context import PlanContext, memberships, team_owners, user_snapshot, user_target
from teamsops.actions.errors import SafeguardError
from teamsops.actions.resolve import resolve_team, resolve_user, resolve_users
from teamsops.actions.safeguards import user_label
from teamsops.actions.steps import read_membership, read_user_props

__all__ = ["TeamHandover", "plan_offboard", "plan_remove_from_all_teams", "plan_remove_from_team",
           "raise_missing_owner", "refuse_orphaning_deletes", "revoke_step", "team_removal_steps"]


class TeamHandover:
    """Tracks, across a batch, who is leaving which team and where new_owner has already been promoted."""

    def __init__(self, leaving: set[str], new_owner: dict[str, Any] | None) -> None:
        self.leaving = leaving
        self.new_owner = new_owner
        self.promoted: set[str] = set()
        self.missing: list[str] = []  # "user is the last owner of team" problems (new_owner needed)


def resolve_new_owner(ctx: PlanContext, leaving: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The conf's new_owner, checked: exists, not a guest, not one of the users being removed."""
    ref = ctx.conf.get("new_owner")
    if not ref:
        return None
    owner = resolve_user(ctx.client, ref, role="new_owner")
    if owner.get("userType") == "Guest":
        raise SafeguardError(f"new_owner {user_label(owner)} is a guest; guests cannot own teams "
                             "(nothing was changed)", ["choose a member account as new_owner"])
    if owner["id"] in {u["id"] for u in leaving}:
        raise SafeguardError(f"new_owner {user_label(owner)} is one of the users being removed "
                             "(nothing was changed)", ["choose someone who stays"])
    if owner.get("accountEnabled") is False:
        ctx.warnings.append(f"new_owner {user_label(owner)} is disabled: the teams they take over will be owned by "
                            "an account that cannot sign in")
    return owner


def team_removal_steps(ctx: PlanContext, user: dict[str, Any], teams: list[dict[str, Any]],
                       handover: TeamHandover) -> None:
    """Steps removing ``user`` from ``teams`` (memberships with roles), promoting new_owner where needed."""
    for membership in teams:
        team_id, team_name = membership["team_id"], membership["team_name"]
        obj = {"type": "team", "id": team_id, "label": team_name}
        if membership["role"] == "owner" and not _other_owner_stays(ctx, team_id, handover):
            if handover.new_owner is None:
                handover.missing.append(f"{user_label(user)} is the last owner of team {team_name!r} ({team_id}): "
                                        "set new_owner, who is promoted before the removal")
                continue
            _promote(ctx, user, obj, handover)
        ctx.step("remove_team_member", f"Remove from team {team_name!r}", target=user_target(user), obj=obj,
                 params={"team_id": team_id, "team_name": team_name, "user": user["id"]},
                 before={"member": True, "role": membership["role"]}, after={"member": False},
                 undo={"team_id": team_id, "team_name": team_name, "role": membership["role"]})


def _other_owner_stays(ctx: PlanContext, team_id: str, handover: TeamHandover) -> bool:
    if team_id in handover.promoted:
        return True
    return any(o["id"] not in handover.leaving for o in team_owners(ctx.client, team_id))


def _promote(ctx: PlanContext, user: dict[str, Any], obj: dict[str, Any], handover: TeamHandover) -> None:
    owner = handover.new_owner
    assert owner is not None
    before = read_membership(ctx.client, obj["id"], owner["id"])
    before.pop("membership_id", None)
    ctx.step("add_team_member", f"Make {user_label(owner)} owner of {obj['label']!r} (last-owner handover)",
             target=user_target(owner), obj=obj, group=user["id"],
             params={"team_id": obj["id"], "team_name": obj["label"], "user": owner["id"], "role": "owner"},
             before=before, after={"member": True, "role": "owner"},
             undo={"team_id": obj["id"], "team_name": obj["label"], "role": before.get("role"),
                   "member": before.get("member")})
    handover.promoted.add(obj["id"])


def refuse_orphaning_deletes(ctx: PlanContext, user: dict[str, Any], teams: list[dict[str, Any]],
                             handover: TeamHandover) -> None:
    """Deleting a team's last owner leaves the team without one: note it in ``handover.missing``."""
    for membership in teams:
        if membership["role"] == "owner" and not _other_owner_stays(ctx, membership["team_id"], handover):
            handover.missing.append(
                f"{user_label(user)} is the last owner of team {membership['team_name']!r} "
                f"({membership['team_id']}): deleting them leaves it without an owner; run msteams_offboard_user "
                "with remove_from_all_teams and new_owner (or msteams_remove_from_all_teams) first")


def raise_missing_owner(handover: TeamHandover) -> None:
    if handover.missing:
        raise SafeguardError("refused: this run would leave teams without an owner (nothing was changed)",
                             handover.missing)


def _clean(teams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: t[k] for k in ("team_id", "team_name", "role")} for t in teams]


# ------------------------------------------------------------------------------------------------ actions
def plan_remove_from_team(ctx: PlanContext) -> None:
    """msteams_remove_from_team: one user, one team."""
    user = resolve_user(ctx.client, ctx.conf["user"])
    team = resolve_team(ctx.client, ctx.conf["team"])
    ctx.protect([user])
    new_owner = resolve_new_owner(ctx, [user])
    state = read_membership(ctx.client, team["id"], user["id"])
    ctx.add_target(user, {"teams": [{"team_id": team["id"], "team_name": team["displayName"],
                                     "role": state.get("role")}] if state.get("member") else []})
    if not state.get("member"):
        ctx.step("remove_team_member", f"Remove from team {team['displayName']!r}", target=user_target(user),
                 obj={"type": "team", "id": team["id"], "label": team["displayName"]},
                 params={"team_id": team["id"], "team_name": team["displayName"], "user": user["id"]},
                 before={"member": False}, after={"member": False}, note="not a member of this team")
        return
    handover = TeamHandover({user["id"]}, new_owner)
    team_removal_steps(ctx, user, [{"team_id": team["id"], "team_name": team["displayName"],
                                    "role": state["role"]}], handover)
    raise_missing_owner(handover)


def plan_remove_from_all_teams(ctx: PlanContext) -> None:
    """msteams_remove_from_all_teams: each user from every team (joinedTeams)."""
    users = resolve_users(ctx.client, ctx.conf["users"])
    ctx.protect(users)
    handover = TeamHandover({u["id"] for u in users}, resolve_new_owner(ctx, users))
    for user in users:
        teams = memberships(ctx.client, user["id"])
        ctx.add_target(user, {"teams": _clean(teams)})
        if not teams:
            ctx.warnings.append(f"{user_label(user)} is not a member of any team: nothing to remove")
        team_removal_steps(ctx, user, teams, handover)
    raise_missing_owner(handover)


def plan_offboard(ctx: PlanContext) -> None:
    """msteams_offboard_user: the offboarding runbook for each user (see the module docstring)."""
    conf = ctx.conf
    users = resolve_users(ctx.client, conf["users"])
    ctx.protect(users)
    handover = TeamHandover({u["id"] for u in users}, resolve_new_owner(ctx, users) if conf["remove_from_all_teams"]
                            else None)
    for user in users:
        teams = memberships(ctx.client, user["id"])
        snapshot = user_snapshot(ctx.client, user, teams=teams)
        ctx.add_target(user, snapshot)
        _offboard_user(ctx, user, snapshot, teams, handover)
    raise_missing_owner(handover)


def _offboard_user(ctx: PlanContext, user: dict[str, Any], snapshot: dict[str, Any], teams: list[dict[str, Any]],
                   handover: TeamHandover) -> None:
    conf, target, uid = ctx.conf, user_target(user), user["id"]
    done: list[str] = []
    if conf["revoke_sessions"]:
        revoke_step(ctx, user)
        done.append("sign-in sessions revoked")
    if conf["disable"]:
        ctx.step("disable_user", "Disable the account (block sign-in)", target=target,
                 params={"user": uid, "properties": {"accountEnabled": False}},
                 before={"accountEnabled": user.get("accountEnabled")}, after={"accountEnabled": False},
                 undo={"accountEnabled": user.get("accountEnabled")})
        done.append("account disabled")
    if conf["remove_from_all_teams"]:
        team_removal_steps(ctx, user, teams, handover)
        done.append(f"removed from {len(teams)} team(s)")
    manager = snapshot.get("manager")
    if conf["remove_manager"]:
        ctx.step("remove_manager", "Remove the manager", target=target, params={"user": uid},
                 before={"manager": manager}, after={"manager": None}, undo={"manager": manager},
                 note=None if manager else "no manager recorded")
        if manager:
            done.append("you are no longer recorded as their manager")
    if conf["notify_manager"]:
        _notify_manager_step(ctx, user, manager, done)
    if conf["delete"]:
        if not conf["remove_from_all_teams"]:
            refuse_orphaning_deletes(ctx, user, teams, handover)
        ctx.step("delete_user", "Delete the account (soft delete, restorable for 30 days)", target=target,
                 params={"user": uid}, before={"state": "active"}, after={"state": "deleted"},
                 undo={**snapshot})


def revoke_step(ctx: PlanContext, user: dict[str, Any]) -> None:
    """A revoke-sessions step: done once the sessions' valid-from time is at or after Graph's time at plan time."""
    before = read_user_props(ctx.client, user["id"], ["signInSessionsValidFromDateTime"])
    before.pop("exists", None)
    not_before = ctx.graph_time
    note = None
    if user.get("userType") == "Guest":
        note = "guest: the property changes, but the guest's sessions live in their home tenant and stay valid"
    ctx.step("revoke_sessions", "Revoke sign-in sessions", target=user_target(user),
             params={"user": user["id"], "not_before": not_before}, before=before,
             after={"signInSessionsValidFromDateTime": f">= {not_before}"}, note=note)


def _notify_manager_step(ctx: PlanContext, user: dict[str, Any], manager: dict[str, Any] | None,
                         done: list[str]) -> None:
    if not manager:
        ctx.warnings.append(f"{user_label(user)} has no manager: nobody is notified")
        return
    key = f"notify:{user['id']}"
    ticket = f" (ticket {ctx.conf['ticket']})" if ctx.conf.get("ticket") else ""
    ctx.texts[key] = (f"IT notice: {user.get('displayName')} ({user.get('userPrincipalName')}) has been offboarded"
                      f"{ticket}: {', '.join(done) or 'see the ticket'}. Contact IT if you have questions.")
    installed = bot_installed_for_user(ctx.client, manager["id"])
    note = None if installed is not False else "the bot is not installed for the manager: will not be reachable"
    ctx.step("send_user_message", f"Notify the manager {user_label(manager)} by bot",
             target={"type": "user", "id": manager["id"], "label": user_label(manager)}, group=user["id"],
             params={"user": manager["id"], "text_key": key}, before={"bot_installed": installed},
             after={"message": "delivered"}, note=note)

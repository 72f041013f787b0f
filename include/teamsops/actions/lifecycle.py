"""Creating and restoring users.

Create (``POST /users``): the account gets a random temporary password with ``forceChangePasswordNextSignIn``; the
password exists only in the memory of the apply task, between the create request and the bot message that gives it
to the manager. It is never logged, stored, put in XCom or returned in a result. Without a reachable manager the
result says an admin must reset the password in the Entra admin center before the user can sign in. A UPN that
already exists makes the create step a no-op (no new password is generated then).

Restore (``POST /directory/deletedItems/{id}/restore``): within 30 days of a soft delete. The object id is required:
Entra renames a deleted user's UPN to ``<id without dashes><UPN>``. Entra brings back the memberships the user still
had when deleted; with ``restore_memberships`` the plan also re-adds the team memberships (and owner roles) the audit
log recorded as removed by earlier runs (offboarding removes memberships *before* deleting), each as its own step.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from teamsops.actions.bot_messages import bot_installed_for_user
from teamsops.actions.context import PlanContext, user_target
from teamsops.actions.errors import ConfError, NotFoundError, PlanError, SafeguardError
from teamsops.actions.resolve import find_deleted_user, resolve_team, resolve_user, user_path
from teamsops.actions.safeguards import user_label
from teamsops.actions.steps import read_manager, read_membership
from teamsops.graph import GraphNotFound

__all__ = ["PASSWORD_ADVICE", "plan_create_user", "plan_restore_user"]

PASSWORD_ADVICE = ("an admin must reset the password in the Entra admin center (Users > the user > Reset password) "
                   "and hand the new temporary password over before the user can sign in")
_CREATE_FIELDS = {"user_principal_name": "userPrincipalName", "display_name": "displayName",
                  "mail_nickname": "mailNickname", "account_enabled": "accountEnabled", "user_type": "userType",
                  "department": "department", "job_title": "jobTitle", "usage_location": "usageLocation"}


def plan_create_user(ctx: PlanContext) -> None:
    """msteams_create_user: create, then set the manager, then deliver the password to the manager by bot."""
    conf = ctx.conf
    upn = conf["user_principal_name"]
    _check_domain(ctx, upn)
    props = {graph: conf[key] for key, graph in _CREATE_FIELDS.items() if conf.get(key) is not None}
    if props.get("usageLocation"):
        props["usageLocation"] = props["usageLocation"].upper()
    manager = resolve_user(ctx.client, conf["manager"], role="manager") if conf.get("manager") else None
    label = f"{conf['display_name']} <{upn}>"
    before = _read_existing(ctx, upn)
    if before.get("exists"):  # the run would still set this existing account's manager: protect it like any target
        ctx.protect([{"id": before["id"], "userPrincipalName": upn, "displayName": before.get("displayName")}])
    target = {"type": "user", "id": before.get("id"), "label": label}
    group = before.get("id") or upn.lower()
    create = ctx.step("create_user", f"Create the user {label}", target=target, group=group,
                      params={"user_principal_name": upn, "properties": props},
                      before=before, after={"exists": True, **props},
                      note="a user with this UPN already exists: it is not changed" if before.get("exists") else None)
    if before.get("exists"):
        _report_differences(ctx, before, props)
    ctx.targets.append({"type": "user", "id": before.get("id"), "label": label, "userPrincipalName": upn})
    if manager is None:
        ctx.warnings.append(f"no manager given: {PASSWORD_ADVICE}")
        return
    current = read_manager(ctx.client, upn) if before.get("exists") else {"exists": False, "manager": None}
    ctx.step("set_manager", f"Set the manager to {user_label(manager)}", target=target, group=group,
             params={"user": upn, "manager_id": manager["id"], "manager_label": user_label(manager)},
             before={"manager": current.get("manager")}, after={"manager": _brief(manager)})
    _password_step(ctx, create, manager, upn)


def _read_existing(ctx: PlanContext, upn: str) -> dict[str, Any]:
    try:
        user = ctx.client.get(user_path(upn), params={
            "$select": "id,displayName,mailNickname,accountEnabled,userType,department,jobTitle,usageLocation"})
    except GraphNotFound:
        return {"exists": False}
    return {"exists": True, **{k: v for k, v in user.items() if not k.startswith("@")}}


def _report_differences(ctx: PlanContext, existing: dict[str, Any], wanted: dict[str, Any]) -> None:
    diffs = [f"{k}: {existing.get(k)!r} (wanted {v!r})" for k, v in wanted.items()
             if k != "userPrincipalName" and existing.get(k) != v]
    if diffs:
        ctx.warnings.append("the existing user differs from the conf (use msteams_update_user to change it): "
                            + "; ".join(diffs))


def _check_domain(ctx: PlanContext, upn: str) -> None:
    domain = upn.rsplit("@", 1)[1].lower()
    orgs = ctx.client.get("/organization", params={"$select": "verifiedDomains"}).get("value") or [{}]
    verified = [d.get("name", "") for d in orgs[0].get("verifiedDomains") or []]
    if verified and domain not in {v.lower() for v in verified}:
        raise ConfError(f"user_principal_name: {domain!r} is not a verified domain of this tenant (nothing was "
                        "changed)", [f"use one of: {', '.join(verified)}"])


def _brief(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "userPrincipalName": user.get("userPrincipalName"),
            "displayName": user.get("displayName")}


def _password_step(ctx: PlanContext, create: dict[str, Any], manager: dict[str, Any], upn: str) -> None:
    installed = bot_installed_for_user(ctx.client, manager["id"])
    if installed is False:
        ctx.warnings.append(f"the bot is not installed for the manager {user_label(manager)}: if the message cannot "
                            f"be delivered, {PASSWORD_ADVICE}")
    template = (f"IT notice: a Microsoft 365 account was created for {ctx.conf['display_name']} ({upn}), who "
                "reports to you. Temporary password: {password} . They must change it at first sign-in. Hand it "
                "over in person or by phone, never by e-mail, and delete this message afterwards.")
    ctx.step("deliver_password", f"Send the temporary password to the manager {user_label(manager)} by bot",
             target={"type": "user", "id": manager["id"], "label": user_label(manager)}, group=create["group"],
             params={"user": manager["id"], "create_step": create["id"], "template": template},
             before={"bot_installed": installed}, after={"message": "delivered"}, noop=bool(create["noop"]),
             note="no new password: the user already exists" if create["noop"] else None)


# ------------------------------------------------------------------------------------------------ restore
def plan_restore_user(ctx: PlanContext) -> None:
    """msteams_restore_user: restore the deleted object, then (optionally) re-add recorded memberships."""
    user_id = ctx.conf["user"]
    user, state = _deleted_or_active(ctx, user_id)
    ctx.protect([user])
    target = user_target(user)
    if state == "deleted":
        _check_upn_free(ctx, user)
    ctx.add_target(user)
    ctx.step("restore_user", f"Restore the deleted user {user_label(user)}", target=target,
             params={"user": user_id}, before={"state": state, "deletedDateTime": user.get("deletedDateTime")},
             after={"state": "active"}, note="already restored" if state == "active" else _deadline(user))
    if ctx.conf.get("restore_memberships"):
        _membership_steps(ctx, user, state)


def _deleted_or_active(ctx: PlanContext, user_id: str) -> tuple[dict[str, Any], str]:
    try:
        return resolve_user(ctx.client, user_id), "active"
    except NotFoundError:
        pass
    deleted = find_deleted_user(ctx.client, user_id)
    if deleted is None:
        raise NotFoundError(f"no deleted user with object id {user_id!r} (nothing was changed)",
                            ["it may have been permanently deleted (30 days after deletion, or purged by an admin), "
                             "or the id is wrong: Entra admin center > Users > Deleted users lists the restorable "
                             "users with their object ids"])
    upn = str(deleted.get("userPrincipalName") or "")
    prefix = user_id.replace("-", "")
    original = upn[len(prefix):] if upn.lower().startswith(prefix.lower()) else upn
    return {**deleted, "userPrincipalName": original, "deletedUserPrincipalName": upn}, "deleted"


def _check_upn_free(ctx: PlanContext, user: dict[str, Any]) -> None:
    upn = user.get("userPrincipalName")
    if not upn:
        return
    try:
        other = ctx.client.get(user_path(upn), params={"$select": "id,displayName,userPrincipalName"})
    except GraphNotFound:
        return
    raise SafeguardError(f"cannot restore {user_label(user)}: another user now has the UPN {upn!r} "
                         "(nothing was changed)",
                         [f"rename {user_label(other)} ({other['id']}) first, then trigger the restore again"])


def _deadline(user: dict[str, Any]) -> str | None:
    deleted = user.get("deletedDateTime")
    if not deleted:
        return None
    try:
        when = datetime.fromisoformat(str(deleted).replace("Z", "+00:00")) + timedelta(days=30)
    except ValueError:
        return None
    return f"restorable until about {when.strftime('%Y-%m-%d %H:%M')} UTC (30 days after deletion)"


def _membership_steps(ctx: PlanContext, user: dict[str, Any], state: str) -> None:
    if ctx.audit is None:
        raise PlanError("restore_memberships needs the audit log (where removed memberships are recorded); "
                        "the DAG passes it to build_plan(audit=...)")
    recorded = ctx.audit.membership_undo(user["id"])
    if not recorded:
        ctx.warnings.append(f"the audit log has no removed team memberships for {user_label(user)}: nothing to "
                            "re-add (memberships Entra kept at deletion come back with the restore)")
        return
    guest = user.get("userType") == "Guest"
    for entry in recorded:
        _membership_step(ctx, user, entry, state, guest)


def _membership_step(ctx: PlanContext, user: dict[str, Any], entry: dict[str, Any], state: str, guest: bool) -> None:
    try:
        team = resolve_team(ctx.client, entry["team_id"])
    except NotFoundError:
        ctx.warnings.append(f"team {entry.get('team_name')!r} ({entry['team_id']}) no longer exists: not re-added")
        return
    role = "owner" if entry.get("role") == "owner" and not guest else "member"
    before = {"member": False, "role": None} if state == "deleted" else read_membership(
        ctx.client, team["id"], user["id"])
    before.pop("membership_id", None)
    ctx.step("add_team_member", f"Re-add to team {team['displayName']!r} as {role}", target=user_target(user),
             obj={"type": "team", "id": team["id"], "label": team["displayName"]},
             params={"team_id": team["id"], "team_name": team["displayName"], "user": user["id"], "role": role},
             before=before, after={"member": True, "role": role},
             note="recorded in the audit log when it was removed; if the restore brings it back, nothing is written")

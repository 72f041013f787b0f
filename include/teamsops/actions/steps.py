"""Step kinds: for each kind of change, how to read the current state, when the target state is reached, and the
one Graph (or Bot Framework) write that reaches it.

The same three functions serve the whole flow, which is what makes it idempotent and verifiable:

* plan: ``read`` -> ``before``; ``satisfied(before)`` -> the step is a no-op;
* apply: ``read`` again right before writing; already satisfied -> success without a write; else ``write``;
* verify: ``read`` after apply; not satisfied -> the write did not take.

A step is a small JSON-serialisable dict (see :mod:`teamsops.actions.plan`); ``step["params"]`` holds what the kind
needs. Writes return :class:`Written` with Graph's ``request-id`` of each request sent.

Kinds whose result cannot be read back (bot messages) have ``readable = False``: they are verified from the
connector's answer (the activity id) and made idempotent across reruns through the audit log (the step ids a run has
already recorded as applied).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from teamsops.actions.conf import is_guid
from teamsops.actions.passwords import temporary_password
from teamsops.actions.resolve import USER_SELECT, odata_string, user_path
from teamsops.graph import BotClient, GraphClient, GraphNotFound

__all__ = ["KINDS", "MESSAGE_KINDS", "StepContext", "StepKind", "Written"]

log = logging.getLogger(__name__)

MEMBER_TYPE = "#microsoft.graph.aadUserConversationMember"


@dataclass
class StepContext:
    """What step kinds need while applying: the clients and in-memory, never-persisted values.

    :ivar secrets: step id -> temporary password of a user created in this apply (wiped at the end of apply).
    :ivar created: UPNs / ids created in this apply (Graph may need a moment before they are addressable).
    """

    client: GraphClient
    bot: BotClient | None = None
    texts: dict[str, str] = field(default_factory=dict, repr=False)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    created: set[str] = field(default_factory=set)


@dataclass
class Written:
    """The outcome of one write: Graph ``request-id`` values (one per request sent) and optional details."""

    request_ids: list[str] = field(default_factory=list)
    note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class StepKind:
    """Base class: ``read`` / ``satisfied`` / ``write`` of one kind of change."""

    readable = True
    destructive = False

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        raise NotImplementedError

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        raise NotImplementedError


def _request_id(response: Any) -> list[str]:
    rid = response.headers.get("request-id")
    return [rid] if rid else []


def _send(client: GraphClient, method: str, path: str, body: Any = None) -> tuple[Any, list[str]]:
    """Send one write, never re-sent automatically after a connection loss (``idempotent=False``): an unknown
    outcome surfaces as ``GraphConnectionError(outcome_unknown=True)`` and the apply engine verifies by reading."""
    response = client.request(method, path, json=body, idempotent=False)
    payload = response.json() if response.content else None
    return payload, _request_id(response)


# ------------------------------------------------------------------------------------------------ users
def read_user_props(client: GraphClient, ref: str, props: list[str]) -> dict[str, Any]:
    """Current values of ``props``; for a soft-deleted user they come from deletedItems (``"deleted": True``)."""
    select = ",".join(dict.fromkeys(["id", *props]))
    try:
        user = client.get(user_path(ref), params={"$select": select})
        return {"exists": True, **{p: user.get(p) for p in props}}
    except GraphNotFound:
        if not is_guid(ref):
            return {"exists": False}  # deletedItems is addressed by object id only
    try:
        user = client.get(f"/directory/deletedItems/{ref}", params={"$select": select})
        return {"exists": False, "deleted": True, **{p: user.get(p) for p in props}}
    except GraphNotFound:
        return {"exists": False}


def _same(current: Any, wanted: Any) -> bool:
    """Graph returns null for cleared values; an empty string or list means the same."""
    empty = (None, "", [])
    if current in empty and wanted in empty:
        return True
    return bool(current == wanted)


class SetProperties(StepKind):
    """PATCH user properties (update, enable / disable, change userType). Only differing properties are sent."""

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_user_props(ctx.client, step["params"]["user"], list(step["params"]["properties"]))

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        if state.get("exists") is False and not state.get("deleted"):
            return False  # a soft-deleted user's properties are still read (from deletedItems) and compared
        return all(_same(state.get(k), v) for k, v in step["params"]["properties"].items())

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        if not state.get("exists"):
            raise GraphNotFound(404, "Request_ResourceNotFound",
                                f"user {step['params']['user']} no longer exists (deleted since the plan was made)")
        changes = {k: v for k, v in step["params"]["properties"].items() if not _same(state.get(k), v)}
        _, ids = _send(ctx.client, "PATCH", user_path(step["params"]["user"]), changes)
        return Written(ids, details={"sent": sorted(changes)})


class DisableUser(SetProperties):
    destructive = True


class RevokeSessions(StepKind):
    """``POST /users/{id}/revokeSignInSessions``: done once ``signInSessionsValidFromDateTime`` is at or after the
    plan's ``not_before`` (Graph's clock at plan time), so rerunning the same plan does not revoke twice."""

    destructive = True

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_user_props(ctx.client, step["params"]["user"], ["signInSessionsValidFromDateTime"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        value = _parse_time(state.get("signInSessionsValidFromDateTime"))
        return value is not None and value >= _parse_time(step["params"]["not_before"])

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        _, ids = _send(ctx.client, "POST", f"{user_path(step['params']['user'])}/revokeSignInSessions")
        return Written(ids)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_manager(client: GraphClient, ref: str) -> dict[str, Any]:
    """``{"exists", "manager": {"id", "userPrincipalName", "displayName"} | None}`` via ``$expand=manager``
    (a 404 then means the user is gone, never "no manager")."""
    try:
        user = client.get(user_path(ref), params={
            "$select": "id", "$expand": "manager($select=id,userPrincipalName,displayName)"})
    except GraphNotFound:
        return {"exists": False, "manager": None}
    manager = user.get("manager")
    if not manager:
        return {"exists": True, "manager": None}
    return {"exists": True, "manager": {k: manager.get(k) for k in ("id", "userPrincipalName", "displayName")}}


class SetManager(StepKind):
    """``PUT /users/{id}/manager/$ref``."""

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_manager(ctx.client, step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        manager = state.get("manager") or {}
        return str(manager.get("id", "")).lower() == step["params"]["manager_id"].lower()

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        ref = {"@odata.id": f"{ctx.client.settings.graph_base}/users/{step['params']['manager_id']}"}
        _, ids = _send(ctx.client, "PUT", f"{user_path(step['params']['user'])}/manager/$ref", ref)
        return Written(ids)


class RemoveManager(StepKind):
    """``DELETE /users/{id}/manager/$ref``."""

    destructive = True

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_manager(ctx.client, step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return not state.get("manager")

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        _, ids = _send(ctx.client, "DELETE", f"{user_path(step['params']['user'])}/manager/$ref")
        return Written(ids)


def read_lifecycle(client: GraphClient, user_id: str) -> dict[str, Any]:
    """``{"state": "active" | "deleted" | "gone"}`` of a user object id."""
    try:
        client.get(f"/users/{user_id}", params={"$select": "id"})
        return {"state": "active"}
    except GraphNotFound:
        pass
    try:
        item = client.get(f"/directory/deletedItems/{user_id}", params={"$select": "id,deletedDateTime"})
        return {"state": "deleted", "deletedDateTime": item.get("deletedDateTime")}
    except GraphNotFound:
        return {"state": "gone"}


class DeleteUser(StepKind):
    """``DELETE /users/{id}`` (soft delete: restorable for 30 days)."""

    destructive = True

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_lifecycle(ctx.client, step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return state.get("state") in ("deleted", "gone")

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        _, ids = _send(ctx.client, "DELETE", f"/users/{step['params']['user']}")
        return Written(ids)


class RestoreUser(StepKind):
    """``POST /directory/deletedItems/{id}/restore``."""

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_lifecycle(ctx.client, step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return state.get("state") == "active"

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        if state.get("state") == "gone":
            raise GraphNotFound(404, "Request_ResourceNotFound",
                                f"deleted user {step['params']['user']} was permanently deleted and cannot be restored")
        _, ids = _send(ctx.client, "POST", f"/directory/deletedItems/{step['params']['user']}/restore")
        ctx.created.add(step["params"]["user"])
        return Written(ids)


class CreateUser(StepKind):
    """``POST /users`` with a random temporary password (kept in memory for the delivery step only)."""

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        upn = step["params"]["user_principal_name"]
        try:
            user = ctx.client.get(user_path(upn), params={"$select": USER_SELECT})
        except GraphNotFound:
            return {"exists": False}
        return {"exists": True, "id": user.get("id"), "displayName": user.get("displayName")}

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return bool(state.get("exists"))

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        password = temporary_password()
        ctx.secrets[step["id"]] = password  # before sending: a verified-after-connection-loss create used this one
        body = {**step["params"]["properties"],
                "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": password}}
        payload, ids = _send(ctx.client, "POST", "/users", body)
        ctx.created.add(step["params"]["user_principal_name"].lower())
        return Written(ids, details={"id": (payload or {}).get("id")})


def read_membership(client: GraphClient, team_id: str, user_id: str) -> dict[str, Any]:
    """A user's membership of a team: ``{"member": bool, "role": "owner" | "member" | "guest", "membership_id"}``
    (``GET /teams/{id}/members?$filter=(microsoft.graph.aadUserConversationMember/userId eq '...')``)."""
    flt = f"(microsoft.graph.aadUserConversationMember/userId eq {odata_string(user_id)})"
    members = list(client.paginate(f"/teams/{team_id}/members", params={"$filter": flt}))
    if not members:
        return {"member": False, "role": None}
    roles = [str(r).lower() for r in members[0].get("roles") or []]
    role = "owner" if "owner" in roles else "guest" if "guest" in roles else "member"
    return {"member": True, "role": role, "membership_id": members[0].get("id")}


class AddTeamMember(StepKind):
    """``POST /teams/{id}/members`` (or ``PATCH`` the membership's roles to promote an existing member)."""

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_membership(ctx.client, step["params"]["team_id"], step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        if not state.get("member"):
            return False
        return step["params"]["role"] != "owner" or state.get("role") == "owner"

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        params = step["params"]
        roles = ["owner"] if params["role"] == "owner" else []
        team = params["team_id"]
        if state.get("member"):
            body = {"@odata.type": MEMBER_TYPE, "roles": roles}
            _, ids = _send(ctx.client, "PATCH", f"/teams/{team}/members/{state['membership_id']}", body)
            return Written(ids, note="already a member: promoted to owner")
        body = {"@odata.type": MEMBER_TYPE, "roles": roles,
                "user@odata.bind": f"{ctx.client.settings.graph_base}/users('{params['user']}')"}
        _, ids = _send(ctx.client, "POST", f"/teams/{team}/members", body)
        return Written(ids)


class RemoveTeamMember(StepKind):
    """``DELETE /teams/{id}/members/{membership-id}`` (the membership id is read fresh: it is opaque)."""

    destructive = True

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return read_membership(ctx.client, step["params"]["team_id"], step["params"]["user"])

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return not state.get("member")

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        team = step["params"]["team_id"]
        _, ids = _send(ctx.client, "DELETE", f"/teams/{team}/members/{state['membership_id']}")
        return Written(ids)


# ------------------------------------------------------------------------------------------------ bot messages
class _Message(StepKind):
    readable = False

    def read(self, ctx: StepContext, step: dict[str, Any]) -> dict[str, Any]:
        return {}

    def satisfied(self, step: dict[str, Any], state: dict[str, Any]) -> bool:
        return False

    @staticmethod
    def _bot(ctx: StepContext) -> BotClient:
        if ctx.bot is None:  # apply_plan checks this before the first write; this guards direct use
            raise RuntimeError("a BotClient is needed to send bot messages")
        return ctx.bot


class SendUserMessage(_Message):
    """A proactive 1:1 message from the bot (Bot Framework connector)."""

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        activity = self._bot(ctx).send_to_user(step["params"]["user"], ctx.texts[step["params"]["text_key"]])
        return Written([], details={"activity_id": activity})


class SendChannelMessage(_Message):
    """A new thread in a channel, posted by the bot."""

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        p = step["params"]
        activity = self._bot(ctx).send_to_channel(p["team_id"], p["channel_id"], ctx.texts[p["text_key"]])
        return Written([], details={"activity_id": activity})


class DeliverPassword(_Message):
    """The new user's temporary password, sent by the bot to the manager. The text is built here, in memory, and
    never stored: the step's params hold only the template without the password."""

    def write(self, ctx: StepContext, step: dict[str, Any], state: dict[str, Any]) -> Written:
        p = step["params"]
        password = ctx.secrets.pop(p["create_step"], None)  # used once, then forgotten
        if password is None:
            raise NoPasswordToDeliver()
        # Teams renders bot text as Markdown: the code span keeps symbols in the password from being formatted.
        activity = self._bot(ctx).send_to_user(p["user"], p["template"].replace("{password}", f"`{password}`"))
        return Written([], details={"activity_id": activity})


class NoPasswordToDeliver(Exception):  # noqa: N818 - a signal to the apply engine, not an error
    """The user was not created by this apply, so there is no temporary password to send."""


KINDS: dict[str, StepKind] = {
    "create_user": CreateUser(),
    "update_user": SetProperties(),
    "enable_user": SetProperties(),
    "disable_user": DisableUser(),
    "change_user_type": DisableUser(),
    "revoke_sessions": RevokeSessions(),
    "set_manager": SetManager(),
    "remove_manager": RemoveManager(),
    "delete_user": DeleteUser(),
    "restore_user": RestoreUser(),
    "add_team_member": AddTeamMember(),
    "remove_team_member": RemoveTeamMember(),
    "send_user_message": SendUserMessage(),
    "send_channel_message": SendChannelMessage(),
    "deliver_password": DeliverPassword(),
}
MESSAGE_KINDS = frozenset(k for k, v in KINDS.items() if not v.readable)

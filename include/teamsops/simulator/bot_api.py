"""The Bot Framework connector REST API as Teams serves it (graph-facts §8): proactive 1:1 conversations and channel
posts, with Teams' roster rules.

Paths arrive without the service-URL prefix (``/v3/conversations...``); the server has already validated the bot
token, so ``ctx.app_id`` is the bot's app id. For a multi-tenant bot ``ctx.tenant_id`` is the botframework.com tenant
and the target tenant comes from the body (``tenantId`` / ``channelData.tenant.id``).

Routes:
  * ``POST /v3/conversations`` - 1:1 (``members`` = one user: a ``29:`` id this connector issued, or the user's Entra
    object id in ``id`` / ``aadObjectId``) -> ``{"id": "a:..."}`` (stable per bot and user); channel
    (``isGroup: true`` + ``channelData.channel.id``) -> ``{"id": "<channel>;messageid=<n>", "activityId": "<n>"}``.
  * ``POST /v3/conversations/{id}/activities`` (+ ``/{activityId}`` to reply), ``PUT`` / ``DELETE`` an activity.
  * ``GET /v3/conversations/{id}/members`` and ``/pagedmembers``.

Teams refuses a 1:1 conversation when the bot's Teams app is not installed in the user's personal scope (403
``ForbiddenOperationException``) and a channel post when it is not installed in the team (403
``BotNotInConversationRoster``). Sent messages are recorded in ``Tenant.bot_messages`` and the write journal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from teamsops.simulator.generator import BOTFRAMEWORK_TENANT_ID
from teamsops.simulator.http import CallContext, SimRequest, SimResponse
from teamsops.simulator.model import Directory, Tenant, is_guid, utcnow

MAX_MESSAGE_BYTES = 28 * 1024  # Teams' message size limit (about 28 KB including attachments)
_PERSONAL_CHAT = re.compile(r"^19:([0-9a-fA-F-]{36})_([0-9a-fA-F-]{36})@unq\.gbl\.spaces$")
_THREAD = re.compile(r"^(19:[^;]+@thread\.(?:tacv2|skype))(?:;messageid=(\d+))?$")


class BotFailure(Exception):
    """Stops a route with a Bot Framework ErrorResponse ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _not_installed_personal() -> BotFailure:
    return BotFailure(403, "ForbiddenOperationException", "Bot isn't installed in user's personal scope")


def _not_in_roster() -> BotFailure:
    return BotFailure(403, "BotNotInConversationRoster", "The bot isn't part of the conversation roster.")


def _conversation_not_found() -> BotFailure:
    return BotFailure(404, "ConversationNotFound", "Conversation not found.")


@dataclass
class _Target:
    """Where a conversation id points: a user's personal chat with the bot, or a channel (thread)."""

    tenant: Tenant
    kind: str  # "personal" | "channel"
    user_id: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    root_id: str | None = None


class BotApi:
    """The connector (``smba.trafficmanager.net``) of the simulated cloud.

    :param directory: the simulated tenants (bots, catalogs, installations, users, teams).
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._clock_lock = threading.Lock()
        self._last_activity = 0

    # ------------------------------------------------------------------ entry point
    def handle(self, req: SimRequest, ctx: CallContext) -> SimResponse:
        try:
            return self._dispatch(req, ctx)
        except BotFailure as failure:
            return SimResponse(failure.status, {"error": {"code": failure.code, "message": failure.message}})

    def _dispatch(self, req: SimRequest, ctx: CallContext) -> SimResponse:
        parts = [p for p in req.path.split("/") if p]
        if len(parts) < 2 or parts[0] != "v3" or parts[1] != "conversations":
            raise BotFailure(404, "NotFound", f"Unknown connector path {req.path!r}: use /v3/conversations.")
        method, rest = req.method.upper(), parts[2:]
        self._bot(ctx)
        if not rest and method == "POST":
            return self.create_conversation(req, ctx)
        if len(rest) == 2 and rest[1] == "activities" and method == "POST":
            return self.send(req, ctx, rest[0], reply_to=None)
        if len(rest) == 3 and rest[1] == "activities":
            if method == "POST":
                return self.send(req, ctx, rest[0], reply_to=rest[2])
            if method in ("PUT", "DELETE"):
                return self.edit(req, ctx, rest[0], rest[2])
        if len(rest) == 2 and rest[1] in ("members", "pagedmembers") and method == "GET":
            return self.members(req, ctx, rest[0], paged=rest[1] == "pagedmembers")
        raise BotFailure(405 if rest else 404, "BadArgument", f"{method} {req.path} is not a connector operation.")

    # ------------------------------------------------------------------ identity
    def _bot(self, ctx: CallContext) -> tuple[Tenant, Any]:
        found = self.directory.find_app(ctx.app_id)
        if found is None or not found[1].bot:
            raise BotFailure(401, "BotNotRegistered", "No registration found for this bot.")
        if not found[1].enabled:
            raise BotFailure(403, "BotDisabledByAdmin", "The tenant admin disabled this bot")
        return found

    def _target_tenant(self, ctx: CallContext, body: dict[str, Any]) -> Tenant:
        channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
        ref = body.get("tenantId") or (channel_data.get("tenant") or {}).get("id")
        if not ref and ctx.tenant_id != BOTFRAMEWORK_TENANT_ID:
            ref = ctx.tenant_id
        tenant = self.directory.get_tenant(ref) if ref else self._bot(ctx)[0]
        if tenant is None:
            raise BotFailure(400, "BadArgument", f"Unknown tenant '{ref}': set tenantId to the user's Entra tenant id.")
        return tenant

    @staticmethod
    def _bot_apps(tenant: Tenant, bot_app_id: str) -> set[str]:
        """The tenant's Teams apps that package this bot."""
        return {app_id for app_id, d in tenant.app_definitions.items() if d.get("azureADAppId") == bot_app_id}

    def _installed_for_user(self, tenant: Tenant, bot_app_id: str, user_id: str) -> bool:
        return bool(self._bot_apps(tenant, bot_app_id) & set(tenant.user_apps.get(user_id, {})))

    def _installed_in_team(self, tenant: Tenant, bot_app_id: str, team_id: str) -> bool:
        return bool(self._bot_apps(tenant, bot_app_id) & set(tenant.team_apps.get(team_id, {})))

    @staticmethod
    def bot_user_id(bot_app_id: str, tenant_id: str, user_id: str) -> str:
        """The bot-scoped ``29:`` id of a user (different for every bot, stable for a bot and user)."""
        digest = hashlib.sha256(f"{bot_app_id}|{tenant_id}|{user_id}".encode()).digest()
        return "29:1" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @staticmethod
    def personal_conversation_id(bot_app_id: str, tenant_id: str, user_id: str) -> str:
        digest = hashlib.sha256(f"personal|{bot_app_id}|{tenant_id}|{user_id}".encode()).digest()
        return "a:1" + base64.urlsafe_b64encode(digest + digest[:12]).decode().rstrip("=")

    def _resolve_member(self, tenant: Tenant, bot_app_id: str, member: Any) -> str:
        """A ConversationParameters member -> the user's object id (29: ids, object ids, aadObjectId)."""
        if not isinstance(member, dict):
            raise BotFailure(400, "BadArgument", 'Each member must be an object like {"id": "29:..."}.')
        for key in ("aadObjectId", "id"):
            value = member.get(key)
            if isinstance(value, str) and is_guid(value) and value.lower() in tenant.users:
                return value.lower()
        value = member.get("id")
        if isinstance(value, str) and value.startswith("29:"):
            for user_id in tenant.users:  # ids are derived, so scanning is enough (and rare: clients cache them)
                if self.bot_user_id(bot_app_id, tenant.id, user_id) == value:
                    return user_id
        raise BotFailure(400, "BadArgument", "Invalid user identity in provided tenant")

    # ------------------------------------------------------------------ create
    def create_conversation(self, req: SimRequest, ctx: CallContext) -> SimResponse:
        body = self._json(req)
        _, bot = self._bot(ctx)
        tenant = self._target_tenant(ctx, body)
        if body.get("isGroup"):
            return self._create_channel_thread(req, ctx, tenant, body)
        members = body.get("members")
        if not isinstance(members, list) or len(members) != 1:
            raise BotFailure(
                400,
                "BadArgument",
                "A 1:1 conversation needs exactly one member; set isGroup and "
                "channelData.channel.id to post to a channel.",
            )
        with tenant.lock:
            user_id = self._resolve_member(tenant, bot.app_id, members[0])
            if not self._installed_for_user(tenant, bot.app_id, user_id):
                raise _not_installed_personal()
            conversation_id = self.personal_conversation_id(bot.app_id, tenant.id, user_id)
            tenant.bot_conversations[conversation_id] = {
                "kind": "personal",
                "user_id": user_id,
                "bot_app_id": bot.app_id,
            }
            result: dict[str, Any] = {"id": conversation_id}
            activity = body.get("activity")
            if isinstance(activity, dict):
                target = _Target(tenant, "personal", user_id=user_id)
                result["activityId"] = self._deliver(req, ctx, target, conversation_id, activity, None)
            self._journal(req, ctx, tenant, 201, conversation_id)
        return SimResponse(201, result)

    def _create_channel_thread(
        self, req: SimRequest, ctx: CallContext, tenant: Tenant, body: dict[str, Any]
    ) -> SimResponse:
        channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
        channel_id = (channel_data.get("channel") or {}).get("id")
        if not channel_id:
            raise BotFailure(
                400,
                "BadArgument",
                "Bots cannot create group chats; to start a channel thread set "
                "channelData.channel.id (and channelData.team.id).",
            )
        activity = body.get("activity")
        if not isinstance(activity, dict):
            raise BotFailure(400, "BadArgument", "A new channel thread needs its first message in 'activity'.")
        with tenant.lock:
            target = self._channel_target(tenant, channel_id, None)
            team_ref = (channel_data.get("team") or {}).get("id")
            if team_ref and team_ref not in (target.team_id, tenant.teams[target.team_id]["internalId"]):
                raise BotFailure(400, "BadArgument", f"Channel {channel_id} does not belong to team {team_ref}.")
            self._check_channel(tenant, ctx.app_id, target)
            activity_id = self._deliver(req, ctx, target, channel_id, activity, None)
            conversation_id = f"{channel_id};messageid={activity_id}"
            self._journal(req, ctx, tenant, 201, conversation_id)
        return SimResponse(201, {"id": conversation_id, "activityId": activity_id})

    # ------------------------------------------------------------------ send / edit
    def send(self, req: SimRequest, ctx: CallContext, conversation_id: str, reply_to: str | None) -> SimResponse:
        activity = self._json(req)
        target = self._locate(ctx, conversation_id)
        with target.tenant.lock:
            self._check_target(ctx, target)
            activity_id = self._deliver(req, ctx, target, conversation_id, activity, reply_to or target.root_id)
            self._journal(req, ctx, target.tenant, 201, conversation_id)
        return SimResponse(201, {"id": activity_id})

    def edit(self, req: SimRequest, ctx: CallContext, conversation_id: str, activity_id: str) -> SimResponse:
        target = self._locate(ctx, conversation_id)
        with target.tenant.lock:
            self._check_target(ctx, target)
            message = next(
                (
                    m
                    for m in target.tenant.bot_messages
                    if m["activity_id"] == activity_id and m["bot_app_id"] == ctx.app_id
                ),
                None,
            )
            if message is None:
                raise BotFailure(404, "ActivityNotFoundInConversation", "Conversation not found.")
            if req.method.upper() == "PUT":
                activity = self._json(req)
                self._check_activity(req, activity)
                message["text"] = activity.get("text")
                message["edited"] = True
            else:
                message["deleted"] = True
            self._journal(req, ctx, target.tenant, 200, conversation_id)
        return SimResponse(200, {"id": activity_id} if req.method.upper() == "PUT" else None)

    def _deliver(
        self,
        req: SimRequest,
        ctx: CallContext,
        target: _Target,
        conversation_id: str,
        activity: dict[str, Any],
        reply_to: str | None,
    ) -> str:
        self._check_activity(req, activity)
        activity_id = self._next_activity_id()
        target.tenant.bot_messages.append(
            {
                "conversation_id": conversation_id,
                "activity_id": activity_id,
                "bot_app_id": ctx.app_id,
                "tenant_id": target.tenant.id,
                "user_id": target.user_id,
                "team_id": target.team_id,
                "channel_id": target.channel_id,
                "reply_to_id": reply_to,
                "type": activity.get("type"),
                "text": activity.get("text"),
                "attachments": activity.get("attachments") or [],
                "time": utcnow().isoformat(),
            }
        )
        return activity_id

    @staticmethod
    def _check_activity(req: SimRequest, activity: dict[str, Any]) -> None:
        if activity.get("type") not in ("message", "typing", "event"):
            raise BotFailure(
                400, "BadArgument", 'The activity needs a \'type\'; send {"type": "message", "text": ...}.'
            )
        if activity["type"] == "message" and not (activity.get("text") or activity.get("attachments")):
            raise BotFailure(400, "BadArgument", "A message activity needs 'text' or 'attachments'.")
        if len(req.body) > MAX_MESSAGE_BYTES:
            raise BotFailure(413, "MessageSizeTooBig", "Message size too large.")

    def _next_activity_id(self) -> str:
        """Teams activity ids are millisecond timestamps; keep them unique and increasing."""
        with self._clock_lock:
            self._last_activity = max(self._last_activity + 1, int(time.time() * 1000))
            return str(self._last_activity)

    # ------------------------------------------------------------------ conversation lookup
    def _locate(self, ctx: CallContext, conversation_id: str) -> _Target:
        chat = _PERSONAL_CHAT.match(conversation_id)
        thread = _THREAD.match(conversation_id)
        for tenant in self._candidate_tenants(ctx):
            with tenant.lock:
                known = tenant.bot_conversations.get(conversation_id)
                if known and known["bot_app_id"] == ctx.app_id:
                    return _Target(tenant, "personal", user_id=known["user_id"])
                if chat and chat.group(2).lower() == ctx.app_id.lower() and chat.group(1).lower() in tenant.users:
                    return _Target(tenant, "personal", user_id=chat.group(1).lower())
                if thread and self._find_channel(tenant, thread.group(1)):
                    return self._channel_target(tenant, thread.group(1), thread.group(2))
        raise _conversation_not_found()

    def _candidate_tenants(self, ctx: CallContext) -> list[Tenant]:
        first = self.directory.get_tenant(ctx.tenant_id) if ctx.tenant_id != BOTFRAMEWORK_TENANT_ID else None
        rest = [t for t in self.directory.tenants.values() if t is not first]
        return ([first] if first else []) + rest

    @staticmethod
    def _find_channel(tenant: Tenant, channel_id: str) -> str | None:
        for team_id, channels in tenant.channels.items():
            if any(c["id"] == channel_id for c in channels):
                return team_id
        return None

    def _channel_target(self, tenant: Tenant, channel_id: str, root_id: str | None) -> _Target:
        team_id = self._find_channel(tenant, channel_id)
        if team_id is None:
            raise _conversation_not_found()
        return _Target(tenant, "channel", team_id=team_id, channel_id=channel_id, root_id=root_id)

    def _check_target(self, ctx: CallContext, target: _Target) -> None:
        if target.kind == "personal":
            if target.user_id not in target.tenant.users:
                raise _conversation_not_found()
            if not self._installed_for_user(target.tenant, ctx.app_id, target.user_id):
                raise _not_installed_personal()
        else:
            self._check_channel(target.tenant, ctx.app_id, target)

    def _check_channel(self, tenant: Tenant, bot_app_id: str, target: _Target) -> None:
        if not self._installed_in_team(tenant, bot_app_id, target.team_id or ""):
            raise _not_in_roster()

    # ------------------------------------------------------------------ members
    def members(self, req: SimRequest, ctx: CallContext, conversation_id: str, paged: bool) -> SimResponse:
        target = self._locate(ctx, conversation_id)
        tenant = target.tenant
        with tenant.lock:
            self._check_target(ctx, target)
            if target.kind == "personal":
                user_ids = [target.user_id]
            else:
                user_ids = list(tenant.team_member_ids(target.team_id or ""))
            accounts = [self._account(tenant, ctx.app_id, uid) for uid in user_ids]
        if not paged:
            return SimResponse(200, accounts)
        return SimResponse(200, self._page(req, accounts))

    @staticmethod
    def _page(req: SimRequest, accounts: list[dict[str, Any]]) -> dict[str, Any]:
        query = req.query
        size = (
            min(max(int(query.get("pageSize") or 200), 1), 500) if (query.get("pageSize") or "200").isdigit() else 200
        )
        start = int(query.get("continuationToken") or 0) if (query.get("continuationToken") or "0").isdigit() else 0
        page: dict[str, Any] = {"members": accounts[start : start + size]}
        if start + size < len(accounts):
            page["continuationToken"] = str(start + size)
        return page

    def _account(self, tenant: Tenant, bot_app_id: str, user_id: str) -> dict[str, Any]:
        user = tenant.users[user_id]
        return {
            "id": self.bot_user_id(bot_app_id, tenant.id, user_id),
            "name": user.get("displayName"),
            "aadObjectId": user_id,
            "givenName": user.get("givenName"),
            "surname": user.get("surname"),
            "email": user.get("mail"),
            "userPrincipalName": user.get("userPrincipalName"),
            "tenantId": tenant.id,
            "userRole": "guest" if user.get("userType") == "Guest" else "user",
        }

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _json(req: SimRequest) -> dict[str, Any]:
        try:
            value = json.loads(req.body or b"null")
        except ValueError:
            raise BotFailure(400, "BadArgument", "The request body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise BotFailure(400, "BadArgument", "The request body must be a JSON object.")
        return value

    def _journal(self, req: SimRequest, ctx: CallContext, tenant: Tenant, status: int, target: str) -> None:
        self.directory.record_write(
            tenant_id=tenant.id,
            app_id=ctx.app_id,
            method=req.method.upper(),
            path=req.path,
            status=status,
            request_id=ctx.request_id,
            client_request_id=ctx.client_request_id,
            target=target,
        )

"""Bot messages: 1:1 messages to users and new threads in channels, sent by the connection's bot through the Bot
Framework connector (its own token scope and service URL, see :class:`teamsops.graph.BotClient`).

Messages come from the bot, never from a person: sending as a signed-in user needs delegated authentication, which
this app-only project does not use.

Reachability. Teams delivers a proactive message only where the bot's Teams app is installed (personal scope for a
user, the team for a channel); otherwise the connector answers 403 (``ForbiddenOperationException`` /
``BotNotInConversationRoster``). The plan reads each recipient's installed apps (informational, shown to the
approver); the send itself decides. A recipient without the bot is reported *by name* as not reachable and the others
still get the message; the result counts how many were delivered. When nobody could be reached the run fails.
Recipients that do not exist are a plan-time error (nothing is sent).

The message text is stored once in the plan (``plan["texts"]``), not in every step, so a message to 200 users stays a
small plan.
"""

from __future__ import annotations

import logging
from typing import Any

from teamsops.actions.context import PlanContext, user_target
from teamsops.actions.resolve import resolve_channel, resolve_team, resolve_users
from teamsops.actions.safeguards import user_label
from teamsops.graph import GraphClient, GraphError

__all__ = [
    "NOT_REACHABLE_CODES",
    "bot_installed_for_team",
    "bot_installed_for_user",
    "plan_bot_message_channel",
    "plan_bot_message_users",
]

log = logging.getLogger(__name__)

# Connector answers meaning "this recipient cannot be reached by this bot" (graph-facts §8.3).
NOT_REACHABLE_CODES = frozenset({"ForbiddenOperationException", "BotNotInConversationRoster",
                                 "ConversationBlockedByUser"})


def _packages_bot(installation: dict[str, Any], bot_app_id: str) -> bool:
    definition = installation.get("teamsAppDefinition") or {}
    bot = definition.get("bot") or {}
    ids = {str(definition.get("azureADAppId") or "").lower(), str(bot.get("id") or "").lower()}
    return bot_app_id.lower() in ids


def _installed(client: GraphClient, path: str) -> bool | None:
    """Whether the connection's bot is among the installed apps at ``path``; None when it cannot be read."""
    bot_app_id = client.settings.effective_bot_app_id
    try:
        apps = client.paginate(path, params={"$expand": "teamsAppDefinition"})
        return any(_packages_bot(app, bot_app_id) for app in apps)
    except GraphError as err:
        log.warning("could not read installed apps at %s: %s", path, err.summary())
        return None


def bot_installed_for_user(client: GraphClient, user_id: str) -> bool | None:
    """Is the bot installed in the user's personal scope? (``GET /users/{id}/teamwork/installedApps``)"""
    return _installed(client, f"/users/{user_id}/teamwork/installedApps")


def bot_installed_for_team(client: GraphClient, team_id: str) -> bool | None:
    """Is the bot installed in the team? (``GET /teams/{id}/installedApps``)"""
    return _installed(client, f"/teams/{team_id}/installedApps")


def plan_bot_message_users(ctx: PlanContext) -> None:
    """msteams_bot_message_users: one send step per recipient."""
    ctx.safeguards.check_batch(len(ctx.conf["users"]), what="recipients", limit=ctx.safeguards.max_recipients)
    users = resolve_users(ctx.client, ctx.conf["users"], role="recipient")
    ctx.texts["message"] = ctx.conf["message"]
    unreachable = []
    for user in users:
        installed = bot_installed_for_user(ctx.client, user["id"])
        notes = []
        if installed is False:
            notes.append("the bot is not installed for this user: will be reported as not reachable")
            unreachable.append(user_label(user))
        if user.get("accountEnabled") is False:
            notes.append("the account is disabled: the message waits until it signs in again")
        ctx.add_target(user)
        ctx.step("send_user_message", f"Message {user_label(user)}", target=user_target(user),
                 params={"user": user["id"], "text_key": "message"}, before={"bot_installed": installed},
                 after={"message": "delivered"}, note="; ".join(notes) or None)
    if unreachable:
        ctx.warnings.append(f"{len(unreachable)} of {len(users)} recipient(s) do not have the bot installed and will "
                            f"not get the message: {', '.join(unreachable)}")


def plan_bot_message_channel(ctx: PlanContext) -> None:
    """msteams_bot_message_channel: one new thread in a channel."""
    team = resolve_team(ctx.client, ctx.conf["team"])
    channel = resolve_channel(ctx.client, team, ctx.conf["channel"])
    ctx.texts["message"] = ctx.conf["message"]
    installed = bot_installed_for_team(ctx.client, team["id"])
    note = None
    if installed is False:
        note = "the bot is not installed in this team: the post will fail as not reachable"
        ctx.warnings.append(f"the bot is not installed in team {team['displayName']!r}: add the app to the team "
                            "(Teams admin center > Teams > the team > Apps) before triggering this run")
    if channel.get("membershipType") in ("private", "shared"):
        ctx.warnings.append(f"{channel['displayName']!r} is a {channel['membershipType']} channel: the bot must be "
                            "added to the channel itself as well")
    target = {"type": "channel", "id": channel["id"],
              "label": f"{team['displayName']} > {channel['displayName']}"}
    ctx.step("send_channel_message", f"Post in {target['label']}", target=target, group=channel["id"],
             obj={"type": "team", "id": team["id"], "label": team["displayName"]},
             params={"team_id": team["id"], "team_name": team["displayName"], "channel_id": channel["id"],
                     "channel_name": channel["displayName"], "text_key": "message"},
             before={"bot_installed": installed}, after={"message": "posted"}, note=note)

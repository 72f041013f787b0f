"""Bot Framework connector routes in-process: ``BotApi.handle(SimRequest, CallContext)`` with Teams' roster rules."""

from __future__ import annotations

import json

import pytest

from teamsops.simulator.bot_api import BotApi
from teamsops.simulator.generator import BOTFRAMEWORK_TENANT_ID, TenantSpec, generate_tenant
from teamsops.simulator.http import CallContext, Headers, SimRequest, SimResponse
from teamsops.simulator.model import Directory


class Bot:
    """Calls the connector as the tenant's demo bot (a multi-tenant bot: token tenant = botframework.com)."""

    def __init__(self, directory: Directory, tenant) -> None:
        self.api, self.directory, self.tenant = BotApi(directory), directory, tenant
        self.app_id = tenant.generated["bot_app_id"]
        self.teams_app = tenant.apps[self.app_id].teams_app_id

    def __call__(self, method: str, path: str, body=None, query: str = "", app_id: str | None = None) -> SimResponse:
        raw = json.dumps(body).encode() if body is not None else b""
        ctx = CallContext(BOTFRAMEWORK_TENANT_ID, app_id or self.app_id, frozenset(), "req-1", "client-1")
        return self.api.handle(SimRequest(method, path, query, Headers({}), raw, "https://127.0.0.1:8443"), ctx)

    def open_chat(self, member: dict) -> SimResponse:
        return self(
            "POST",
            "/v3/conversations",
            {
                "bot": {"id": f"28:{self.app_id}", "name": "IT Ops Bot"},
                "members": [member],
                "tenantId": self.tenant.id,
                "isGroup": False,
                "channelData": {"tenant": {"id": self.tenant.id}},
            },
        )

    def users(self, installed: bool) -> list[str]:
        return [
            u
            for u, v in self.tenant.users.items()
            if v["userType"] == "Member" and (self.teams_app in self.tenant.user_apps.get(u, {})) == installed
        ]

    def teams(self, installed: bool) -> list[str]:
        return [t for t in self.tenant.teams if (self.teams_app in self.tenant.team_apps.get(t, {})) == installed]


@pytest.fixture
def bot():
    tenant = generate_tenant(TenantSpec(users=120, teams=12, seed=11))
    directory = Directory()
    directory.add_tenant(tenant)
    return Bot(directory, tenant)


def _error(resp: SimResponse, status: int, code: str) -> str:
    assert resp.status == status, resp.body
    assert set(resp.body) == {"error"} and resp.body["error"]["code"] == code
    return resp.body["error"]["message"]


def test_one_to_one_message_is_delivered(bot):
    user_id = bot.users(installed=True)[0]
    opened = bot.open_chat({"id": user_id})
    assert opened.status == 201 and opened.body["id"].startswith("a:")
    assert bot.open_chat({"aadObjectId": user_id}).body["id"] == opened.body["id"]  # stable per bot and user
    sent = bot("POST", f"/v3/conversations/{opened.body['id']}/activities", {"type": "message", "text": "Hello"})
    assert sent.status == 201 and sent.body["id"].isdigit()
    message = bot.tenant.bot_messages[-1]
    assert (message["user_id"], message["text"], message["activity_id"]) == (user_id, "Hello", sent.body["id"])
    assert message["conversation_id"] == opened.body["id"] and message["bot_app_id"] == bot.app_id
    assert [e["target"] for e in bot.directory.journal][-1] == opened.body["id"]
    assert bot.tenant.snapshot("bot_messages")[-1]["text"] == "Hello"


def test_29_ids_from_the_roster_are_accepted(bot):
    user_id = bot.users(installed=True)[0]
    opened = bot.open_chat({"id": user_id})
    roster = bot("GET", f"/v3/conversations/{opened.body['id']}/members")
    assert roster.status == 200 and roster.body[0]["aadObjectId"] == user_id
    bot_scoped_id = roster.body[0]["id"]
    assert bot_scoped_id.startswith("29:")
    assert bot.open_chat({"id": bot_scoped_id}).body["id"] == opened.body["id"]
    _error(bot.open_chat({"id": "29:1unknown"}), 400, "BadArgument")


def test_user_without_the_bot_is_refused(bot):
    user_id = bot.users(installed=False)[0]
    message = _error(bot.open_chat({"id": user_id}), 403, "ForbiddenOperationException")
    assert message == "Bot isn't installed in user's personal scope"
    assert bot.tenant.bot_messages == [] and bot.directory.journal == []


def test_uninstall_after_opening_blocks_sending(bot):
    user_id = bot.users(installed=True)[0]
    opened = bot.open_chat({"id": user_id})
    bot.tenant.uninstall_app("user", user_id, bot.teams_app)
    sent = bot("POST", f"/v3/conversations/{opened.body['id']}/activities", {"type": "message", "text": "x"})
    _error(sent, 403, "ForbiddenOperationException")


def test_graph_chat_id_works_as_a_conversation_id(bot):
    user_id = bot.users(installed=True)[0]
    chat_id = f"19:{user_id}_{bot.app_id}@unq.gbl.spaces"
    sent = bot("POST", f"/v3/conversations/{chat_id}/activities", {"type": "message", "text": "via Graph chat id"})
    assert sent.status == 201 and bot.tenant.bot_messages[-1]["user_id"] == user_id


def test_channel_post_and_reply(bot):
    team_id = bot.teams(installed=True)[0]
    channel = bot.tenant.channels[team_id][0]["id"]
    general = bot.tenant.teams[team_id]["internalId"]
    created = bot(
        "POST",
        "/v3/conversations",
        {
            "isGroup": True,
            "tenantId": bot.tenant.id,
            "bot": {"id": f"28:{bot.app_id}"},
            "channelData": {"channel": {"id": channel}, "team": {"id": general}, "tenant": {"id": bot.tenant.id}},
            "activity": {"type": "message", "text": "Maintenance tonight"},
        },
    )
    assert created.status == 201
    assert created.body == {
        "id": f"{channel};messageid={created.body['activityId']}",
        "activityId": created.body["activityId"],
    }
    reply = bot("POST", f"/v3/conversations/{created.body['id']}/activities", {"type": "message", "text": "Done"})
    assert reply.status == 201
    root, answer = bot.tenant.bot_messages[-2:]
    assert (root["team_id"], root["channel_id"], root["reply_to_id"]) == (team_id, channel, None)
    assert answer["reply_to_id"] == created.body["activityId"]
    roster = bot("GET", f"/v3/conversations/{channel}/pagedmembers", query="pageSize=5")
    assert roster.status == 200 and len(roster.body["members"]) <= 5


def test_channel_of_a_team_without_the_bot_is_refused(bot):
    team_id = bot.teams(installed=False)[0]
    channel = bot.tenant.channels[team_id][0]["id"]
    body = {
        "isGroup": True,
        "tenantId": bot.tenant.id,
        "channelData": {"channel": {"id": channel}},
        "activity": {"type": "message", "text": "hi"},
    }
    assert _error(bot("POST", "/v3/conversations", body), 403, "BotNotInConversationRoster") == (
        "The bot isn't part of the conversation roster."
    )
    _error(
        bot("POST", f"/v3/conversations/{channel}/activities", {"type": "message", "text": "hi"}),
        403,
        "BotNotInConversationRoster",
    )


def test_bad_requests(bot):
    _error(
        bot("POST", "/v3/conversations/a:unknown/activities", {"type": "message", "text": "x"}),
        404,
        "ConversationNotFound",
    )
    _error(bot("POST", "/v3/conversations", {"members": [], "tenantId": bot.tenant.id}), 400, "BadArgument")
    _error(
        bot("POST", "/v3/conversations", {"isGroup": True, "members": [{"id": "x"}], "tenantId": bot.tenant.id}),
        400,
        "BadArgument",
    )
    _error(
        bot("POST", "/v3/conversations", {"members": [{"id": "x"}], "tenantId": "unknown.example"}), 400, "BadArgument"
    )
    user_id = bot.users(installed=True)[0]
    conversation = bot.open_chat({"id": user_id}).body["id"]
    _error(bot("POST", f"/v3/conversations/{conversation}/activities", {"text": "no type"}), 400, "BadArgument")
    _error(bot("POST", f"/v3/conversations/{conversation}/activities", {"type": "message"}), 400, "BadArgument")
    huge = {"type": "message", "text": "x" * 30_000}
    _error(bot("POST", f"/v3/conversations/{conversation}/activities", huge), 413, "MessageSizeTooBig")
    sync_app = bot.tenant.generated["sync_app_id"]
    _error(bot("POST", "/v3/conversations", {"members": [{"id": user_id}]}, app_id=sync_app), 401, "BotNotRegistered")


def test_edit_and_delete_activity(bot):
    user_id = bot.users(installed=True)[0]
    conversation = bot.open_chat({"id": user_id}).body["id"]
    activity = bot("POST", f"/v3/conversations/{conversation}/activities", {"type": "message", "text": "v1"}).body["id"]
    edited = bot("PUT", f"/v3/conversations/{conversation}/activities/{activity}", {"type": "message", "text": "v2"})
    assert edited.status == 200 and bot.tenant.bot_messages[-1]["text"] == "v2"
    assert bot("DELETE", f"/v3/conversations/{conversation}/activities/{activity}").status == 200
    assert bot.tenant.bot_messages[-1]["deleted"] is True
    _error(
        bot("PUT", f"/v3/conversations/{conversation}/activities/123", {"type": "message", "text": "x"}),
        404,
        "ActivityNotFoundInConversation",
    )


def test_single_tenant_bot_token_targets_its_own_tenant(bot):
    user_id = bot.users(installed=True)[0]
    ctx = CallContext(bot.tenant.id, bot.app_id, frozenset(), "r", "c")
    body = json.dumps({"members": [{"id": user_id}]}).encode()
    resp = bot.api.handle(SimRequest("POST", "/v3/conversations", "", Headers({}), body, "https://127.0.0.1"), ctx)
    assert resp.status == 201

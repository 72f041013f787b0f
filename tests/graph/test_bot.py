"""Proactive bot messages through the simulated Bot Framework connector (single-tenant bot token)."""

from __future__ import annotations

import pytest

from teamsops.graph import BotClient, BotError, UnsafeNextLinkError
from teamsops.graph.bot import check_service_url


@pytest.fixture
def bot(sim):
    from teamsops.graph import GraphSettings

    conn = sim.connection()
    settings = GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                           **conn["extra"]})
    tokens: list[str] = []
    with BotClient(settings, on_token=tokens.append) as client:
        client.tokens = tokens
        yield client


def _bot_app(tenant):
    return next(app for app in tenant.apps.values() if app.bot)


def _users(tenant, installed: bool):
    app_id = _bot_app(tenant).teams_app_id
    for user_id, user in tenant.users.items():
        if user.get("userType") == "Member" and user.get("accountEnabled") and \
                (app_id in tenant.user_apps.get(user_id, {})) is installed:
            yield user_id


def _teams(tenant, installed: bool):
    app_id = _bot_app(tenant).teams_app_id
    for team_id in tenant.teams:
        if (app_id in tenant.team_apps.get(team_id, {})) is installed:
            yield team_id


def test_message_a_user_with_the_bot_installed(sim, bot):
    user_id = next(_users(sim.tenant, installed=True))
    before = len(sim.tenant.bot_messages)
    activity_id = bot.send_to_user(user_id, "Your account will be reviewed tomorrow.")
    assert activity_id
    delivered = sim.tenant.bot_messages[before:]
    assert len(delivered) == 1 and "reviewed tomorrow" in str(delivered[0])
    assert len(bot.tokens) == 1  # one bot token, reported for masking


def test_message_a_user_without_the_bot(sim, bot):
    user_id = next(_users(sim.tenant, installed=False))
    with pytest.raises(BotError) as info:
        bot.send_to_user(user_id, "hello")
    err = info.value
    assert err.status == 403 and err.code in ("ForbiddenOperationException", "BotNotInConversationRoster")
    assert "install" in str(err) and "installedApps" in str(err)


def test_post_to_a_channel(sim, bot):
    team_id = next(_teams(sim.tenant, installed=True))
    channel_id = sim.tenant.channels[team_id][0]["id"]
    before = len(sim.tenant.bot_messages)
    assert bot.send_to_channel(team_id, channel_id, "Maintenance tonight at 22:00.")
    assert "Maintenance tonight" in str(sim.tenant.bot_messages[before:])


def test_post_to_a_channel_of_a_team_without_the_bot(sim, bot):
    team_id = next(_teams(sim.tenant, installed=False))
    channel_id = sim.tenant.channels[team_id][0]["id"]
    with pytest.raises(BotError) as info:
        bot.send_to_channel(team_id, channel_id, "hello")
    assert info.value.code == "BotNotInConversationRoster" and "add the app to the team" in str(info.value)


def test_returned_service_url_on_another_host_is_refused():
    configured = "https://smba.trafficmanager.net/teams/"
    for returned in ("https://smba.evil.example.com/teams/", "http://smba.trafficmanager.net/amer/",
                     "https://smba.trafficmanager.net:8443/amer/"):
        with pytest.raises(UnsafeNextLinkError):
            check_service_url(returned, configured)
    assert check_service_url("https://smba.trafficmanager.net/amer", configured) == "https://smba.trafficmanager.net/amer/"

"""``BotClient``: proactive Teams messages through the Bot Framework connector (graph-facts §8).

Flow for a user: ``POST {serviceUrl}v3/conversations`` with the bot and the user (Entra object id in ``id``,
which Teams accepts for users who have the app installed) -> ``{"id": "a:..."}``, then
``POST {serviceUrl}v3/conversations/{id}/activities`` with a message activity -> ``{"id": "<activity id>"}``.
For a channel: one ``POST v3/conversations`` with ``isGroup``, ``channelData.channel/team`` and the activity.

The bot token comes from ``{bot_authority_host}/{bot tenant}/oauth2/v2.0/token`` (single-tenant bot: the app's own
tenant; ``bot_tenant="botframework.com"`` for a multi-tenant bot) with the cloud's bot scope
(``https://api.botframework.com/.default`` in the global cloud).

Safety: the token is only ever sent to the configured ``bot_service_url`` origin. A ``serviceUrl`` returned by the
connector is followed only when it is https on that same host (allow-list, graph-facts §8.4); otherwise the call is
refused. Retries: 429 / 412 / 502 / 503 / 504 with backoff (Retry-After wins), as Teams' rate-limit guidance says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from teamsops.graph.auth import TokenProvider, bot_token_provider
from teamsops.graph.client import DEFAULT_TIMEOUT, _is_tls_failure, _ssl_verify
from teamsops.graph.errors import BotError, GraphConfigError, UnsafeNextLinkError
from teamsops.graph.retry import RetryPolicy, RetryState, default_jitter, parse_retry_after
from teamsops.graph.settings import GraphSettings

__all__ = ["BOT_ADVICE", "BotClient", "check_service_url"]

log = logging.getLogger(__name__)

BOT_RETRY_STATUSES = frozenset({412, 429, 502, 503, 504})
_INSTALL_HINT = ("install the Teams app that packages the bot (Teams admin center > Manage apps > the app > "
                 "install / set up policies, or Graph POST /users/{id}/teamwork/installedApps with "
                 "TeamsAppInstallation.ReadWriteForUser.All)")
BOT_ADVICE: dict[str, str] = {
    "ForbiddenOperationException": f"the bot is not installed for this user: {_INSTALL_HINT}",
    "BotNotInConversationRoster": (f"the bot is not installed for this user / in this team: {_INSTALL_HINT}; for a "
                                   "channel, add the app to the team (Teams admin center > Teams > the team > Apps, or "
                                   "Graph POST /teams/{id}/installedApps)"),
    "BotDisabledByAdmin": "a Teams administrator disabled this bot for the tenant: ask them to allow the app",
    "ConversationBlockedByUser": "the user blocked the bot: there is nothing to do on the bot's side",
    "BotNotRegistered": "no Bot Framework registration found for this app id: check bot_app_id (Azure Bot resource)",
    "InvalidBotApiHost": "wrong service URL for this tenant: GCC tenants use https://smba.infra.gcc.teams.microsoft.com/",
    "ConversationNotFound": "the conversation no longer exists: create a new one (send_to_user does this each time)",
    "MessageSizeTooBig": "the message is too large: shorten it",
}


class BotClient:
    """Send proactive messages as the bot of a connection.

    :param settings: validated connection settings (``bot_app_id``/``bot_app_secret`` default to the Graph app's).
    :param transport: an httpx transport (default: real HTTPS with ``settings.verify``).
    :param sleep: waiting between retries (injectable).
    :param on_token: called with every new bot token (e.g. Airflow's ``mask_secret``).
    """

    def __init__(
        self,
        settings: GraphSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_token: Callable[[str], None] | None = None,
        max_attempts: int = 5,
        max_retry_wait: float = 120,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        jitter: Callable[[float], float] = default_jitter,
    ) -> None:
        if not settings.bot_service_url:
            raise GraphConfigError(
                f"bot_service_url is missing: the {settings.cloud} cloud has no default Teams service URL, so set "
                "bot_service_url to the serviceUrl of an inbound activity.", "bot_service_url")
        self.settings = settings
        self.service_url = settings.bot_service_url
        self.bot_app_id = settings.effective_bot_app_id
        self._sleep = sleep
        self._retry = RetryPolicy(max_attempts=max_attempts, max_retry_wait=max_retry_wait, jitter=jitter)
        read_timeout = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
        self._tokens: TokenProvider = bot_token_provider(settings, timeout=read_timeout or 60.0, on_token=on_token)
        self._http = httpx.Client(transport=transport, verify=_ssl_verify(settings.verify), timeout=timeout,
                                  headers={"User-Agent": "teamsops-bot/0.1 httpx"}, follow_redirects=False)

    def close(self) -> None:
        """Close the connection pools (Graph/connector and identity platform)."""
        self._http.close()
        self._tokens.close()

    def __enter__(self) -> BotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ public API
    def send_to_user(self, user_object_id: str, text: str, tenant_id: str | None = None) -> str:
        """Create (or reuse) the 1:1 conversation with a user and post ``text``; return the activity id.

        :param user_object_id: the user's Entra object id.
        :raises BotError: e.g. ``ForbiddenOperationException`` when the bot is not installed for the user.
        """
        tenant = tenant_id or self.settings.tenant_id
        created = self._post(self.service_url, "v3/conversations", {
            "bot": {"id": f"28:{self.bot_app_id}"},
            "members": [{"id": user_object_id}],
            "channelData": {"tenant": {"id": tenant}},
            "tenantId": tenant,
            "isGroup": False,
        })
        service_url = self._follow_service_url(created.get("serviceUrl"))
        conversation = str(created["id"])
        sent = self._post(service_url, f"v3/conversations/{quote(conversation, safe='')}/activities",
                          {"type": "message", "text": text}, idempotent=False)
        return str(sent.get("id", ""))

    def send_to_channel(self, team_id: str, channel_id: str, text: str) -> str:
        """Start a new thread in a channel with ``text``; return the activity id.

        :raises BotError: ``BotNotInConversationRoster`` when the bot is not installed in the team.
        """
        tenant = self.settings.tenant_id
        created = self._post(self.service_url, "v3/conversations", {
            "isGroup": True,
            "tenantId": tenant,
            "bot": {"id": f"28:{self.bot_app_id}"},
            "channelData": {"channel": {"id": channel_id}, "team": {"id": team_id}, "tenant": {"id": tenant}},
            "activity": {"type": "message", "text": text},
        }, idempotent=False)
        if created.get("activityId"):
            return str(created["activityId"])
        conversation = str(created.get("id", ""))
        return conversation.rsplit(";messageid=", 1)[-1] if ";messageid=" in conversation else conversation

    # ------------------------------------------------------------------------------------------ transport
    def _follow_service_url(self, returned: str | None) -> str:
        return self.service_url if not returned else check_service_url(returned, self.service_url)

    def _post(self, service_url: str, path: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        url = service_url + path
        state = self._retry.new_state()
        refreshed = False
        fresh: str | None = None
        while True:
            state.attempts += 1
            token, fresh = fresh or self._tokens.token(), None
            try:
                response = self._http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            except httpx.TransportError as err:
                self._connection_failure(err, path, state, idempotent)
                continue
            log.debug("bot POST %s -> %s (X-Correlating-OperationId %s)", path, response.status_code,
                      response.headers.get("X-Correlating-OperationId"))
            if response.is_success:
                return response.json() if response.content else {}
            if response.status_code == 401 and not refreshed:
                refreshed = True
                fresh = self._tokens.refresh(token)
                continue
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if response.status_code in BOT_RETRY_STATUSES:
                delay = state.next_delay(retry_after)
                if delay is not None:
                    log.warning("bot POST %s -> %s; retrying in %.2f s", path, response.status_code, delay)
                    self._sleep(delay)
                    state.waited(delay)
                    continue
            raise _bot_error(response, state)

    def _connection_failure(self, err: httpx.TransportError, path: str, state: RetryState, idempotent: bool) -> None:
        kind = type(err).__name__
        if _is_tls_failure(err):
            raise BotError(message=f"TLS verification failed for {self.service_url} ({kind})",
                           advice="set the connection's verify to the CA bundle that signs this host") from err
        never_sent = isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if not (idempotent or never_sent):
            raise BotError(code="ConnectionError", message=f"POST {path}: the connection failed after the message "
                           f"was sent ({kind}); the outcome is unknown", attempts=state.attempts,
                           advice="check whether the message arrived before sending it again") from err
        delay = state.next_delay(None)
        if delay is None:
            raise BotError(code="ConnectionError", message=f"POST {path}: no response from {self.service_url} "
                           f"({kind})", attempts=state.attempts, total_wait=state.total_wait) from err
        self._sleep(delay)
        state.waited(delay)


def check_service_url(returned: str, configured: str) -> str:
    """Accept a connector-returned ``serviceUrl`` only when it is https on the configured service URL's host.

    :raises UnsafeNextLinkError: the bot token would go to another host; nothing is sent.
    """
    link, base = httpx.URL(returned), httpx.URL(configured)
    if link.scheme != "https" or link.host.lower() != base.host.lower() or (link.port or 443) != (base.port or 443):
        raise UnsafeNextLinkError(
            f"the connector answered with serviceUrl {link.scheme}://{link.host}, which is not the configured "
            f"bot_service_url host {base.host}; refusing to send the bot token there (set bot_service_url if this "
            "host is legitimate)", url=returned)
    return returned if returned.endswith("/") else returned + "/"


def _bot_error(response: httpx.Response, state: RetryState) -> BotError:
    """BotError from a connector ErrorResponse ``{"error": {"code", "message"}}`` (or a bare string body)."""
    code, message = None, ""
    try:
        body = response.json()
    except ValueError:
        body = response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code, message = body["error"].get("code"), str(body["error"].get("message", ""))
    elif isinstance(body, (dict, list)):
        message = str(body)[:300]
    else:
        message = str(body)
    advice = BOT_ADVICE.get(code or "")
    if advice is None and response.status_code == 401:
        advice = ("the connector refused the bot token: check bot_app_id / bot_app_secret, bot_tenant (single- or "
                  "multi-tenant bot) and the cloud")
    return BotError(response.status_code, code, message or response.reason_phrase, attempts=state.attempts,
                    total_wait=state.total_wait, advice=advice,
                    correlation_id=response.headers.get("X-Correlating-OperationId"),
                    headers=dict(response.headers))

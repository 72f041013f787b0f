"""Airflow hook for a Microsoft Teams / Entra ID App Registration (app-only Microsoft Graph access).

The hook owns credentials and construction only (the way Airflow's Slack and HTTP hooks do): it turns an Airflow
Connection of type ``msteams`` into :class:`teamsops.graph.GraphSettings` and hands out one long-lived
:class:`teamsops.graph.GraphClient`. Paging, retries, throttling and errors live in the client.

Connection contract (also settable as ``AIRFLOW_CONN_MSTEAMS_DEFAULT`` JSON)::

    {"conn_type": "msteams", "login": "<application (client) id>", "password": "<client secret value>",
     "extra": {"tenant_id": "...", "access": "read" | "read_write", "cloud": "global" | "usgov" | "usgov-dod" | "china",
               "certificate" | "certificate_path": "...", "thumbprint": "...",       # instead of a secret
               "authority_host": "...", "graph_url": "...", "verify": true | false | "/path/ca.pem",
               "bot_app_id": "...", "bot_app_secret": "...", "bot_service_url": "...", "bot_authority_host": "..."}}
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from teamsops.graph import BotClient, GraphClient, GraphSettings

_EXTRA_PREFIX = "extra__msteams__"
_SETTINGS_KEYS = (
    "tenant_id", "access", "cloud", "certificate", "certificate_path", "thumbprint", "authority_host", "graph_url",
    "verify", "bot_app_id", "bot_app_secret", "bot_tenant", "bot_service_url", "bot_authority_host",
)  # fmt: skip


def connection_to_mapping(conn: Connection) -> dict[str, Any]:
    """Map an Airflow Connection onto the keys :meth:`GraphSettings.from_mapping` takes.

    Extras saved by older forms carry an ``extra__msteams__`` prefix; both spellings are accepted. Empty strings
    (what the UI stores for an untouched field) mean "not set".
    """
    extra = {}
    for key, value in (conn.extra_dejson or {}).items():
        name = key.removeprefix(_EXTRA_PREFIX)
        if name in _SETTINGS_KEYS and value not in ("", None):
            extra[name] = value
    return {"client_id": conn.login, "client_secret": conn.password or None, **extra}


class MSTeamsHook(BaseHook):
    """Microsoft Graph (and Bot Framework) access for one App Registration in one tenant.

    :param msteams_conn_id: the Airflow connection id (type ``msteams``).
    """

    conn_name_attr = "msteams_conn_id"
    default_conn_name = "msteams_default"
    conn_type = "msteams"
    hook_name = "Microsoft Teams (App Registration)"

    def __init__(self, msteams_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        for forbidden in ("client_secret", "password", "certificate", "token"):
            if forbidden in kwargs:
                raise ValueError(
                    f"Passing {forbidden!r} to MSTeamsHook is not allowed: put it in the Airflow connection "
                    f"{msteams_conn_id!r} so it stays out of DAG code, logs and rendered fields."
                )
        super().__init__(**kwargs)
        self.msteams_conn_id = msteams_conn_id

    @cached_property
    def settings(self) -> GraphSettings:
        """The validated settings of the connection (raises ``GraphConfigError`` with the field to fix)."""
        from teamsops.graph import GraphSettings

        conn = self.get_connection(self.msteams_conn_id)
        return GraphSettings.from_mapping(connection_to_mapping(conn))

    @cached_property
    def client(self) -> GraphClient:
        """One long-lived Graph client (msal token cache + httpx connection pool) per hook."""
        from teamsops.graph import GraphClient

        return GraphClient(self.settings, on_token=_mask)

    def get_conn(self) -> GraphClient:
        """Return the Graph client for this connection."""
        return self.client

    def get_bot_client(self) -> BotClient:
        """Return a Bot Framework client for the connection's bot (``bot_app_id``, default: the same app)."""
        from teamsops.graph import BotClient

        return BotClient(self.settings, on_token=_mask)

    def test_connection(self) -> tuple[bool, str]:
        """Acquire a token and name every permission this project needs that the token lacks.

        Used by the UI's "Test" button and by the ``msteams_connection_check`` DAG.
        """
        from teamsops.graph import GraphError, missing_permissions

        try:
            roles = self.client.token_roles()
        except GraphError as err:
            return False, err.summary()
        access = self.settings.access
        missing = missing_permissions(roles, access)
        if missing:
            noun = "permission" if len(missing) == 1 else "permissions"
            return False, (
                f"The app lacks the Microsoft Graph application {noun} {', '.join(missing)} needed with "
                f"access={access!r}: add {'it' if len(missing) == 1 else 'them'} in the Entra admin center > "
                "App registrations > your app > API permissions > Add a permission > Microsoft Graph > "
                "Application permissions, then select 'Grant admin consent'."
            )
        return True, f"Token acquired for tenant {self.settings.tenant_id}; all permissions for access={access!r} granted."

    def close(self) -> None:
        """Close the client's connection pool (if one was opened)."""
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]


def _mask(token: str) -> None:
    """Mask a freshly minted access token in task logs (tokens are created at runtime, so Airflow can't know them)."""
    from airflow.sdk.log import mask_secret

    mask_secret(token)

"""Microsoft Graph client for app-only (client credentials) access: msal tokens + one httpx connection pool.

Airflow-free: the Airflow hook (``plugins/teamsops_airflow/hooks.py``) turns a Connection into
:class:`GraphSettings` and hands out a :class:`GraphClient` / :class:`BotClient`.

Modules: ``settings`` (validated connection values), ``clouds`` (national-cloud presets), ``auth`` (msal),
``retry`` (what is retried and for how long), ``ratelimit`` (client-side pacing at the published limits),
``client`` (GraphClient), ``bot`` (BotClient), ``permissions`` (what the project needs), ``errors`` (typed errors).
"""

from __future__ import annotations

from teamsops.graph.bot import BotClient
from teamsops.graph.client import DeltaResult, DeltaStream, GraphClient, check_link
from teamsops.graph.clouds import CLOUDS, CloudPreset
from teamsops.graph.errors import (
    BotError,
    DeltaResyncRequired,
    GraphAuthError,
    GraphBadRequest,
    GraphConfigError,
    GraphConflict,
    GraphConnectionError,
    GraphError,
    GraphForbidden,
    GraphNotFound,
    GraphServerError,
    GraphThrottled,
    ReadOnlyError,
    UnsafeNextLinkError,
)
from teamsops.graph.permissions import (
    ACTION_PERMISSIONS,
    PERMISSION_PURPOSES,
    SYNC_PERMISSIONS,
    missing_permissions,
    required_permissions,
)
from teamsops.graph.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter
from teamsops.graph.settings import GraphSettings

__all__ = [
    "ACTION_PERMISSIONS",
    "CLOUDS",
    "DEFAULT_LIMITS",
    "PERMISSION_PURPOSES",
    "SYNC_PERMISSIONS",
    "BotClient",
    "BotError",
    "CloudPreset",
    "DeltaResult",
    "DeltaResyncRequired",
    "DeltaStream",
    "GraphAuthError",
    "GraphBadRequest",
    "GraphClient",
    "GraphConfigError",
    "GraphConflict",
    "GraphConnectionError",
    "GraphError",
    "GraphForbidden",
    "GraphNotFound",
    "GraphServerError",
    "GraphSettings",
    "GraphThrottled",
    "Limit",
    "RateLimiter",
    "ReadOnlyError",
    "UnsafeNextLinkError",
    "check_link",
    "missing_permissions",
    "required_permissions",
]

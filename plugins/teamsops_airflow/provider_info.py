"""Provider metadata: registers the ``msteams`` connection type and its form in the Airflow UI.

Airflow 3.3 builds connection forms from provider metadata alone (``conn-fields`` as JSON schema plus
``ui-field-behaviour``); a hook in ``plugins/`` never shows as a connection type without this entry point
(``pyproject.toml`` -> ``[project.entry-points.apache_airflow_provider]``).
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "msteams"

_STRING = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant ID",
        "description": "Directory (tenant) ID from the app registration's Overview page (a GUID or a verified domain).",
        "schema": _STRING,
    },
    "access": {
        "label": "Access",
        "description": "read: sync only, every write is refused. read_write: also lets the action DAGs change the tenant.",
        "schema": {"type": ["string", "null"], "enum": ["read", "read_write", None], "default": "read"},
    },
    "cloud": {
        "label": "Cloud",
        "description": "global, usgov (GCC High / L4), usgov-dod (DoD / L5) or china (21Vianet).",
        "schema": {"type": ["string", "null"], "enum": ["global", "usgov", "usgov-dod", "china", None], "default": "global"},
    },
    "certificate": {
        "label": "Certificate (PEM, instead of a secret)",
        "description": "Private key and certificate in PEM. Use instead of the client secret, with the thumbprint.",
        "schema": _SECRET,
    },
    "certificate_path": {
        "label": "Certificate path (instead of a secret)",
        "description": "Path to a PEM file with the private key and certificate, readable by every Airflow worker.",
        "schema": _STRING,
    },
    "thumbprint": {
        "label": "Certificate thumbprint",
        "description": "SHA-1 thumbprint (hex) shown under Certificates & secrets > Certificates.",
        "schema": _STRING,
    },
    "authority_host": {
        "label": "Authority host (override)",
        "description": "Sign-in endpoint, e.g. https://login.microsoftonline.com. Empty: the cloud's default.",
        "schema": _STRING,
    },
    "graph_url": {
        "label": "Graph URL (override)",
        "description": "Graph endpoint without a version, e.g. https://graph.microsoft.com. Empty: the cloud's default.",
        "schema": _STRING,
    },
    "verify": {
        "label": "TLS verification",
        "description": "true (default), false, or the path of a CA bundle to trust (e.g. a proxy's or the simulator's).",
        "schema": _STRING,
    },
    "bot_app_id": {
        "label": "Bot app ID",
        "description": "Microsoft App ID of the bot used for bot messages. Empty: the same app as above.",
        "schema": _STRING,
    },
    "bot_app_secret": {
        "label": "Bot app secret",
        "description": "Client secret of the bot app. Empty: the same secret as above.",
        "schema": _SECRET,
    },
    "bot_tenant": {
        "label": "Bot tenant",
        "description": "Who issues bot tokens: empty = the tenant above (single-tenant bot); botframework.com for a "
                       "multi-tenant bot registration.",
        "schema": _STRING,
    },
    "bot_service_url": {
        "label": "Bot service URL",
        "description": "Bot Framework service URL, e.g. https://smba.trafficmanager.net/teams/. Empty: the cloud's default.",
        "schema": _STRING,
    },
    "bot_authority_host": {
        "label": "Bot authority host",
        "description": "Sign-in endpoint for bot tokens in clouds other than global. Empty: the cloud's default.",
        "schema": _STRING,
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata Airflow's ProvidersManager reads (schema: airflow/provider_info.schema.json)."""
    return {
        "package-name": "teamsops",
        "name": "Microsoft Teams (App Registration)",
        "description": "Sync and administer Microsoft Teams and Entra ID through an App Registration (Microsoft Graph, app-only).",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "hook-class-name": "teamsops_airflow.hooks.MSTeamsHook",
                "hook-name": "Microsoft Teams (App Registration)",
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Application (client) ID", "password": "Client secret (Value)"},
                    "placeholders": {
                        "login": "00000000-0000-0000-0000-000000000000",
                        "password": "the secret's Value, not its Secret ID",
                        "tenant_id": "contoso.onmicrosoft.com or the tenant GUID",
                    },
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
    }

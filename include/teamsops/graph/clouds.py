"""National-cloud presets: identity authority, Graph endpoint/resource and Bot Framework endpoints per cloud.

Values from Microsoft Graph "National cloud deployments" (microsoft-graph-docs ``concepts/deployments.md``) and the
Bot Framework national-cloud constants (see ``/work/shared/reference/graph-facts.md`` §9 and §8.4).

Two things are deliberately separate:

* ``graph_url`` is *where* requests go (a connection may override it, e.g. with a local simulator or a proxy);
* ``graph_resource`` is *which API the token is for*. The ``.default`` scope is always built from the cloud's resource,
  never from an overridden URL, because tokens are issued for a resource id, not for a host.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLOUDS", "CloudPreset", "get_cloud"]


@dataclass(frozen=True)
class CloudPreset:
    """Endpoints of one Microsoft cloud.

    :param authority_host: identity platform host (``{authority_host}/{tenant}/oauth2/v2.0/token``).
    :param graph_url: Microsoft Graph root, without ``/v1.0``.
    :param graph_resource: Graph resource id; the app-only scope is ``{graph_resource}/.default``.
    :param bot_authority_host: identity host that issues Bot Framework tokens.
    :param bot_framework_tenant: tenant of multi-tenant bot tokens (``botframework.com`` in the public cloud).
    :param bot_scope: scope of Bot Framework (connector) tokens.
    :param bot_service_url: default Teams ``serviceUrl`` for proactive messages (None: take it from an inbound activity).
    """

    name: str
    authority_host: str
    graph_url: str
    graph_resource: str
    bot_authority_host: str
    bot_framework_tenant: str
    bot_scope: str
    bot_service_url: str | None
    description: str

    @property
    def graph_scope(self) -> str:
        """The client-credentials scope for Microsoft Graph in this cloud."""
        return f"{self.graph_resource}/.default"


CLOUDS: dict[str, CloudPreset] = {
    "global": CloudPreset(
        name="global",
        authority_host="https://login.microsoftonline.com",
        graph_url="https://graph.microsoft.com",
        graph_resource="https://graph.microsoft.com",
        bot_authority_host="https://login.microsoftonline.com",
        bot_framework_tenant="botframework.com",
        bot_scope="https://api.botframework.com/.default",
        bot_service_url="https://smba.trafficmanager.net/teams/",
        description="Microsoft Graph global service (also GCC moderate)",
    ),
    "usgov": CloudPreset(
        name="usgov",
        authority_host="https://login.microsoftonline.us",
        graph_url="https://graph.microsoft.us",
        graph_resource="https://graph.microsoft.us",
        bot_authority_host="https://login.microsoftonline.us",
        bot_framework_tenant="MicrosoftServices.onmicrosoft.us",
        bot_scope="https://api.botframework.us/.default",
        bot_service_url="https://smba.infra.gov.teams.microsoft.us/",
        description="US Government L4 (GCC High)",
    ),
    "usgov-dod": CloudPreset(
        name="usgov-dod",
        authority_host="https://login.microsoftonline.us",
        graph_url="https://dod-graph.microsoft.us",
        graph_resource="https://dod-graph.microsoft.us",
        bot_authority_host="https://login.microsoftonline.us",
        bot_framework_tenant="MicrosoftServices.onmicrosoft.us",
        bot_scope="https://api.botframework.us/.default",
        bot_service_url="https://smba.infra.dod.teams.microsoft.us/",
        description="US Government L5 (DoD)",
    ),
    "china": CloudPreset(
        name="china",
        authority_host="https://login.chinacloudapi.cn",
        graph_url="https://microsoftgraph.chinacloudapi.cn",
        graph_resource="https://microsoftgraph.chinacloudapi.cn",
        bot_authority_host="https://login.partner.microsoftonline.cn",
        bot_framework_tenant="microsoftservices.partner.onmschina.cn",
        bot_scope="https://api.botframework.azure.cn/.default",
        # Teams operated by 21Vianet publishes no global serviceUrl: take it from an inbound activity.
        bot_service_url=None,
        description="Microsoft Graph China operated by 21Vianet",
    ),
}


def get_cloud(name: str) -> CloudPreset:
    """Return the preset for ``name`` (KeyError if unknown; settings validation gives the friendly message)."""
    return CLOUDS[name]

"""Fidelity: the Azure provider's own Graph hook (KiotaRequestAdapterHook, conn type ``msgraph``), configured the
documented way, pages through the simulator's users. Airflow's hook was not written by us, so a rejection here means
the simulator (or our connection contract) is off.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit


def test_provider_msgraph_hook_pages_users(sim, monkeypatch):
    from airflow.providers.microsoft.azure.hooks.msgraph import KiotaRequestAdapterHook

    creds = sim.credentials()
    host = urlsplit(sim.base_url)
    conn = {
        "conn_type": "msgraph", "login": creds["app_id"], "password": creds["secret"],
        "host": host.netloc, "schema": "https",
        "extra": {"tenant_id": creds["tenant_id"], "authority": sim.base_url, "verify": sim.ca_path,
                  "disable_instance_discovery": True, "allowed_hosts": host.hostname, "scopes": "https://graph.microsoft.com/.default"},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MSGRAPH_SIM", json.dumps(conn))
    hook = KiotaRequestAdapterHook(conn_id="msgraph_sim")

    pages = asyncio.run(hook.paginated_run(url="users", query_parameters={"$top": 100, "$select": "id,userType"}))

    users = [u for page in pages for u in page["value"]]
    assert len(pages) > 1
    assert len(users) == sim.tenant.user_count()
    assert len({u["id"] for u in users}) == len(users)

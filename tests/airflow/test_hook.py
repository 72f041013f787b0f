"""The msteams hook over the simulator, configured only through AIRFLOW_CONN_* environment connections."""

from __future__ import annotations

import json

import pytest

from teamsops_airflow.hooks import MSTeamsHook


def test_hook_lists_users_through_the_connection_contract(sim, msteams_conn):
    msteams_conn(sim)
    hook = MSTeamsHook()
    try:
        users = list(hook.get_conn().paginate("/users", params={"$select": "id,userPrincipalName", "$top": "50"}))
    finally:
        hook.close()
    assert len(users) == sim.tenant.user_count()
    assert {"id", "userPrincipalName"} <= set(users[0])


def test_named_connection_and_settings(sim, msteams_conn):
    msteams_conn(sim, conn_id="msteams_contoso", access="read")
    hook = MSTeamsHook("msteams_contoso")
    assert hook.settings.tenant_id == sim.credentials()["tenant_id"]
    assert hook.settings.access == "read"
    assert sim.credentials()["secret"] not in repr(hook.settings)


def test_test_connection_ok(sim, msteams_conn):
    msteams_conn(sim)
    ok, message = MSTeamsHook().test_connection()
    assert ok, message
    assert "all permissions" in message


def test_test_connection_names_missing_permissions(fresh_sim, msteams_conn):
    creds = fresh_sim.credentials()
    granted = set(fresh_sim.tenant.apps[creds["app_id"]].roles)
    # TeamMember.ReadWrite.All would imply TeamMember.Read.All, so withdraw both.
    fresh_sim.set_app(creds["app_id"], roles=sorted(granted - {"TeamMember.Read.All", "TeamMember.ReadWrite.All"}))
    msteams_conn(fresh_sim)
    ok, message = MSTeamsHook().test_connection()
    assert not ok
    assert "TeamMember.Read.All" in message and "TeamMember.ReadWrite.All" in message
    assert "Grant admin consent" in message


def test_read_access_only_needs_sync_permissions(fresh_sim, msteams_conn):
    creds = fresh_sim.credentials()
    granted = set(fresh_sim.tenant.apps[creds["app_id"]].roles)
    fresh_sim.set_app(creds["app_id"], roles=sorted(granted - {"User.ReadWrite.All", "User.RevokeSessions.All"}))
    msteams_conn(fresh_sim, access="read")
    ok, message = MSTeamsHook().test_connection()
    assert ok, message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"password": "not-the-secret"}, "7000215"),
        ({"tenant_id": "00000000-0000-0000-0000-00000000dead"}, "90002"),
        ({"login": "11111111-2222-3333-4444-555555555555"}, "700016"),
    ],
)
def test_test_connection_explains_auth_errors(sim, monkeypatch, override, expected):
    conn = sim.connection()
    for key, value in override.items():
        if key in ("login", "password"):
            conn[key] = value
        else:
            conn["extra"][key] = value
    monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_DEFAULT", json.dumps(conn))
    ok, message = MSTeamsHook().test_connection()
    assert not ok
    assert expected in message
    assert "not-the-secret" not in message
    assert sim.credentials()["secret"] not in message


def test_secrets_are_refused_as_arguments():
    with pytest.raises(ValueError, match="Airflow connection"):
        MSTeamsHook(client_secret="x")


def test_minted_tokens_are_masked_in_task_logs(sim, msteams_conn):
    from airflow.sdk._shared.secrets_masker import redact

    msteams_conn(sim)
    hook = MSTeamsHook()
    client = hook.get_conn()
    client.get("/organization")
    token = client._tokens.token()  # the cached token the request above used
    hook.close()
    assert token not in str(redact(f"Authorization: Bearer {token}"))


def test_connection_type_is_registered_with_its_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "msteams" in manager.hooks
    assert manager.hooks["msteams"].hook_name == "Microsoft Teams (App Registration)"
    widgets = manager.connection_form_widgets
    for field in ("tenant_id", "access", "cloud", "certificate", "thumbprint", "authority_host", "graph_url", "verify",
                  "bot_app_id", "bot_app_secret", "bot_tenant", "bot_service_url", "bot_authority_host"):
        assert f"extra__msteams__{field}" in widgets, field
    assert widgets["extra__msteams__bot_app_secret"].is_sensitive
    behaviour = manager.field_behaviours["msteams"]
    assert behaviour["relabeling"]["login"] == "Application (client) ID"


def test_bot_tenant_reaches_the_settings(monkeypatch):
    """A multi-tenant bot registration gets its tokens from botframework.com, set on the connection."""
    import json

    from teamsops_airflow.hooks import MSTeamsHook

    conn = {"conn_type": "msteams", "login": "11111111-2222-3333-4444-555555555555", "password": "secret",
            "extra": {"tenant_id": "contoso.onmicrosoft.com", "bot_tenant": "botframework.com"}}
    monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_BOTS", json.dumps(conn))
    settings = MSTeamsHook("msteams_bots").settings
    assert settings.bot_tenant == "botframework.com"
    assert settings.effective_bot_tenant == settings.preset.bot_framework_tenant != "contoso.onmicrosoft.com"

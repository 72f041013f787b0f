"""GraphSettings validation: every invalid value gives one sentence naming the field and the fix."""

from __future__ import annotations

import pytest

from teamsops.graph import CLOUDS, GraphConfigError, GraphSettings

APP = "11111111-2222-3333-4444-555555555555"
TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~value.not-real"
PEM = "-----BEGIN PRIVATE KEY-----\nMII...\n-----END PRIVATE KEY-----\n"


def base(**changes):
    values = {"client_id": APP, "client_secret": SECRET, "tenant_id": TENANT}
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def test_minimal_secret_settings_use_the_global_cloud():
    settings = GraphSettings.from_mapping(base())
    assert settings.graph_base == "https://graph.microsoft.com/v1.0"
    assert settings.authority == f"https://login.microsoftonline.com/{TENANT}"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.access == "read" and settings.read_only
    assert settings.effective_bot_app_id == APP and settings.effective_bot_tenant == TENANT
    assert settings.bot_service_url == "https://smba.trafficmanager.net/teams/"


def test_repr_and_str_never_show_secrets():
    settings = GraphSettings.from_mapping(base(bot_app_secret="bot-secret-xyz", certificate=None))
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert "bot-secret-xyz" not in repr(settings)


def test_unknown_keys_are_ignored_and_blank_strings_mean_unset():
    settings = GraphSettings.from_mapping(base(something_else="x", cloud="  ", graph_url=""))
    assert settings.cloud == "global" and settings.graph_url == "https://graph.microsoft.com"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"tenant_id": None}, "tenant_id", "tenant_id is missing"),
        ({"tenant_id": "common"}, "tenant_id", "cannot be used for app-only"),
        ({"tenant_id": "not a tenant"}, "tenant_id", "neither a GUID nor a domain"),
        ({"client_id": None}, "client_id", "client_id is missing"),
        ({"client_id": "my-app"}, "client_id", "is not a GUID"),
        ({"client_secret": None}, "client_secret", "no credential"),
        ({"certificate": PEM, "thumbprint": "A" * 40}, "client_secret", "both a client secret"),
        ({"client_secret": None, "certificate": PEM}, "thumbprint", "thumbprint is missing"),
        ({"client_secret": None, "certificate": PEM, "thumbprint": "xyz"}, "thumbprint", "40 hex characters"),
        ({"client_secret": None, "certificate": PEM, "certificate_path": "/x.pem", "thumbprint": "A" * 40},
         "certificate", "keep only one"),
        ({"client_secret": None, "certificate_path": "/nonexistent.pem", "thumbprint": "A" * 40},
         "certificate_path", "does not exist"),
        ({"client_secret": None, "certificate": "not pem", "thumbprint": "A" * 40}, "certificate", "not PEM"),
        ({"cloud": "mars"}, "cloud", "use one of global, usgov, usgov-dod, china"),
        ({"graph_url": "https://graph.microsoft.com/v1.0"}, "graph_url", "remove it"),
        ({"graph_url": "https://graph.microsoft.com/beta/"}, "graph_url", "remove it"),
        ({"graph_url": "http://graph.example.com"}, "graph_url", "https URL"),
        ({"authority_host": "https://login.example.com/tenant"}, "authority_host", "no path"),
        ({"authority_host": "login.microsoftonline.com"}, "authority_host", "https URL"),
        ({"verify": "/no/such/ca.pem"}, "verify", "CA bundle"),
        ({"access": "admin"}, "access", "'read' (sync only) or 'read_write'"),
        ({"bot_service_url": "http://smba.example.com"}, "bot_service_url", "https URL"),
        ({"bot_app_id": "bot"}, "bot_app_id", "is not a GUID"),
    ],
)
def test_invalid_values_name_the_field_and_the_fix(changes, field, fragment):
    with pytest.raises(GraphConfigError) as info:
        GraphSettings.from_mapping(base(**changes))
    assert info.value.field == field
    assert fragment in str(info.value)
    assert SECRET not in str(info.value)
    # one sentence: ends with a period and names the field
    assert field in str(info.value) or field == "client_secret"


def test_thumbprint_is_normalised():
    settings = GraphSettings.from_mapping(
        base(client_secret=None, certificate=PEM, thumbprint="ab:cd " + "0" * 36))
    assert settings.thumbprint == "ABCD" + "0" * 36 and settings.uses_certificate


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("False", False), (True, True), (False, False)])
def test_verify_accepts_booleans_and_their_strings(raw, expected):
    assert GraphSettings.from_mapping(base(verify=raw)).verify is expected


def test_verify_accepts_a_ca_path(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert GraphSettings.from_mapping(base(verify=str(ca))).verify == str(ca)


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_cloud_presets(cloud):
    settings = GraphSettings.from_mapping(base(cloud=cloud.upper() if cloud == "china" else cloud))
    preset = CLOUDS[cloud]
    assert settings.authority_host == preset.authority_host
    assert settings.graph_url == preset.graph_url
    assert settings.graph_scope == preset.graph_resource + "/.default"
    assert settings.bot_service_url == preset.bot_service_url


def test_national_cloud_hosts():
    assert CLOUDS["usgov"].graph_url == "https://graph.microsoft.us"
    assert CLOUDS["usgov"].authority_host == "https://login.microsoftonline.us"
    assert CLOUDS["usgov-dod"].graph_url == "https://dod-graph.microsoft.us"
    assert CLOUDS["china"].authority_host == "https://login.chinacloudapi.cn"
    assert CLOUDS["china"].graph_url == "https://microsoftgraph.chinacloudapi.cn"
    assert CLOUDS["usgov"].bot_scope == "https://api.botframework.us/.default"
    assert CLOUDS["china"].bot_scope == "https://api.botframework.azure.cn/.default"


def test_overridden_graph_url_keeps_the_cloud_resource_as_scope():
    settings = GraphSettings.from_mapping(base(graph_url="https://127.0.0.1:8443/prefix/", cloud="usgov"))
    assert settings.graph_base == "https://127.0.0.1:8443/prefix/v1.0"
    assert settings.graph_scope == "https://graph.microsoft.us/.default"


def test_bot_settings():
    settings = GraphSettings.from_mapping(base(bot_service_url="https://sim.local/teams", bot_tenant="botframework.com",
                                               access="READ_WRITE"))
    assert settings.bot_service_url == "https://sim.local/teams/"
    assert settings.effective_bot_tenant == "botframework.com"
    assert not settings.read_only


def test_settings_are_frozen():
    settings = GraphSettings.from_mapping(base())
    with pytest.raises(AttributeError):
        settings.tenant_id = "x"  # type: ignore[misc]

"""Token acquisition against the simulated identity platform (through msal): every error explains itself,
certificate credentials work, and secrets never appear in messages."""

from __future__ import annotations

import pytest

from teamsops.graph import GraphAuthError, GraphConfigError

WRONG = "definitely-not-the-secret~123"


def _auth_error(client) -> GraphAuthError:
    with pytest.raises(GraphAuthError) as info:
        client.get("/organization")
    return info.value


def test_wrong_secret(sim, make_client):
    err = _auth_error(make_client(sim, settings={"client_secret": WRONG}))
    assert 7000215 in err.aadsts_codes and err.code == "AADSTS7000215" and err.error == "invalid_client"
    assert "Value, not its Secret ID" in str(err)
    assert WRONG not in str(err) and sim.credentials()["secret"] not in str(err)


def test_expired_secret(fresh_sim, make_client):
    fresh_sim.set_app(fresh_sim.credentials()["app_id"], expire_secrets=True)
    err = _auth_error(make_client(fresh_sim))
    assert 7000222 in err.aadsts_codes and "expired" in str(err) and "create a new one" in str(err)


def test_unknown_tenant(sim, make_client):
    err = _auth_error(make_client(sim, settings={"tenant_id": "00000000-0000-0000-0000-00000000dead"}))
    assert 90002 in err.aadsts_codes and "check tenant_id" in str(err)


def test_unknown_app(sim, make_client):
    err = _auth_error(make_client(sim, settings={"client_id": "11111111-2222-3333-4444-555555555555"}))
    assert 700016 in err.aadsts_codes and "client_id" in str(err)


def test_disabled_app(fresh_sim, make_client):
    fresh_sim.set_app(fresh_sim.credentials()["app_id"], enabled=False)
    err = _auth_error(make_client(fresh_sim))
    assert 7000112 in err.aadsts_codes and "disabled" in str(err)


def test_unreachable_authority_names_the_host(sim, make_client):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = _auth_error(make_client(sim, settings={"authority_host": f"https://127.0.0.1:{port}"}))
    assert f"127.0.0.1:{port}" in str(err) and "cannot reach" in str(err)


def test_untrusted_certificate_authority(sim, make_client):
    err = _auth_error(make_client(sim, settings={"verify": "true"}))  # the simulator's CA is not a system CA
    assert "TLS verification failed" in str(err) and "verify" in (err.advice or "")


def _cert_settings(key_pem: str, cert_pem: str, thumbprint: str) -> dict:
    return {"client_secret": None, "certificate": key_pem + cert_pem, "thumbprint": thumbprint}


def test_certificate_credential(fresh_sim, make_client, tmp_path):
    app_id = fresh_sim.credentials()["app_id"]
    key_pem, cert_pem, thumbprint = fresh_sim.add_certificate(app_id)
    client = make_client(fresh_sim, settings=_cert_settings(key_pem, cert_pem, thumbprint))
    assert client.get("/organization")["value"]
    pem_file = tmp_path / "app.pem"
    pem_file.write_text(key_pem + cert_pem)
    by_path = make_client(fresh_sim, settings={"client_secret": None, "certificate_path": str(pem_file),
                                               "thumbprint": thumbprint.lower()})
    assert "User.Read.All" in by_path.token_roles()


def test_unregistered_certificate_is_rejected(fresh_sim, make_client):
    from teamsops.simulator.tls import new_rsa_key, self_signed_certificate
    from cryptography.hazmat.primitives import serialization

    key = new_rsa_key()
    cert = self_signed_certificate(key, "CN=not registered", days=30)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    thumbprint = cert.fingerprint(__import__("cryptography.hazmat.primitives.hashes",
                                             fromlist=["SHA1"]).SHA1()).hex().upper()
    err = _auth_error(make_client(fresh_sim, settings=_cert_settings(key_pem, cert_pem, thumbprint)))
    assert set(err.aadsts_codes) & {700027, 50012} and "certificate" in str(err)
    assert "PRIVATE KEY" not in str(err)


def test_certificate_problems_found_locally(fresh_sim, make_client):
    app_id = fresh_sim.credentials()["app_id"]
    key_pem, cert_pem, thumbprint = fresh_sim.add_certificate(app_id)
    other_key, _, _ = fresh_sim.add_certificate(app_id)
    with pytest.raises(GraphConfigError, match="does not match the certificate"):
        make_client(fresh_sim, settings=_cert_settings(key_pem, cert_pem, "AB" * 20)).get("/organization")
    with pytest.raises(GraphConfigError, match="does not belong to its certificate"):
        make_client(fresh_sim, settings=_cert_settings(other_key, cert_pem, thumbprint)).get("/organization")


def test_token_roles_and_on_token(sim, make_client):
    seen: list[str] = []
    client = make_client(sim, on_token=seen.append)
    roles = client.token_roles()
    assert {"User.Read.All", "TeamMember.Read.All"} <= roles
    client.get("/organization")
    assert len(seen) == 1  # the cached token is not reported again
    assert "Bearer" not in repr(client) and seen[0] not in repr(client)

"""``python -m teamsops.simulator``: ``serve`` as a real subprocess (ready file, health, token, connection file,
SIGTERM => exit 0) and the ``generate`` benchmark."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            raise AssertionError(f"simulator exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("simulator did not become ready in time")


def test_serve_until_sigterm(tmp_path):
    port = _free_port()
    ready, conns = tmp_path / "ready.json", tmp_path / "conns.json"
    cmd = [sys.executable, "-m", "teamsops.simulator", "serve", "--port", str(port), "--users", "60", "--teams", "6",
           "--tenants", "2", "--seed", "5", "--state-dir", str(tmp_path / "state"), "--connection-file", str(conns),
           "--ready-file", str(ready), "--throttle", "documented", "--throttle-scale", "10"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = _wait_for(ready, proc)
        assert info["base_url"] == f"https://127.0.0.1:{port}" and info["pid"] == proc.pid
        assert Path(info["ca_path"]) == (tmp_path / "state" / "ca.pem").resolve()
        ca = ssl.create_default_context(cafile=info["ca_path"])
        assert httpx.get(f"{info['base_url']}/_sim/health", verify=ca).json()["tenants"] == 2

        connections = json.loads(conns.read_text())
        assert list(connections) == ["msteams_default", "msteams_tenant2"]
        assert oct(conns.stat().st_mode & 0o777) == "0o600"
        conn = connections["msteams_tenant2"]
        extra = conn["extra"]
        assert conn["conn_type"] == "msteams" and extra["verify"] == info["ca_path"]
        assert extra["graph_url"] == info["base_url"]
        token = httpx.post(f"{extra['authority_host']}/{extra['tenant_id']}/oauth2/v2.0/token", verify=ca, data={
            "grant_type": "client_credentials", "client_id": conn["login"], "client_secret": conn["password"],
            "scope": "https://graph.microsoft.com/.default"})  # fmt: skip
        assert token.status_code == 200, token.text
        org = httpx.get(f"{extra['graph_url']}/v1.0/organization", verify=ca,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})  # fmt: skip
        assert org.status_code == 200 and org.json()["value"][0]["id"] == extra["tenant_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"listening on https://127.0.0.1:{port}" in out
    assert "documented limits x 10" in out
    assert "simulator stopped" in out


def test_serve_with_a_public_url_for_another_network(tmp_path):
    """On a compose network clients reach the simulator by its service name: the connection file says so, and the
    server certificate names that host (checked by a real TLS handshake with that server name)."""

    port = _free_port()
    ready, conns = tmp_path / "ready.json", tmp_path / "conns.json"
    public = f"https://msteams-simulator:{port}"
    cmd = [sys.executable, "-m", "teamsops.simulator", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--public-url", public + "/", "--users", "20", "--teams", "2", "--state-dir", str(tmp_path / "state"),
           "--connection-file", str(conns), "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = _wait_for(ready, proc)
        assert info["base_url"] == public
        extra = json.loads(conns.read_text())["msteams_default"]["extra"]
        assert extra["graph_url"] == public and extra["authority_host"].startswith(public)
        ca = ssl.create_default_context(cafile=info["ca_path"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ca.wrap_socket(raw, server_hostname="msteams-simulator") as tls:
            assert tls.version()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ca.wrap_socket(raw, server_hostname="some-other-host").close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0

    bad = subprocess.run([*cmd[:cmd.index("--public-url") + 1], "http://nope", "--port", "0"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "must be an https:// URL" in bad.stderr


def test_generate_prints_counts_and_time():
    result = subprocess.run([sys.executable, "-m", "teamsops.simulator", "generate", "--users", "500", "--seed", "3"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["users"] == 500
    assert report["counts"]["groups"] >= 50 and report["seconds"] >= 0

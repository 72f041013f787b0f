"""Azurite (the Azure Storage emulator, npm package ``azurite``) for tests of ``abfs://`` data roots.

Test modules ``import storage_fixtures`` (tests/conftest.py puts ``tests/`` on ``sys.path``) and call
``storage_fixtures.load_into(globals())`` (pytest finds fixtures among a module's globals).

``azurite`` starts the Blob service (``azurite-blob``, which is what adlfs talks to) on a free loopback port with
its workspace in a temporary folder, once per test module, and stops it afterwards. ``azure_root`` installs a
``wasb`` connection from an environment variable (``AIRFLOW_CONN_AZURITE_<PORT>`` with Azurite's well-known
development account in a ``connection_string``), creates a fresh container and returns the
``abfs://<conn_id>@<container>/msteams`` URL. ``make test`` installs Azurite into ``.venv/node``; without it the
fixture skips on a developer machine and fails in CI (``MSTEAMS_REQUIRE_SYSTEM_DEPS=1``), saying how to install it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent

# Azurite's documented development account: public, fixed values (not a secret), accepted only by the emulator.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_START_TIMEOUT = 30.0


@dataclass
class Azurite:
    """A running Azurite Blob service."""

    process: subprocess.Popen
    port: int
    workspace: Path

    @property
    def conn_id(self) -> str:
        """The Airflow connection id for this emulator. Airflow keeps one filesystem per connection id for the life
        of the process, so each emulator (a new port) gets its own id instead of reusing a stale one."""
        return f"azurite_{self.port}"

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")  # fmt: skip

    def connection(self, conn_type: str = "wasb") -> dict:
        """An Airflow ``wasb`` (or ``adls``) connection, the JSON form of ``AIRFLOW_CONN_<ID>``, for this emulator."""
        return {"conn_type": conn_type, "extra": {"connection_string": self.connection_string}}

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        from teamsops_airflow.storage import quiet_azure_logging

        quiet_azure_logging()

        with BlobServiceClient.from_connection_string(self.connection_string) as service:
            service.create_container(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def azurite_binary() -> str | None:
    """``azurite-blob`` on PATH, or where ``make test`` installs it (``.venv/node``)."""
    local = REPO / ".venv" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return shutil.which("azurite-blob") or (str(local) if local.exists() else None)


def start_azurite(workspace: Path, attempts: int = 3) -> Azurite:
    """Start ``azurite-blob`` on a free port (another process may grab the port between the probe and the start,
    so a start that exits early is retried on a new port)."""
    binary = azurite_binary()
    if binary is None:
        message = ("Azurite is not installed: `make test` installs it into .venv/node (needs Node.js and npm), or "
                   "run `npm install -g azurite`")
        if os.environ.get("MSTEAMS_REQUIRE_SYSTEM_DEPS") == "1":  # CI: a missing dependency is a failure
            pytest.fail(message)
        pytest.skip(message)
    for _ in range(attempts):
        port = _free_port()
        log_file = workspace / f"azurite-{port}.log"
        # --disableTelemetry: the emulator must never try to reach the internet; --skipApiVersionCheck: the Python
        # SDK may speak a newer storage API version than this Azurite release knows.
        cmd = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workspace),
               "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"]  # fmt: skip
        with open(log_file, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None and not _listening(port):
            time.sleep(0.1)
        if proc.poll() is None and _listening(port):
            return Azurite(proc, port, workspace)
        output = log_file.read_text(errors="replace")[-2000:]
        Azurite(proc, port, workspace).stop()
        log.warning("Azurite did not start on port %d: %s", port, output)
    pytest.fail(f"Azurite did not start after {attempts} attempts; last output:\n{output}")


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    """A running Azurite Blob service with its workspace in a temporary folder (removed afterwards)."""
    workspace = Path(tempfile.mkdtemp(prefix="teamsops-azurite-"))
    server = start_azurite(workspace)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture
def azure_root(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """``abfs://<conn_id>@<fresh container>/msteams``, with the ``wasb`` connection ``<conn_id>`` set from the env."""
    conn_id = azurite.conn_id
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(azurite.connection()))
    container = f"lake-{uuid.uuid4().hex[:12]}"
    azurite.create_container(container)
    return f"abfs://{conn_id}@{container}/msteams"


def load_into(namespace: dict) -> None:
    """Put this module's fixtures into a test module's globals (``load_into(globals())``)."""
    namespace.update(azurite=azurite, azure_root=azure_root)

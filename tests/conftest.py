"""Shared test set-up: an isolated AIRFLOW_HOME, and a session-wide simulator every test can talk to over HTTPS.

Airflow reads its configuration when first imported, so the environment is set here, before any test module
imports Airflow. Nothing outside the temporary AIRFLOW_HOME is touched.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The test helpers beside this file (airflow_server.py, storage_fixtures.py) import by name. Appended, not prepended:
# tests/ is not a package and its folders (airflow/, sync/...) must never shadow a real package.
sys.path.append(str(REPO / "tests"))
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="teamsops-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.pop("MSTEAMS_TENANTS", None)
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]


@pytest.fixture(autouse=True)
def fresh_secrets_masker() -> None:
    """Start each test with an empty secrets masker, as every Airflow task process does (the supervisor resets it).

    dag.test() runs every task of every test in this one process, where each access token a task masks would stay
    registered and every later log line would be matched against all of them."""
    from airflow.sdk._shared.secrets_masker import reset_secrets_masker

    reset_secrets_masker()


@pytest.fixture(scope="session")
def sim() -> Iterator:
    """A simulator with a small generated tenant, shared by the whole session (tests must not rely on its
    state being pristine: use ``fresh_sim`` for tests that change the tenant)."""
    from teamsops.simulator.generator import TenantSpec
    from teamsops.simulator.testing import run_simulator

    with run_simulator(spec=TenantSpec(users=300, teams=30, seed=7)) as running:
        yield running


@pytest.fixture
def fresh_sim() -> Iterator:
    """A simulator of its own for a test that writes to the tenant or changes the simulator's configuration."""
    from teamsops.simulator.generator import TenantSpec
    from teamsops.simulator.testing import run_simulator

    with run_simulator(spec=TenantSpec(users=120, teams=12, seed=11)) as running:
        yield running


@pytest.fixture
def msteams_conn(monkeypatch: pytest.MonkeyPatch):
    """Install a simulator connection as ``AIRFLOW_CONN_<ID>`` (the documented contract) and return a setter."""

    def install(simulator, conn_id: str = "msteams_default", **extra_overrides) -> dict:
        conn = simulator.connection(**extra_overrides)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return install


def _postgres_bindir() -> Path | None:
    """Debian's PostgreSQL server binaries (package ``postgresql``), wherever this machine has them."""
    import glob
    import shutil

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("pg_ctl")).parent))
    return next((Path(c) for c in candidates if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists()), None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session: ``MSTEAMS_TEST_POSTGRES_URL`` if set, else a throw-away cluster
    started here on a free port (as the ``postgres`` user when running as root, as initdb requires).

    Without the server binaries the tests that need it are skipped on a developer machine, but fail in CI
    (``.ci/run`` sets ``MSTEAMS_REQUIRE_SYSTEM_DEPS=1`` and installs Debian's ``postgresql``).
    """
    import shutil
    import socket
    import subprocess

    if os.environ.get("MSTEAMS_TEST_POSTGRES_URL"):
        yield os.environ["MSTEAMS_TEST_POSTGRES_URL"]
        return
    bindir = _postgres_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found: install Debian's postgresql package (.ci/run does)"
        if os.environ.get("MSTEAMS_REQUIRE_SYSTEM_DEPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    datadir = Path(tempfile.mkdtemp(prefix="teamsops-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, text=True)

    run(str(bindir / "initdb"), "-D", str(datadir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-l", str(datadir / "server.log"), "-w", "start",
        "-o", f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(datadir, ignore_errors=True)

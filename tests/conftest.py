"""Shared test set-up: an isolated AIRFLOW_HOME, and a session-wide simulator every test can talk to over HTTPS.

Airflow reads its configuration when first imported, so the environment is set here, before any test module
imports Airflow. Nothing outside the temporary AIRFLOW_HOME is touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="teamsops-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.pop("MSTEAMS_TENANTS", None)
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]


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

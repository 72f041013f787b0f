"""Run the msteams_connection_check DAG for real (dag.test on a migrated SQLite DB) against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import initdb

    initdb()


def _load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "msteams_connection_check.py"))
    return bag.dags["msteams_connection_check"]


def test_healthy_connection_succeeds(sim, msteams_conn, airflow_db):
    msteams_conn(sim)
    run = _load_dag().test()
    assert run.state == "success"


def test_wrong_secret_fails_the_run(sim, monkeypatch, airflow_db):
    conn = sim.connection()
    conn["password"] = "wrong-secret-value"
    monkeypatch.setenv("AIRFLOW_CONN_MSTEAMS_DEFAULT", json.dumps(conn))
    run = _load_dag().test()
    assert run.state == "failed"

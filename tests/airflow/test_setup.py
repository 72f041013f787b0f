"""``python -m teamsops_airflow.setup``: the msteams_graph pool is created, updated and left alone as it should be,
in a real (migrated, temporary) Airflow metadata DB."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import initdb

    initdb()


def _pool() -> tuple[int, str] | None:
    from airflow.api.client import get_current_api_client
    from airflow.exceptions import PoolNotFound

    try:
        _, slots, description, _, _ = get_current_api_client().get_pool(name="msteams_graph")
    except PoolNotFound:
        return None
    return slots, description


def _drop_pool() -> None:
    from airflow.api.client import get_current_api_client
    from airflow.exceptions import PoolNotFound

    try:
        get_current_api_client().delete_pool(name="msteams_graph")
    except PoolNotFound:
        pass


def test_creates_then_keeps_then_updates_the_pool(airflow_db, monkeypatch):
    from teamsops_airflow.setup import ensure_pool

    _drop_pool()
    monkeypatch.delenv("MSTEAMS_GRAPH_POOL_SLOTS", raising=False)
    # 4 shards for each of the 3 fan-out tables, so installed apps, members and channels run side by side
    assert ensure_pool() == ("created", 12)
    slots, description = _pool()
    assert slots == 12 and "MSTEAMS_GRAPH_POOL_SLOTS" in description
    assert ensure_pool() == ("unchanged", 12)

    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", "6")
    assert ensure_pool() == ("updated", 18)
    assert _pool()[0] == 18


@pytest.mark.parametrize("value", ["0", "four", "-2", "2.5"])
def test_invalid_slot_setting_names_the_variable(airflow_db, monkeypatch, value):
    from teamsops_airflow.setup import ensure_pool
    from teamsops_airflow.sync_tasks import SyncSettingsError

    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", value)
    with pytest.raises(SyncSettingsError, match=rf"MSTEAMS_GRAPH_POOL_SLOTS='{value}' is invalid: expected an integer"):
        ensure_pool()


def _run_setup(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "teamsops_airflow.setup", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.slow
def test_module_entry_point_sets_the_pool(airflow_db):
    _drop_pool()
    done = _run_setup("--shards", "3", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "Pool msteams_graph: created (9 slots)." in done.stdout
    assert _pool()[0] == 9


@pytest.mark.slow
def test_entry_point_on_an_unmigrated_database_says_what_to_run():
    home = tempfile.mkdtemp(prefix="teamsops-airflow-empty-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    done = _run_setup(env=env)
    assert done.returncode == 1
    assert "run `airflow db migrate` first" in done.stderr

"""Integrity checks over every DAG in dags/: imports, no work at parse time, and the project's DAG policies."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from unittest import mock

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@functools.cache
def _parse():
    """Parse dags/ once, counting connection look-ups and network connections made while parsing."""
    import socket

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook

    real_connect = socket.socket.connect
    attempts: list = []

    def guarded_connect(self, address):
        attempts.append(address)
        return real_connect(self, address)

    env = {"MSTEAMS_TENANTS": "msteams_contoso, msteams_fabrikam"}
    with mock.patch.dict(os.environ, env), mock.patch.object(BaseHook, "get_connection") as get_connection, \
            mock.patch.object(socket.socket, "connect", guarded_connect):
        bag = DagBag(dag_folder=str(DAGS_DIR))
    return bag, get_connection.call_count, attempts


def test_no_import_errors():
    bag, _, _ = _parse()
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, "no DAGs were found in dags/"


def test_parsing_resolves_no_connection_and_opens_no_socket():
    _, connection_lookups, sockets = _parse()
    assert connection_lookups == 0, "a DAG resolves a connection at parse time; do it inside a task"
    assert sockets == [], f"a DAG opens network connections at parse time: {sockets}"


@pytest.mark.parametrize(("dag_id", "dag"), sorted(_parse()[0].dags.items()), ids=lambda v: v if isinstance(v, str) else "")
def test_dag_policies(dag_id, dag):
    from teamsops_airflow.dag_defaults import OWNER, Tag

    assert dag.tags, f"{dag_id} has no tags"
    assert set(dag.tags) <= {t.value for t in Tag}, f"{dag_id} uses tags outside the vocabulary: {dag.tags}"
    assert Tag.MSTEAMS.value in dag.tags
    assert dag.catchup is False, f"{dag_id} must not catch up"
    assert dag.doc_md, f"{dag_id} has no documentation"
    assert dag.max_active_runs == 1 or dag.schedule is None
    for task in dag.tasks:
        assert task.owner == OWNER, f"{dag_id}.{task.task_id} owner is {task.owner!r}"
        assert task.retry_policy is not None or task.retries == 0, f"{dag_id}.{task.task_id} has no retry policy"
    assert (dag.default_args or {}).get("retries", 0) >= 2, f"{dag_id} must default to at least 2 retries"

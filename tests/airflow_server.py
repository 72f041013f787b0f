"""Airflow for tests: a real deployment (API server, scheduler, DAG processor as subprocesses), and a helper that
answers Human-in-the-loop requests of ``dag.test()`` runs the way the REST API does.

.. code-block:: python

    server_mod = load_airflow_server()          # tests/ is not a package: load this file by path (see below)
    with server_mod.run_airflow(connections={"msteams_default": sim.connection()}) as airflow:
        airflow.wait_for_dag("msteams_disable_user")          # parsed, then unpaused (DAGs start paused)
        run_id = airflow.trigger("msteams_disable_user", {"user": "...", "reason": "...", "ticket": "T-1"}, "itops")
        request = airflow.wait_for_approval("msteams_disable_user", run_id)   # parked, plus a person's pause
        airflow.answer("msteams_disable_user", run_id, "approve", approve=True, as_user="itops2")
        assert airflow.wait_for_state("msteams_disable_user", run_id) == "success"

Answers given within seconds of a request can be lost by Airflow 3.3.2 and asked again (see teamsops_airflow.hitl):
``answer_until_finished`` keeps answering until the run ends; ``wait_for_approval`` pauses like a person would.

The deployment itself is :mod:`teamsops_airflow.local_airflow` (``make demo`` starts the same one): a temporary
``AIRFLOW_HOME`` with a SQLite metadata DB and the LocalExecutor, the repo's ``dags/`` and ``plugins/``, users from
``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` (default ``admin:admin,itops:op,itops2:op,auditor:viewer``) and their
generated passwords, connections as ``AIRFLOW_CONN_<ID>`` environment variables, each component in its own process
group. This module adds what only tests want: when the ``with`` block raises, the components' logs and the task
logs are written to stderr (pytest shows them with the failure; fixtures that outlive a test call
:meth:`AirflowServer.dump_logs` themselves), and ``TEAMSOPS_KEEP_AIRFLOW_HOME=1`` keeps the home (DB, component and
task logs) for a post-mortem.

:class:`InProcessResponder` answers the requests of ``dag.test()`` runs from a thread, through the function the
REST API's ``PATCH .../hitlDetails`` runs, and can let a request time out through the scheduler's own sweep.

Test modules import it by name (``import airflow_server``): tests/conftest.py puts ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from teamsops_airflow import local_airflow
from teamsops_airflow.local_airflow import (  # noqa: F401 - re-exported for the test modules
    DEFAULT_USERS,
    TERMINAL_RUN_STATES,
    TERMINAL_TASK_STATES,
    AirflowServerError,
    Component,
    airflow_env,
    free_port,
)

log = logging.getLogger(__name__)


class AirflowServer(local_airflow.AirflowServer):
    """The local deployment, plus a log dump for failing tests."""

    def dump_logs(self) -> None:
        """Write :meth:`logs` to stderr (pytest shows it with the failing test)."""
        sys.stderr.write(self.logs() + "\n")


@contextmanager
def run_airflow(*, connections: Mapping[str, Mapping[str, Any]] | None = None, users: str = DEFAULT_USERS,
                dags_folder: Path | None = None, extra_env: Mapping[str, str] | None = None,
                keep_home: bool | None = None, setup: Iterable[list[str]] = ()) -> Iterator[AirflowServer]:
    """Start a deployment on a temporary AIRFLOW_HOME and a free port; stop every component on exit.

    :param connections: ``{conn_id: connection dict}`` installed as ``AIRFLOW_CONN_<ID>`` in every component.
    :param extra_env: more environment (e.g. ``MSTEAMS_APPROVERS``) for every component.
    :param keep_home: leave the AIRFLOW_HOME (DB, logs) on disk for inspection (default: when the environment
        variable ``TEAMSOPS_KEEP_AIRFLOW_HOME`` is set).
    :param setup: commands run after ``airflow db migrate`` (e.g. ``[["-m", "teamsops_airflow.setup"]]`` creates
        the ``msteams_graph`` pool the sync DAGs need).
    """
    if keep_home is None:
        keep_home = bool(os.environ.get("TEAMSOPS_KEEP_AIRFLOW_HOME"))
    with local_airflow.run_airflow(connections=connections, users=users, dags_folder=dags_folder,
                                   extra_env=extra_env, keep_home=keep_home, setup=setup, server_cls=AirflowServer,
                                   on_error=AirflowServer.dump_logs) as server:  # fmt: skip
        yield server


# ---------------------------------------------------------------------------------------------- dag.test() approvals
class InProcessResponder:
    """Answers Human-in-the-loop requests of ``dag.test()`` runs from a helper thread, through the function the
    REST API's ``PATCH .../hitlDetails`` handler runs (``update_hitl_detail`` of Airflow's core API), on the same
    metadata DB. Assigned-user checks apply as in the API (a refused answer is recorded in :attr:`refusals`).

    ``answers`` is a list of ``(approve, as_user)`` consumed one per request, in order (a request asked again after
    a lost answer takes the next entry); ``None`` lets the request time out: once its deadline has passed, the
    scheduler's own timeout sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``) resolves it, which
    ``dag.test()`` never runs by itself. ``delay`` waits that long after the request appears.

    .. code-block:: python

        with InProcessResponder("msteams_disable_user", [(True, "itops2")]) as responder:
            run = dag.test(run_conf=conf)
        assert responder.answered == [("approve", "Approve", "itops2")]
    """

    def __init__(self, dag_id: str, answers: Iterable[tuple[bool, str] | None], *, delay: float = 0.0,
                 role: str = "op", poll: float = 0.1) -> None:
        import threading

        self.dag_id = dag_id
        self.pending_answers = list(answers)
        self.delay = delay
        self.role = role
        self.poll = poll
        self.answered: list[tuple[str, str, str]] = []
        self.refusals: list[tuple[str, int, str]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"hitl-responder-{dag_id}", daemon=True)

    def __enter__(self) -> InProcessResponder:
        from airflow.api_fastapi.app import create_auth_manager

        create_auth_manager()  # the handler asks the auth manager whether the user is an assigned respondent
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._resume_overwritten()
                if not self.pending_answers:
                    self._stop.wait(self.poll)
                    continue
                request = self._find_request()
                log.debug("responder for %s: pending request %s", self.dag_id, request)
                if request is not None and self.pending_answers[0] is None:
                    if self._sweep_timeouts():
                        self.pending_answers.pop(0)
                        self.answered.append((request[1], "timed out", "nobody"))
                elif request is not None:
                    self._stop.wait(self.delay)
                    self._answer(*request)
            except Exception as err:  # surfaced by the test through .errors
                log.exception("responder failed")
                self.errors.append(err)
                return
            self._stop.wait(self.poll)

    def _resume_overwritten(self) -> None:
        """Resume parked tasks whose request already has an answer.

        ``dag.test()`` sets a task's state from the worker's view right after the worker returns; an answer that
        resumed the task in between (SCHEDULED) is overwritten back to ``awaiting_input`` and the run would wait
        forever. This does what the scheduler's timeout sweep does for an answer that is in but not resumed:
        ``handle_event_submit`` with the recorded answer. A real deployment does not need it (tests/e2e).
        """
        from sqlalchemy import select

        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            stuck = session.scalars(
                select(TaskInstance)
                .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.dag_id == self.dag_id, HITLDetail.responded_at.is_not(None),
                       TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            ).all()
            for ti in stuck:
                detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                log.info("responder for %s: resuming %s, whose answer dag.test() overwrote", self.dag_id, ti.task_id)
                handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)

    def _find_request(self) -> tuple[str, str, int] | None:
        """A request without an answer whose task has parked (only parked tasks are answered, as a person would;
        tests/e2e covers answers that come before the park)."""
        from sqlalchemy import select

        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            row = session.execute(
                select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index)
                .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                .where(TaskInstance.dag_id == self.dag_id, HITLDetail.responded_at.is_(None),
                       TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            ).first()
        return None if row is None else (row[0], row[1], row[2])

    def _sweep_timeouts(self) -> bool:
        """Run the scheduler's timeout sweep once; True when it resolved a request of this DAG."""
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()
        return self._find_request() is None

    def _answer(self, run_id: str, task_id: str, map_index: int) -> None:
        from fastapi import HTTPException

        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.utils.session import create_session

        approve, user = self.pending_answers.pop(0)
        option = "Approve" if approve else "Reject"
        payload = UpdateHITLDetailPayload(chosen_options=[option], params_input={})
        try:
            with create_session() as session:
                update_hitl_detail(dag_id=self.dag_id, dag_run_id=run_id, task_id=task_id,
                                   update_hitl_detail_payload=payload,
                                   user=SimpleAuthManagerUser(username=user, role=self.role), session=session,
                                   map_index=map_index)
        except HTTPException as err:
            self.refusals.append((user, err.status_code, str(err.detail)))
            return
        self.answered.append((task_id, option, user))
        log.info("responder for %s: %s answered %s on %s/%s", self.dag_id, user, option, run_id, task_id)

"""A local Airflow deployment started from this repository: ``airflow db migrate``, then the API server, the
scheduler and the DAG processor (and the triggerer, only when asked) as subprocesses, with the REST calls needed to
drive it (trigger a run, wait for it, answer an approval) as a named user.

Used by ``make demo`` (``scripts/demo.py``: a persistent home under ``.demo/airflow`` on port 8080) and by the
end-to-end tests (``tests/airflow_server.py``: a temporary home on a free port). Not used by a production
deployment, which runs the same components from docker-compose or the Helm chart.

.. code-block:: python

    from teamsops_airflow.local_airflow import run_airflow

    with run_airflow(connections={"msteams_default": conn}, home=Path(".demo/airflow"), port=8080,
                     setup=[["-m", "teamsops_airflow.setup"]]) as airflow:
        airflow.wait_for_dag("msteams_sync", as_user="itops")      # parsed, then unpaused (DAGs start paused)
        run_id = airflow.trigger("msteams_sync", {}, as_user="itops")
        assert airflow.wait_for_state("msteams_sync", run_id, timeout=600) == "success"

The metadata DB is SQLite (WAL, 30 s lock timeout) and the executor the LocalExecutor, as ``airflow standalone``
runs, with the repo's ``dags/`` as DAGS_FOLDER and ``plugins/`` as PLUGINS_FOLDER. Users come from
``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS`` (default ``admin:admin,itops:op,itops2:op,auditor:viewer``) and their
passwords from ``<home>/passwords.json``, which the API server generates on its first start and reuses afterwards.
Connections are passed as ``AIRFLOW_CONN_<ID>`` environment variables, so tasks resolve them like any deployment
does. Parallelism is kept low (4, one scheduler, one parsing process) so it fits a 2-core machine.

No triggerer by default: nothing in our DAGs defers (approvals park in ``awaiting_input``, which the API server
resumes without one); ``triggerer=True`` starts it for DAGs that do.

Every component is started in a new session (its own process group, whose id is the PID we started), so stopping
it signals exactly the processes it spawned (LocalExecutor workers, API server workers) and nothing else; SIGTERM
to ``airflow standalone`` would leave children behind, hence separate components.

Airflow imports every module of the plugins folder in each of its processes: this one imports only the standard
library at module level (httpx when a REST call is made).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# plugins/teamsops_airflow/local_airflow.py -> the repository (the project is installed editable: `make venv`).
REPO = Path(__file__).resolve().parents[2]
DEFAULT_USERS = "admin:admin,itops:op,itops2:op,auditor:viewer"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
_COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
}
_TRIGGERER = {"triggerer": ["triggerer"]}
_START_TIMEOUT = 120.0
_STOP_TIMEOUT = 15.0


class AirflowServerError(RuntimeError):
    """The deployment did not start, or a call to its REST API failed (the message carries the response)."""


def free_port() -> int:
    """A free loopback TCP port (another process may take it before use; good enough on one machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_env(home: Path, port: int, *, users: str = DEFAULT_USERS, dags_folder: Path | None = None,
                connections: Mapping[str, Mapping[str, Any]] | None = None,
                extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every component: this process's environment without its Airflow settings and
    connections (the caller passes its own), plus the deployment's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    base_url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # SQLite, as `airflow standalone` uses; a writer waits up to 30 s for the lock (the default 5 s is not
        # enough when the API server, the scheduler and task processes write at once on a 2-core machine).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=30",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
        # all_admins would record every answer as "Anonymous": never for approvals (STYLE.md Part 6).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        # One secret for every component: the scheduler signs task tokens the API server must accept.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # The scheduler's log server (task logs of running tasks for the UI) on a port of its own, not the fixed
        # default 8793, which another deployment on the machine may hold.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    })
    for conn_id, conn in (connections or {}).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    env.update(extra_env or {})
    return env


@dataclass
class Component:
    """One started Airflow component: its process (leader of its own process group) and log file."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the component's process group (its id is the PID we started, see ``start_new_session``)."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class AirflowServer:
    """A running deployment and the REST calls the demo and the tests need (each as a named user of the configured
    users, with a JWT from ``POST /auth/token``)."""

    home: Path
    port: int
    env: dict[str, str]
    triggerer: bool = False
    components: list[Component] = field(default_factory=list)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _http: httpx.Client | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------------------- basics
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            # Longer than the SQLite lock timeout (30 s), so a locked request comes back as a 500, not a timeout.
            self._http = httpx.Client(base_url=self.base_url, timeout=90.0)
        return self._http

    def passwords(self) -> dict[str, str]:
        """The generated passwords (``{username: password}``) the API server wrote at start-up."""
        return json.loads((self.home / "passwords.json").read_text())

    def token(self, user: str) -> str:
        """A JWT for ``user`` from ``POST /auth/token`` (cached per user)."""
        if user not in self._tokens:
            password = self.passwords().get(user)
            if password is None:
                raise AirflowServerError(f"user {user!r} is not configured (SIMPLE_AUTH_MANAGER_USERS)")
            resp = self.http.post("/auth/token", json={"username": user, "password": password})
            if resp.status_code not in (200, 201):
                raise AirflowServerError(f"token for {user!r} refused: {resp.status_code} {resp.text[:300]}")
            self._tokens[user] = resp.json()["access_token"]
        return self._tokens[user]

    def request(self, method: str, path: str, as_user: str, **kwargs: Any) -> httpx.Response:
        """A raw REST call (``path`` under ``/api/v2``) as ``as_user``; the caller checks the status.

        A 500 "Database error" is retried (twice): on SQLite, concurrent writers in the API server can time out on
        the database lock, and the failed request's transaction was rolled back, so sending it again is safe."""
        headers = {"Authorization": f"Bearer {self.token(as_user)}", **kwargs.pop("headers", {})}
        for attempt in range(3):
            resp = self.http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
            if resp.status_code != 500 or "Database error" not in resp.text or attempt == 2:
                return resp
            log.warning("%s %s: the API server's database was locked (500); sending it again", method, path)
            time.sleep(1.0)
        return resp

    def _json(self, method: str, path: str, as_user: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, as_user, **kwargs)
        if resp.status_code >= 400:
            raise AirflowServerError(f"{method} {path} as {as_user}: {resp.status_code} {resp.text[:500]}")
        return resp.json()

    # ------------------------------------------------------------------------------------------- DAGs and runs
    def wait_for_dag(self, dag_id: str, timeout: float = 90.0, as_user: str = "admin", unpause: bool = True) -> dict:
        """Wait until the DAG processor has serialized ``dag_id`` (a new deployment parses dags/ first), then
        unpause it. DAGs start paused, so scheduled DAGs the test does not use stay quiet."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.request("GET", f"/dags/{dag_id}/details", as_user)
            if resp.status_code == 200:
                if unpause and resp.json().get("is_paused"):
                    return self._json("PATCH", f"/dags/{dag_id}", as_user, json={"is_paused": False})
                return resp.json()
            self._check_alive()
            if time.monotonic() > deadline:
                raise AirflowServerError(f"DAG {dag_id} not parsed after {timeout:.0f}s: {resp.status_code} "
                                         f"{resp.text[:300]}; import errors: {self.import_errors()}")
            time.sleep(0.5)

    def import_errors(self) -> list[dict]:
        return self._json("GET", "/importErrors", "admin").get("import_errors", [])

    def trigger(self, dag_id: str, conf: Mapping[str, Any], as_user: str) -> str:
        """Trigger a run with ``conf`` as ``as_user``; return its run id (raises with the API's answer if refused)."""
        body = self._json("POST", f"/dags/{dag_id}/dagRuns", as_user, json={"logical_date": None, "conf": dict(conf)})
        return str(body["dag_run_id"])

    def run(self, dag_id: str, run_id: str, as_user: str = "admin") -> dict:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}", as_user)

    def task_states(self, dag_id: str, run_id: str, as_user: str = "admin") -> dict[str, str | None]:
        """``{task_id: state}`` of a run (mapped tasks: the state of the last map index listed)."""
        body = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", as_user, params={"limit": 100})
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str, as_user: str = "admin") -> dict:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", as_user)

    def wait_for_state(self, dag_id: str, run_id: str, states: Iterable[str] = TERMINAL_RUN_STATES,
                       timeout: float = 60.0, poll: float = 0.25,
                       while_waiting: Callable[[], None] | None = None) -> str:
        """Wait until the run is in one of ``states``; return that state. ``while_waiting`` runs each poll."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in wanted:
                return state
            if while_waiting is not None:
                while_waiting()
            self._check_alive()
            if time.monotonic() > deadline:
                raise AirflowServerError(f"run {dag_id}/{run_id} is {state!r}, not in {sorted(wanted)} after "
                                         f"{timeout:.0f}s; tasks: {self.task_states(dag_id, run_id)}")
            time.sleep(poll)

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, states: Iterable[str],
                            timeout: float = 60.0, poll: float = 0.1) -> str:
        """Wait until ``task_id`` of the run is in one of ``states`` (e.g. ``{"awaiting_input"}``)."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in wanted:
                return str(state)
            self._check_alive()
            if time.monotonic() > deadline:
                raise AirflowServerError(f"task {task_id} of {dag_id}/{run_id} is {state!r}, not in "
                                         f"{sorted(wanted)} after {timeout:.0f}s; tasks: "
                                         f"{self.task_states(dag_id, run_id)}")
            time.sleep(poll)

    # ------------------------------------------------------------------------------------------- approvals
    def pending_approvals(self, dag_id: str = "~", run_id: str = "~", as_user: str = "admin") -> list[dict]:
        """Human-in-the-loop requests without a response (``hitlDetails?response_received=false``)."""
        body = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/hitlDetails", as_user,
                          params={"response_received": "false", "limit": 100})
        return list(body["hitl_details"])

    def wait_for_approval(self, dag_id: str, run_id: str, task_id: str = "approve", *, settle: float = 5.0,
                          timeout: float = 60.0) -> dict:
        """Wait until the task is parked awaiting input, then ``settle`` seconds more, and return its request.

        The pause is what a person takes anyway; tests that answer sooner must expect the request to be asked
        again (Airflow 3.3.2 loses answers given within a few seconds of the park, see teamsops_airflow.hitl)."""
        self.wait_for_task_state(dag_id, run_id, task_id, {"awaiting_input"}, timeout=timeout)
        time.sleep(settle)
        pending = [r for r in self.pending_approvals(dag_id, run_id) if r["task_instance"]["task_id"] == task_id]
        if not pending:
            raise AirflowServerError(f"{dag_id}/{run_id}: {task_id} is parked but has no pending request")
        return pending[0]

    def answer_until_finished(self, dag_id: str, run_id: str, task_id: str = "approve", *, approve: bool = True,
                              as_user: str, settle: float = 5.0, timeout: float = 90.0) -> tuple[str, int]:
        """Answer every pending request of the run (one asked again included), each once it has been pending for
        ``settle`` seconds, until the run finishes; return ``(run state, answers given)``."""
        answers = 0
        first_seen: dict[int, float] = {}  # try number -> when its request was first seen

        def answer_pending() -> None:
            nonlocal answers
            for request in self.pending_approvals(dag_id, run_id):
                if request["task_instance"]["task_id"] != task_id:
                    continue
                seen = first_seen.setdefault(request["task_instance"]["try_number"], time.monotonic())
                if time.monotonic() - seen < settle:
                    continue
                status = self.answer(dag_id, run_id, task_id, approve, as_user).status_code
                if status not in (200, 409):  # 409: answered meanwhile
                    raise AirflowServerError(f"{as_user} could not answer {dag_id}/{run_id}: {status}")
                answers += status == 200

        state = self.wait_for_state(dag_id, run_id, timeout=timeout, while_waiting=answer_pending)
        return state, answers

    def answer(self, dag_id: str, run_id: str, task_id: str, approve: bool, as_user: str,
               map_index: int = -1) -> httpx.Response:
        """``PATCH .../hitlDetails`` choosing Approve or Reject as ``as_user``; the caller checks the status
        (200 answered, 403 not allowed to answer, 409 already answered)."""
        payload = {"chosen_options": ["Approve" if approve else "Reject"], "params_input": {}}
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return self.request("PATCH", path, as_user, json=payload)

    # ------------------------------------------------------------------------------------------- processes
    def start(self, setup: Iterable[Sequence[str]] = ()) -> AirflowServer:
        """Migrate the DB, run each ``setup`` command (arguments of this Python, e.g.
        ``["-m", "teamsops_airflow.setup"]``, with the deployment's environment), start the components and wait
        until the API answers and the scheduler and DAG processor heartbeat."""
        self._check_port_free()
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.run_python("-m", "airflow", "db", "migrate", what="airflow db migrate")
        # Write-ahead logging is a property of the database file: readers then never block the writer.
        with sqlite3.connect(self.home / "airflow.db") as db:
            db.execute("PRAGMA journal_mode=WAL")
        for args in setup:
            self.run_python(*args)
        components = {**_COMPONENTS, **(_TRIGGERER if self.triggerer else {})}
        for name, args in components.items():
            self._spawn(name, [a.format(port=self.port) for a in args])
        self._wait_until_healthy()
        return self

    def run_python(self, *args: str, what: str | None = None, timeout: float = 180.0) -> str:
        """Run ``python *args`` (this interpreter) with the deployment's environment; return its output.

        :raises AirflowServerError: it failed (the message carries the end of its output).
        """
        done = subprocess.run([sys.executable, *args], env=self.env, cwd=self.home, text=True, capture_output=True,
                              timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise AirflowServerError(f"{what or ' '.join(args)} failed with exit code {done.returncode}:\n"
                                     f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the API server binds: a port in TIME_WAIT after an earlier run counts as free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError as err:
                raise AirflowServerError(f"Port {self.port} on 127.0.0.1 is taken ({err.strerror}): stop what "
                                         "listens there (an earlier demo?) or choose another port.") from None

    def pids(self) -> dict[str, int]:
        """``{component: pid}`` of the started components (each the leader of its own process group)."""
        return {c.name: c.process.pid for c in self.components}

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.home / "logs" / f"{name}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=self.env, cwd=self.home,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.components.append(Component(name, proc, log_path))
        log.info("started airflow %s (pid %d)", name, proc.pid)

    def _wait_until_healthy(self) -> None:
        import httpx

        deadline = time.monotonic() + _START_TIMEOUT
        status: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                resp = self.http.get("/api/v2/monitor/health")
                status = resp.json() if resp.status_code == 200 else resp.status_code
            except httpx.TransportError as err:
                status = repr(err)
            parts = ("metadatabase", "scheduler", "dag_processor") + (("triggerer",) if self.triggerer else ())
            if isinstance(status, dict) and all((status.get(p) or {}).get("status") == "healthy" for p in parts):
                return
            time.sleep(0.5)
        raise AirflowServerError(f"Airflow not healthy after {_START_TIMEOUT:.0f}s: {status}")

    def _check_alive(self) -> None:
        dead = [c for c in self.components if not c.alive()]
        if dead:
            raise AirflowServerError(", ".join(f"airflow {c.name} exited with {c.process.returncode}" for c in dead)
                                     + "; see its log:\n" + _tail(dead[0].log_path, 4000))

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after a grace period."""
        if self._http is not None:
            self._http.close()
            self._http = None
        for component in reversed(self.components):
            component.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        for component in self.components:
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("airflow %s did not stop on SIGTERM; killing it", component.name)
        for component in self.components:
            while component.group_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if component.group_alive():
                component.signal_group(signal.SIGKILL)
            if component.process.poll() is None:
                component.process.wait(timeout=5)
        # Killed children are reaped by init a moment later; wait for that before anyone counts strays.
        reaped = time.monotonic() + 5
        while self.stray_processes() and time.monotonic() < reaped:
            time.sleep(0.1)

    def stray_processes(self) -> list[int]:
        """Process groups of ours that still have members (should be empty after :meth:`stop`)."""
        return [c.process.pid for c in self.components if c.group_alive()]

    def logs(self, limit: int = 20000) -> str:
        """The tail of every component's log and of every task log, for a failure report."""
        parts = [f"===== airflow {c.name} (pid {c.process.pid}) =====\n{_tail(c.log_path, limit)}"
                 for c in self.components]
        task_logs = sorted((self.home / "logs").glob("dag_id=*/**/*.log"))
        parts += [f"===== task log {p.relative_to(self.home / 'logs')} =====\n{_tail(p, limit)}" for p in task_logs]
        return "\n".join(parts)


def _tail(path: Path, limit: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"<unreadable: {err}>"
    return text if len(text) <= limit else "..." + text[-limit:]


@contextmanager
def run_airflow(*, connections: Mapping[str, Mapping[str, Any]] | None = None, users: str = DEFAULT_USERS,
                dags_folder: Path | None = None, extra_env: Mapping[str, str] | None = None,
                home: Path | None = None, port: int | None = None, triggerer: bool = False,
                setup: Iterable[Sequence[str]] = (), keep_home: bool = False,
                server_cls: type[AirflowServer] = AirflowServer,
                on_error: Callable[[AirflowServer], None] | None = None) -> Iterator[AirflowServer]:
    """Start a deployment; stop every component on exit (also on an error or Ctrl-C).

    :param connections: ``{conn_id: connection dict}`` installed as ``AIRFLOW_CONN_<ID>`` in every component.
    :param extra_env: more environment (e.g. ``MSTEAMS_APPROVERS``) for every component and setup command.
    :param home: a persistent AIRFLOW_HOME (created if missing, kept: a second start reuses its DB, passwords and
        logs); default a temporary directory, removed on exit unless ``keep_home``.
    :param port: the API server's port (default: a free one).
    :param triggerer: also start the triggerer (only DAGs with deferrable tasks need it; ours have none).
    :param setup: commands run with the deployment's environment after ``airflow db migrate``, before the
        components start (see :meth:`AirflowServer.start`).
    :param on_error: called with the server when starting it or the ``with`` block raises (e.g. to show logs).
    """
    persistent = home is not None
    home = Path(home).resolve() if persistent else Path(tempfile.mkdtemp(prefix="teamsops-airflow-"))
    home.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    server = server_cls(home, port, airflow_env(home, port, users=users, dags_folder=dags_folder,
                                                connections=connections, extra_env=extra_env), triggerer=triggerer)
    try:
        server.start(setup)
        yield server
    except BaseException:
        if on_error is not None:
            on_error(server)
        raise
    finally:
        server.stop()
        if not persistent:
            if keep_home:
                log.warning("kept the Airflow home %s", home)
            else:
                shutil.rmtree(home, ignore_errors=True)

"""`make demo`: the project as an IT team would run it, on one machine, against the simulator's demo tenant.

1. Starts the simulator (``python -m teamsops.simulator serve``): a generated tenant of a few thousand users, over
   HTTPS on localhost with its own CA, Graph's documented throttling limits scaled up (x10 by default) so the first
   full sync takes about a minute instead of ten. The client paces at the same scale (``MSTEAMS_RATE_LIMIT_SCALE``).
2. Starts Airflow (:mod:`teamsops_airflow.local_airflow`: API server, scheduler, DAG processor, LocalExecutor,
   SQLite) with home ``.demo/airflow`` on http://127.0.0.1:8080, the project's DAGs, the ``msteams_graph`` pool
   (``python -m teamsops_airflow.setup``), the ``msteams_default`` connection pointing at the simulator, the audit
   database (``msteams_audit``, SQLite under ``.demo/audit``) and the users ``admin`` (admin), ``itops`` and
   ``itops2`` (op: one triggers, the other approves) and ``auditor`` (viewer).
3. Unpauses and triggers ``msteams_sync`` through the REST API as ``itops``: a full sync the first time, an
   incremental one afterwards (``latest.json`` exists), waits for it and prints the UI address and logins, where
   the data landed, rows per table, and how to trigger an offboarding and approve it (UI and curl).
4. Keeps running until Ctrl-C, which stops every process it started, by PID (each in its own process group).
   ``--exit-after-sync`` stops everything right after the summary (for scripts and tests).

Everything lives under ``.demo/`` (``--demo-dir``), which a second run reuses: same tenant (same generator settings
and seed), same Airflow home and passwords, same data root. The simulator keeps its tenant in memory: changes made
through Graph in one session (e.g. an offboarding) are gone after a restart, so the next run re-reads everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
SYNC_DAG = "msteams_sync"
REPORTS_DAG = "msteams_reports"
OFFBOARD_DAG = "msteams_offboard_user"
TENANT_DEFAULTS = {"users": 3000, "teams": 300, "seed": 42, "throttle_scale": 10.0, "sim_port": 8443}
# Every process this script starts carries this variable (Airflow passes it on to its workers and task processes),
# so a test can find anything left behind by scanning /proc/*/environ.
MARKER_ENV = "TEAMSOPS_DEMO_DIR"
SYNC_TIMEOUT = 900.0
INSTALLED_APPS_FRACTION = 0.2
PASSWORDS_SHOWN = ".passwords-shown"  # in the Airflow home, next to passwords.json


class DemoError(Exception):
    """The demo cannot go on; the message says what happened and what to do."""


# ---------------------------------------------------------------------------------------------- settings
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.partition("\n")[0])
    parser.add_argument("--demo-dir", type=Path, default=REPO / ".demo",
                        help="where everything lives (default: .demo/ in the repository)")
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI and REST API port (default 8080)")
    tenant = parser.add_argument_group("demo tenant (fixed by the first run in a demo dir; --reset to change)")
    tenant.add_argument("--users", type=int, help=f"users (default {TENANT_DEFAULTS['users']})")
    tenant.add_argument("--teams", type=int, help=f"teams (default {TENANT_DEFAULTS['teams']})")
    tenant.add_argument("--seed", type=int, help=f"generator seed (default {TENANT_DEFAULTS['seed']})")
    tenant.add_argument("--throttle-scale", type=float,
                        help=f"Graph's limits x this (default {TENANT_DEFAULTS['throttle_scale']:g})")
    tenant.add_argument("--sim-port", type=int,
                        help=f"simulator HTTPS port (default {TENANT_DEFAULTS['sim_port']}; the stored deltaLinks "
                             "name it, so it stays fixed)")
    parser.add_argument("--reset", action="store_true",
                        help="delete the demo dir first (new tenant settings, new passwords, a full sync)")
    parser.add_argument("--exit-after-sync", action="store_true",
                        help="stop everything and exit 0 after the sync and the summary")
    return parser.parse_args(argv)


def tenant_settings(args: argparse.Namespace, saved_path: Path) -> dict[str, Any]:
    """The tenant settings of this demo dir: fixed by its first run, because a second run's incremental sync only
    makes sense against the same generated tenant on the same address (the deltaLinks name the port)."""
    saved = json.loads(saved_path.read_text()) if saved_path.exists() else None
    given = {key: getattr(args, key) for key in TENANT_DEFAULTS if getattr(args, key) is not None}
    if saved is None:
        return {**TENANT_DEFAULTS, **given}
    differing = {k: (saved.get(k), v) for k, v in given.items() if saved.get(k) != v}
    if differing:
        what = ", ".join(f"--{k.replace('_', '-')} {new} (this demo dir has {old})" for k, (old, new) in
                         differing.items())
        raise DemoError(f"{what}: the demo in {saved_path.parent} was set up with other settings. Run without them "
                        "to reuse it, or add --reset to start over with the new ones.")
    return saved


# ---------------------------------------------------------------------------------------------- processes
@contextmanager
def run_simulator(state: Path, settings: dict[str, Any], env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """``python -m teamsops.simulator serve`` in its own process group; yields ``{"connection"`` (the
    ``msteams_default`` connection), ``"pid"``, ``"base_url"}``. Stopped (SIGTERM to the group, SIGKILL after 10 s)
    on exit."""
    state.mkdir(parents=True, exist_ok=True)
    ready, conn_file = state / "ready.json", state / "connections.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "teamsops.simulator", "--log-level", "warning", "serve",
           "--port", str(settings["sim_port"]), "--throttle", "documented",
           "--throttle-scale", str(settings["throttle_scale"]), "--users", str(settings["users"]),
           "--teams", str(settings["teams"]), "--seed", str(settings["seed"]), "--state-dir", str(state),
           "--connection-file", str(conn_file), "--ready-file", str(ready)]  # fmt: skip
    with open(state / "simulator.log", "ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if proc.poll() is not None:
                raise DemoError(f"The simulator exited with code {proc.returncode} before it was ready: see "
                                f"{state / 'simulator.log'} (port {settings['sim_port']} taken? --reset and "
                                "--sim-port choose another).")
            if time.monotonic() > deadline:
                raise DemoError(f"The simulator did not become ready within 180 s: see {state / 'simulator.log'}.")
            time.sleep(0.2)
        connection = json.loads(conn_file.read_text())["msteams_default"]
        if isinstance(connection.get("extra"), str):
            connection["extra"] = json.loads(connection["extra"])
        yield {"connection": connection, "pid": proc.pid, "base_url": json.loads(ready.read_text())["base_url"],
               "ca": connection["extra"]["verify"]}
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def tenant_writes(simulator: dict[str, Any]) -> int | None:
    """How many writes the simulator applied in this session (None when it cannot be asked)."""
    import httpx

    try:
        resp = httpx.get(f"{simulator['base_url'].rstrip('/')}/_sim/journal", verify=simulator["ca"], timeout=10)
        resp.raise_for_status()
        return len(resp.json()["value"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


# ---------------------------------------------------------------------------------------------- the demo
class Demo:
    """One run of the demo: what it starts, in which directory, and what it prints."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = args.demo_dir.resolve()
        self.home = self.dir / "airflow"
        self.data = self.dir / "msteams-data"
        self.audit = self.dir / "audit" / "msteams_audit.db"
        self.session_file = self.dir / "sim" / "session.json"
        self.started = time.monotonic()
        self.pids: dict[str, int] = {}

    def run(self, stack: ExitStack) -> None:
        if self.args.reset and self.dir.exists():
            print(f"--reset: deleting {self.dir}")
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = tenant_settings(self.args, self.dir / "tenant.json")
        (self.dir / "tenant.json").write_text(json.dumps(settings, indent=2) + "\n")
        # Passwords are shown once: by the first run that gets as far as the summary (a run that failed before
        # printing them does not count), then only the file is named.
        first_run = not (self.home / PASSWORDS_SHOWN).exists()
        full_refresh, why_full = self._previous_session()
        env = {**os.environ, MARKER_ENV: str(self.dir)}

        print(f"Starting the simulator's demo tenant ({settings['users']:,} users, {settings['teams']:,} teams, "
              f"seed {settings['seed']}): Graph's documented throttling limits x{settings['throttle_scale']:g}, so "
              "the first full sync takes about a minute (the client paces at the same scale).")
        simulator = stack.enter_context(run_simulator(self.dir / "sim", settings, env))
        connection = simulator["connection"]
        self.pids["simulator"] = simulator["pid"]
        self.session_file.write_text(json.dumps({"state": "running"}))
        stack.callback(self._record_session, simulator)
        print(f"  simulator ready at {simulator['base_url']} (pid {simulator['pid']})")

        airflow = stack.enter_context(self._airflow(connection, settings, env))
        self.pids.update({f"airflow {name}": pid for name, pid in airflow.pids().items()})
        print(f"  Airflow ready at {airflow.base_url} ({', '.join(f'{k} pid {v}' for k, v in self.pids.items())})")
        print(f"Started in {time.monotonic() - self.started:.0f} s.\n")

        # Paused again on the way out, so the daily schedule never starts a run before this script's next trigger.
        stack.callback(self._pause, airflow)
        # The reports DAG runs on the assets the sync publishes: unpaused first, it reports on this very sync.
        reports_before = self._unpause_reports(airflow)
        manifest = self._sync(airflow, full_refresh, why_full)
        self._unpause_actions(airflow)
        report = self._wait_for_report(airflow, reports_before, manifest)
        self._print_summary(airflow, manifest, first_run, report)

    def _previous_session(self) -> tuple[bool, str]:
        """Whether this run must re-read everything: the simulator regenerates its tenant at each start, so writes
        of an earlier session (or of one that did not stop cleanly) are gone, and the stored deltaLinks would not
        show that."""
        if not self.session_file.exists():
            return False, ""
        session = json.loads(self.session_file.read_text())
        if session.get("state") != "stopped":
            return True, "the previous demo did not stop cleanly, so its changes to the tenant are unknown"
        if session.get("writes"):
            return True, (f"the previous demo session changed the tenant ({session['writes']} writes), and the "
                          "simulator starts from the generated tenant again")
        return False, ""

    def _record_session(self, simulator: dict[str, Any]) -> None:
        writes = tenant_writes(simulator)
        state = {"state": "stopped" if writes is not None else "unknown", "writes": writes}
        self.session_file.write_text(json.dumps(state))

    def _airflow(self, connection: dict[str, Any], settings: dict[str, Any], env: dict[str, str]):
        from teamsops_airflow.local_airflow import run_airflow

        self.audit.parent.mkdir(parents=True, exist_ok=True)
        extra_env = {
            MARKER_ENV: str(self.dir),
            "MSTEAMS_DATA_ROOT": str(self.data),
            "MSTEAMS_RATE_LIMIT_SCALE": str(settings["throttle_scale"]),
            # Installed apps have no change feed: an incremental run re-reads a fifth of the users (and new ones),
            # each user at least every 7 runs, instead of all of them (see teamsops.sync.fanout).
            "MSTEAMS_INSTALLED_APPS_FRACTION": str(INSTALLED_APPS_FRACTION),
            "MSTEAMS_APPROVERS": "itops,itops2,admin",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        connections = {"msteams_default": connection,
                       "msteams_audit": {"conn_type": "sqlite", "host": str(self.audit)}}
        reused = (self.home / "airflow.db").exists()
        print(f"Starting Airflow ({'reusing' if reused else 'creating'} {self.home}: SQLite, LocalExecutor; "
              f"API server, scheduler and DAG processor on port {self.args.port})...")
        return run_airflow(connections=connections, extra_env=extra_env, home=self.home, port=self.args.port,
                           setup=[["-m", "teamsops_airflow.setup"]])

    def _sync(self, airflow: Any, full_refresh: bool, why_full: str) -> dict[str, Any]:
        """Trigger msteams_sync as itops, unpause it and wait for the run; return the manifest it published.

        The DAG runs daily without catch-up: unpausing it makes the scheduler start the run of the last complete
        day at once, which would do the full sync before ours (ours then waits, max_active_runs=1). So when that
        run is due, ours takes its logical date (the scheduler then creates no other), and the DAG is unpaused
        only after the trigger."""
        if full_refresh:
            print(f"Full sync forced: {why_full}.")
        details = airflow.wait_for_dag(SYNC_DAG, as_user="itops", timeout=120, unpause=False)
        due = details.get("next_dagrun_run_after")
        logical_date = details.get("next_dagrun_logical_date") if due and _parse_time(due) <= time.time() else None
        if logical_date is not None and self._runs_on(airflow, logical_date):
            logical_date = None  # a run of ours holds that date already: the scheduler will not create another
        started = time.monotonic()
        body = {"logical_date": logical_date, "conf": {"full_refresh": full_refresh}}
        resp = airflow.request("POST", f"/dags/{SYNC_DAG}/dagRuns", "itops", json=body)
        if resp.status_code >= 400:
            raise DemoError(f"Triggering {SYNC_DAG} as itops was refused: {resp.status_code} {resp.text[:500]}")
        run_id = resp.json()["dag_run_id"]
        if details.get("is_paused"):
            airflow.request("PATCH", f"/dags/{SYNC_DAG}", "itops", json={"is_paused": False}).raise_for_status()
        print(f"Triggered {SYNC_DAG} as itops: run {run_id}; waiting for it "
              f"(watch it at {airflow.base_url}/dags/{SYNC_DAG}/runs/{run_id})...")
        state = airflow.wait_for_state(SYNC_DAG, run_id, timeout=SYNC_TIMEOUT, poll=1.0)
        elapsed = time.monotonic() - started
        if state != "success":
            raise DemoError(f"{SYNC_DAG} run {run_id} ended {state}; tasks: {airflow.task_states(SYNC_DAG, run_id)}. "
                            f"Task logs: {self.home / 'logs'} or the UI.")
        latest, manifest = self.latest()
        if manifest["run_id"] != run_id:
            raise DemoError(f"latest.json points at run {manifest['run_id']}, not at {run_id}: another sync run "
                            "published meanwhile; see the UI.")
        print(f"Sync finished in {elapsed:.0f} s ({manifest['mode']}: {manifest.get('reason', '')}).")
        if manifest["mode"] == "incremental":
            print(f"  Users, teams and members: changes only (delta queries). Installed apps have no change feed: "
                  f"{INSTALLED_APPS_FRACTION:.0%} of the users per run (MSTEAMS_INSTALLED_APPS_FRACTION), every user "
                  "at least once a week; channels are re-read.")
        print()
        return manifest

    @staticmethod
    def _unpause_actions(airflow: Any) -> None:
        """Unpause the action DAGs (they only run when someone triggers them, and a run of a paused DAG would wait
        in the queue). The scheduled DAGs besides the sync (reports, connection check) stay as they are."""
        airflow.wait_for_dag(OFFBOARD_DAG, as_user="itops", timeout=120, unpause=False)
        resp = airflow.request("GET", "/dags", "itops", params={"tags": "action", "paused": "true", "limit": 100})
        resp.raise_for_status()
        for dag in resp.json()["dags"]:
            airflow.request("PATCH", f"/dags/{dag['dag_id']}", "itops", json={"is_paused": False}).raise_for_status()

    @staticmethod
    def _unpause_reports(airflow: Any) -> int:
        """Unpause the reports DAG; return how many runs it had (the next one is this sync's report)."""
        details = airflow.wait_for_dag(REPORTS_DAG, as_user="itops", timeout=120, unpause=False)
        if details.get("is_paused"):
            airflow.request("PATCH", f"/dags/{REPORTS_DAG}", "itops", json={"is_paused": False}).raise_for_status()
        resp = airflow.request("GET", f"/dags/{REPORTS_DAG}/dagRuns", "itops", params={"limit": 1})
        resp.raise_for_status()
        return int(resp.json()["total_entries"])

    def _wait_for_report(self, airflow: Any, runs_before: int, manifest: dict[str, Any],
                         timeout: float = 180.0) -> dict[str, Any] | None:
        """Wait for the report of this sync (the reports DAG's next run); its ``reports/latest.json``, or None
        with a line saying why (the demo goes on: the data is there either way)."""
        print(f"Waiting for {REPORTS_DAG} (scheduled on the assets the sync just published)...")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = airflow.request("GET", f"/dags/{REPORTS_DAG}/dagRuns", "itops",
                                   params={"limit": 1, "order_by": "-run_after"})
            resp.raise_for_status()
            body = resp.json()
            if body["total_entries"] > runs_before and body["dag_runs"][0]["state"] in ("success", "failed"):
                run = body["dag_runs"][0]
                if run["state"] == "failed":
                    print(f"  {REPORTS_DAG} run {run['dag_run_id']} failed: see its task log under "
                          f"{airflow.home / 'logs'}")
                    return None
                latest = self.data / manifest["tenant_id"] / "reports" / "latest.json"
                return json.loads(latest.read_text())
            time.sleep(1)
        print(f"  no {REPORTS_DAG} run finished within {timeout:.0f} s; it will still run in the background")
        return None

    @staticmethod
    def _runs_on(airflow: Any, logical_date: str) -> int:
        params = {"logical_date_gte": logical_date, "logical_date_lte": logical_date}
        resp = airflow.request("GET", f"/dags/{SYNC_DAG}/dagRuns", "itops", params=params)
        resp.raise_for_status()
        return int(resp.json()["total_entries"])

    @staticmethod
    def _pause(airflow: Any) -> None:
        try:
            airflow.request("PATCH", f"/dags/{SYNC_DAG}", "itops", json={"is_paused": True})
        except Exception as err:  # stopping goes on regardless
            print(f"  (could not pause {SYNC_DAG}: {err})")

    def latest(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``latest.json`` of the (single) demo tenant and the manifest it points at."""
        found = sorted(self.data.glob("*/latest.json"))
        if len(found) != 1:
            raise DemoError(f"expected one tenant with a latest.json under {self.data}, found {len(found)}")
        latest = json.loads(found[0].read_text())
        manifest = json.loads((found[0].parent / latest["manifest_relative_path"]).read_text())
        return latest, manifest

    # ------------------------------------------------------------------------------------------ output
    def _print_summary(self, airflow: Any, manifest: dict[str, Any], first_run: bool,
                       report: dict[str, Any] | None) -> None:
        latest, _ = self.latest()
        tenant_dir = self.data / manifest["tenant_id"]
        print("=" * 100)
        print(f"Airflow UI: {airflow.base_url}  (REST API: {airflow.base_url}/api/v2)")
        print("Logins: admin (admin), itops and itops2 (op: one triggers an action, the other approves it), "
              "auditor (viewer)")
        if first_run:
            print("Passwords (shown once; kept in " f"{airflow.home / 'passwords.json'}):")
            for user, password in airflow.passwords().items():
                print(f"  {user:<8} {password}")
            (airflow.home / PASSWORDS_SHOWN).touch()
        else:
            print(f"Passwords: in {airflow.home / 'passwords.json'} (shown on the first run only)")
        print(f"\nData: {tenant_dir} (Parquet per table; latest.json points at run {latest['run_id']})")
        if report is not None:
            metrics = report.get("metrics") or {}
            shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in list(metrics.items())[:6])
            page = Path(urlsplit(report["report"]).path)  # the data root's URL form (file:/...) as a local path
            print(f"Report: {page.as_uri()} (open it in a browser; {shown})")
        print(f"Audit log of actions: {self.audit}")
        print(f"Logs: {airflow.home / 'logs'}")
        print(f"\nSync run {latest['run_id']}: {latest['mode']}")
        print(f"  {'table':<21}{'mode':>12}{'rows':>10}{'requests':>10}")
        for name, table in sorted(latest["tables"].items()):
            detail = manifest["tables"].get(name, {})
            print(f"  {name:<21}{detail.get('mode', ''):>12}{table['rows']:>10}{detail.get('requests', 0):>10}")
        print(f"  {'total':<21}{'':>12}{sum(t['rows'] for t in latest['tables'].values()):>10}"
              f"{manifest.get('totals', {}).get('requests', 0):>10}")
        self._print_offboarding(airflow, tenant_dir, latest)
        print("=" * 100)

    def _print_offboarding(self, airflow: Any, tenant_dir: Path, latest: dict[str, Any]) -> None:
        upn = offboarding_candidate(tenant_dir, latest)
        url, pw_file = airflow.base_url, airflow.home / "passwords.json"
        conf = {"user": upn, "reason": "left the company", "ticket": "HR-1234"}
        print(f"\nOffboard a user (e.g. {upn}): itops asks, itops2 approves.")
        print(f"  UI: log in as itops at {url}, Dags > {OFFBOARD_DAG} > Trigger, fill in user, reason and ticket; "
              "then log in as itops2 (another browser or a private window), open the run, the 'approve' task's "
              "Required Actions tab, read the plan and choose Approve.")
        pw = f"$(python3 -c 'import json; print(json.load(open(\"{pw_file}\"))[\"%s\"])')"
        token = ("$(curl -s -X POST " + url + "/auth/token -H 'Content-Type: application/json' "
                 "-d \"{\\\"username\\\": \\\"%s\\\", \\\"password\\\": \\\"" + pw + "\\\"}\" | "
                 "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
        body = json.dumps({"logical_date": None, "conf": conf})
        print("  REST API (curl):")
        print(f"    ITOPS={token % ('itops', 'itops')}")
        print(f"    RUN_ID=$(curl -s -X POST {url}/api/v2/dags/{OFFBOARD_DAG}/dagRuns -H \"Authorization: Bearer "
              f"$ITOPS\" -H 'Content-Type: application/json' -d {shlex.quote(body)} | python3 -c 'import json,sys; "
              "print(json.load(sys.stdin)[\"dag_run_id\"])')")
        print(f"    curl -s \"{url}/api/v2/dags/{OFFBOARD_DAG}/dagRuns/$RUN_ID/hitlDetails\" -H \"Authorization: "
              "Bearer $ITOPS\"    # the plan, once the run waits for approval")
        print(f"    ITOPS2={token % ('itops2', 'itops2')}")
        print(f"    curl -s -X PATCH \"{url}/api/v2/dags/{OFFBOARD_DAG}/dagRuns/$RUN_ID/taskInstances/approve/-1/"
              "hitlDetails\" -H \"Authorization: Bearer $ITOPS2\" -H 'Content-Type: application/json' "
              "-d '{\"chosen_options\": [\"Approve\"], \"params_input\": {}}'")
        print(f"    curl -s \"{url}/api/v2/dags/{OFFBOARD_DAG}/dagRuns/$RUN_ID\" -H \"Authorization: Bearer $ITOPS\""
              "    # state: success once applied and verified")
        print("  itops cannot approve its own request and auditor cannot approve at all (403).")


def _parse_time(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def offboarding_candidate(tenant_dir: Path, latest: dict[str, Any]) -> str:
    """A real user of the synced tenant that offboarding applies to without questions: an enabled member with a
    manager, no directory role and owner of no team (a last owner would need ``new_owner``)."""
    import pyarrow.parquet as pq

    def table(name: str, columns: list[str]) -> list[dict[str, Any]]:
        return pq.read_table(tenant_dir / latest["tables"][name]["relative_path"], columns=columns).to_pylist()

    role_holders = {r["principal_id"] for r in table("role_assignments", ["principal_id"])}
    owners = {m["user_id"] for m in table("team_members", ["user_id", "roles"]) if "owner" in (m["roles"] or "")}
    users = table("users", ["id", "userPrincipalName", "accountEnabled", "userType", "manager_id"])
    for user in sorted(users, key=lambda u: u["userPrincipalName"]):
        if (user["accountEnabled"] and user["userType"] == "Member" and user["manager_id"]
                and user["id"] not in role_holders and user["id"] not in owners
                and not user["userPrincipalName"].startswith("breakglass")):
            return str(user["userPrincipalName"])
    raise DemoError(f"no enabled member without roles or team ownership in {tenant_dir}: nothing safe to offboard")


# ---------------------------------------------------------------------------------------------- main
def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. from a supervisor) stops the demo like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    stack = ExitStack()
    code = 0
    try:
        demo.run(stack)
        if args.exit_after_sync:
            print("--exit-after-sync: stopping.")
        else:
            print("Running. Press Ctrl-C to stop everything this script started.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nCtrl-C: stopping.")
    except DemoError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        code = 1
    except Exception as err:  # the launcher's errors carry the component logs
        print(f"\nerror: {type(err).__name__}: {err}\nLogs: {demo.home / 'logs'}", file=sys.stderr)
        code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
        if demo.pids:
            print(f"Stopped {', '.join(f'{k} (pid {v})' for k, v in demo.pids.items())}.")
    return code


if __name__ == "__main__":
    sys.exit(main())

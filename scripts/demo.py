"""`make demo`: start the simulator's demo tenant and run the main job against it through the Airflow hook.

What it shows, in order:
1. the simulator starting (HTTPS on localhost with its own CA) with a generated demo tenant;
2. the ``msteams_default`` connection (the documented JSON contract) pointing at it;
3. a token acquired through ``MSTeamsHook`` and the permission check;
4. the tenant's users listed through the hook's Graph client, printed as a table;
5. the main job: the ``msteams_sync`` DAG run for real (``dag.test()`` on a local SQLite metadata DB in
   ``.demo/airflow``) into Parquet under ``.demo/msteams-data``, a per-table summary, then a few changes made
   through Graph and an incremental run that picks up only those;
6. what a misconfigured connection says: a wrong secret, an unknown tenant, a missing permission.

Ctrl-C stops everything this script started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"
THROTTLE_SCALE = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--teams", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    configure_airflow()
    simulator, connection = start_simulator(args)
    try:
        os.environ["AIRFLOW_CONN_MSTEAMS_DEFAULT"] = json.dumps(connection)
        run_main_job()
        run_sync(connection)
        show_misconfigurations(connection)
    finally:
        stop(simulator)
    return 0


def configure_airflow() -> None:
    """Airflow reads its configuration when first imported: everything is set before that, inside ``.demo/``."""
    os.environ["AIRFLOW_HOME"] = str(DEMO_DIR / "airflow")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    # Task logs go to the console under dag.test(); the demo prints its own summary instead.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ["MSTEAMS_DATA_ROOT"] = str(DEMO_DIR / "msteams-data")
    # The simulator runs Graph's limits x10 (below), so the client may pace at x10 too. dag.test() runs one task at
    # a time, so one shard per fan-out table gets the whole limit (a deployment runs its shards in parallel).
    os.environ["MSTEAMS_RATE_LIMIT_SCALE"] = str(THROTTLE_SCALE)
    os.environ.setdefault("MSTEAMS_GRAPH_POOL_SLOTS", "1")


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen, dict]:
    """Start ``python -m teamsops.simulator serve`` and wait until it says it is listening."""
    state = DEMO_DIR / "sim"
    state.mkdir(parents=True, exist_ok=True)
    ready, conn_file = state / "ready.json", state / "connections.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "teamsops.simulator", "--log-level", "warning", "serve", "--port", "0",
           "--throttle", "documented", "--throttle-scale", str(THROTTLE_SCALE), "--users", str(args.users),
           "--teams", str(args.teams), "--seed", str(args.seed), "--state-dir", str(state),
           "--connection-file", str(conn_file), "--ready-file", str(ready)]  # fmt: skip
    print(f"Starting the simulator's demo tenant ({args.users:,} users, {args.teams:,} teams; Graph's documented "
          "throttling limits scaled up 10x so the demo is quick)...")
    proc = subprocess.Popen(cmd, cwd=REPO)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"The simulator exited with code {proc.returncode} before it was ready.")
        if time.monotonic() > deadline:
            stop(proc)
            raise SystemExit("The simulator did not become ready within 120 s.")
        time.sleep(0.2)
    connection = json.loads(conn_file.read_text())["msteams_default"]
    if isinstance(connection.get("extra"), str):
        connection["extra"] = json.loads(connection["extra"])
    print(f"Simulator ready at {connection['extra']['graph_url']} (CA: {connection['extra']['verify']})\n")
    return proc, connection


def run_main_job() -> None:
    """Token + permission check + list users, all through the Airflow hook (the same path the DAGs use)."""
    import pandas as pd

    from teamsops_airflow.hooks import MSTeamsHook

    hook = MSTeamsHook()
    ok, message = hook.test_connection()
    print(f"Connection msteams_default: {'OK' if ok else 'NOT OK'} - {message}")
    if not ok:
        raise SystemExit(1)
    client = hook.get_conn()
    org = client.get("/organization", params={"$select": "id,displayName,verifiedDomains"})["value"][0]
    print(f"Tenant: {org['displayName']} ({org['id']})\n")
    select = "id,userPrincipalName,displayName,userType,accountEnabled,department,jobTitle"
    started = time.monotonic()
    users = pd.DataFrame(client.paginate("/users", params={"$select": select, "$top": "999"}))
    elapsed = time.monotonic() - started
    hook.close()
    print(f"Listed {len(users):,} users through the hook in {elapsed:.2f} s:")
    with pd.option_context("display.width", 160, "display.max_columns", 10, "display.max_colwidth", 40):
        print(users.drop(columns=["id"]).head(15).to_string(index=False))
    print("\nBy type and state:")
    print(users.groupby(["userType", "accountEnabled"]).size().rename("users").to_string())
    print()


def run_sync(connection: dict) -> None:
    """The ``msteams_sync`` DAG, run for real: a full run, a few changes through Graph, then an incremental run."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.db import initdb

    from teamsops_airflow.setup import ensure_pool

    # The simulator regenerates its tenant on every start, so deltaLinks of an earlier demo mean nothing: start clean.
    shutil.rmtree(DEMO_DIR / "msteams-data", ignore_errors=True)
    print("Preparing the Airflow metadata DB (.demo/airflow) and the msteams_graph pool...")
    initdb()
    outcome, slots = ensure_pool()
    print(f"Pool msteams_graph: {outcome} ({slots} slot(s)).")
    bag = DagBag(dag_folder=str(REPO / "dags" / "msteams_sync.py"))
    if bag.import_errors:
        raise SystemExit(f"The sync DAG does not load: {bag.import_errors}")
    dag = bag.dags["msteams_sync"]

    full = _sync_once(dag, "Full sync")
    changed = _change_a_few_things(connection)
    print(f"\nChanged through Graph: {changed}.")
    incremental = _sync_once(dag, "Incremental sync")
    saved = 1 - incremental["totals"]["requests"] / max(full["totals"]["requests"], 1)
    print(f"\nThe incremental run sent {incremental['totals']['requests']:,} requests instead of "
          f"{full['totals']['requests']:,} ({saved:.0%} fewer); installed apps and channels have no change feed "
          "and are re-read in full.")
    print(f"Published tables: {DEMO_DIR / 'msteams-data'} (latest.json points at the current run).\n")


def _sync_once(dag, title: str) -> dict:
    """Run the DAG once and print the manifest of what it published, per table."""
    from teamsops.sync import TABLE_ORDER

    started = time.monotonic()
    run = dag.test(logical_date=None)
    elapsed = time.monotonic() - started
    if run.state != "success":
        raise SystemExit(f"{title}: the run {run.run_id} ended {run.state}; see the task logs above.")
    manifest = _published_manifest()
    print(f"\n{title}: run {run.run_id} finished in {elapsed:.1f} s, mode {manifest['mode']} "
          f"({manifest['reason']}), tenant {manifest['tenant_id']}")
    print(f"  {'table':<21}{'mode':>12}{'rows':>10}{'requests':>10}{'429s':>6}{'seconds':>9}")
    for name in TABLE_ORDER:
        table = manifest["tables"][name]
        print(f"  {name:<21}{table['mode']:>12}{table['rows']:>10,}{table['requests']:>10,}{table['throttled']:>6,}"
              f"{table['seconds']:>9.1f}")
    totals = manifest["totals"]
    print(f"  {'total':<21}{'':>12}{totals['rows']:>10,}{totals['requests']:>10,}{totals['throttled']:>6,}")
    return manifest


def _published_manifest() -> dict:
    """The manifest ``latest.json`` points at (read through the same data root the DAG wrote to)."""
    from teamsops.sync import read_latest
    from teamsops_airflow.storage import data_root

    root = data_root()
    tenants = [p.name for p in root.iterdir() if (p / "latest.json").exists()]
    latest = read_latest(root, tenants[0])
    return json.loads((root / tenants[0] / latest["manifest_relative_path"]).read_text())


def _change_a_few_things(connection: dict) -> str:
    """A new hire, a department move and a leaver, made through Graph so the delta queries see them."""
    from teamsops.graph import GraphClient, GraphSettings

    settings = GraphSettings.from_mapping({"client_id": connection["login"], "client_secret": connection["password"],
                                           **connection["extra"]})  # fmt: skip
    with GraphClient(settings) as graph:
        admins = {a["principalId"] for a in graph.paginate("/roleManagement/directory/roleAssignments")}
        users = [u for u in graph.get("/users", params={"$select": "id,userPrincipalName", "$top": "40"})["value"]
                 if u["id"] not in admins]  # Graph refuses an app deleting an admin without a privileged role
        domain = users[-1]["userPrincipalName"].split("@", 1)[1]
        graph.post("/users", json={
            "accountEnabled": True, "displayName": "Demo Newhire", "mailNickname": "demo.newhire",
            "userPrincipalName": f"demo.newhire@{domain}",
            "passwordProfile": {"password": "Demo!-temporary-93", "forceChangePasswordNextSignIn": True}})
        graph.patch(f"/users/{users[10]['id']}", json={"department": "Platform Engineering"})
        graph.delete(f"/users/{users[15]['id']}")
    return "1 user created, 1 moved to another department, 1 deleted"


def show_misconfigurations(connection: dict) -> None:
    """Each misconfiguration prints the one sentence the hook gives an operator."""
    from teamsops_airflow.hooks import MSTeamsHook

    print("What a misconfigured connection says:")
    cases = {
        "wrong secret": {**connection, "password": "this-is-not-the-secret"},
        "unknown tenant": {**connection, "extra": {**connection["extra"], "tenant_id": "contoso-typo.onmicrosoft.com"}},
    }
    for name, conn in cases.items():
        os.environ["AIRFLOW_CONN_MSTEAMS_BROKEN"] = json.dumps(conn)
        print(f"  - {name}: {MSTeamsHook('msteams_broken').test_connection()[1]}")
    with _without_role(connection, "RoleManagement.Read.Directory"):
        print(f"  - missing permission: {MSTeamsHook().test_connection()[1]}")
    print()


class _without_role:
    """Temporarily withdraw one granted permission from the demo app through the simulator's admin API."""

    def __init__(self, connection: dict, role: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=connection["extra"]["graph_url"], verify=connection["extra"]["verify"])
        self.app_id, self.role = connection["login"], role

    def _set(self, roles: list[str]) -> None:
        self.http.post(f"/_sim/apps/{self.app_id}", json={"roles": roles}).raise_for_status()

    def __enter__(self) -> None:
        from teamsops_airflow.hooks import MSTeamsHook

        hook = MSTeamsHook()
        self.roles = sorted(hook.get_conn().token_roles())
        hook.close()
        self._set([r for r in self.roles if r != self.role])

    def __exit__(self, *exc: object) -> None:
        self._set(self.roles)
        self.http.close()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())

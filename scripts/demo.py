"""`make demo`: start the simulator's demo tenant and run the main job against it through the Airflow hook.

What it shows, in order:
1. the simulator starting (HTTPS on localhost with its own CA) with a generated demo tenant;
2. the ``msteams_default`` connection (the documented JSON contract) pointing at it;
3. a token acquired through ``MSTeamsHook`` and the permission check;
4. the tenant's users listed through the hook's Graph client, printed as a table;
5. what a misconfigured connection says: a wrong secret, an unknown tenant, a missing permission.

Ctrl-C stops everything this script started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--teams", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    os.environ["AIRFLOW_HOME"] = str(DEMO_DIR / "airflow")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    simulator, connection = start_simulator(args)
    try:
        os.environ["AIRFLOW_CONN_MSTEAMS_DEFAULT"] = json.dumps(connection)
        run_main_job()
        show_misconfigurations(connection)
    finally:
        stop(simulator)
    return 0


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen, dict]:
    """Start ``python -m teamsops.simulator serve`` and wait until it says it is listening."""
    state = DEMO_DIR / "sim"
    state.mkdir(parents=True, exist_ok=True)
    ready, conn_file = state / "ready.json", state / "connections.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "teamsops.simulator", "--log-level", "warning", "serve", "--port", "0",
           "--throttle", "documented", "--throttle-scale", "10", "--users", str(args.users),
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

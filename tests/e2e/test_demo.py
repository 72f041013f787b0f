"""`make demo` as an operator runs it: ``scripts/demo.py --exit-after-sync`` twice on one demo directory.

The first run starts the simulator and a real Airflow (API server, scheduler, DAG processor), triggers a full sync
through the REST API and prints the passwords; the second reuses the Airflow home, runs an incremental sync and
does not print them again. Each run's printed summary must match the ``latest.json`` it published, and neither may
leave a process behind: every process the demo starts carries ``TEAMSOPS_DEMO_DIR=<demo dir>`` in its environment
(Airflow passes it on to its workers and task processes), so /proc tells what is left.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from teamsops_airflow.local_airflow import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# A small tenant keeps each run to about a minute on a 2-core CI machine (most of it is Airflow starting).
TENANT = ["--users", "60", "--teams", "6", "--seed", "3"]
ROW = re.compile(r"^  (?P<table>[a-z_]+)\s+(?P<mode>[a-z]+\s+)?(?P<rows>\d+)\s+\d+$")


def run_demo(demo_dir: Path, port: int, sim_port: int) -> str:
    cmd = [sys.executable, str(REPO / "scripts" / "demo.py"), "--exit-after-sync", "--demo-dir", str(demo_dir),
           "--port", str(port), "--sim-port", str(sim_port), *TENANT]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"demo failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def leftover_processes(demo_dir: Path, wait: float = 5.0) -> list[str]:
    """Processes whose environment names this demo dir (after a short wait for reaping)."""
    marker = f"TEAMSOPS_DEMO_DIR={demo_dir}".encode()
    deadline = time.monotonic() + wait
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"{proc.name}: {command}")
            except OSError:  # gone meanwhile, or a zombie
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def printed_summary(output: str) -> tuple[str, dict[str, int]]:
    """The run id and ``{table: rows}`` of the printed per-table summary."""
    section = output[output.index("\nSync run "):]
    run_id = re.match(r"\nSync run (\S+):", section).group(1)
    rows = {}
    for line in section.splitlines()[3:]:  # "", "Sync run ...", the header
        match = ROW.match(line)
        if match is None or match["table"] == "total":
            break
        rows[match["table"]] = int(match["rows"])
    return run_id, rows


def published(demo_dir: Path) -> dict:
    (latest,) = (demo_dir / "msteams-data").glob("*/latest.json")
    return json.loads(latest.read_text())


def started_pids(output: str) -> list[int]:
    line = next(x for x in output.splitlines() if x.startswith("Stopped "))
    return [int(p) for p in re.findall(r"\(pid (\d+)\)", line)]


def assert_summary_matches(output: str, demo_dir: Path) -> dict:
    latest = published(demo_dir)
    run_id, rows = printed_summary(output)
    assert run_id == latest["run_id"]
    assert rows == {name: table["rows"] for name, table in latest["tables"].items()}
    assert rows["users"] > 0 and rows["teams"] > 0
    # The reports DAG ran on the assets this sync published, and the page is where the demo says.
    report = re.search(r"^Report: file://(\S+) ", output, re.M)
    assert report, output
    (tenant_dir,) = [p.parent for p in (demo_dir / "msteams-data").glob("*/latest.json")]
    reports_latest = json.loads((tenant_dir / "reports" / "latest.json").read_text())
    page = unquote(report.group(1))
    assert reports_latest["run_id"] == latest["run_id"] and reports_latest["report"].endswith(page)
    assert Path(page).read_text().count("data-metric") > 0
    return latest


@pytest.mark.timeout(900)  # two Airflow starts and syncs: about 3 minutes on a loaded 2-core machine
def test_demo_first_run_full_second_incremental(tmp_path) -> None:
    demo_dir = tmp_path / "demo"
    port, sim_port = free_port(), free_port()

    first = run_demo(demo_dir, port, sim_port)
    latest = assert_summary_matches(first, demo_dir)
    assert latest["mode"] == "full"
    passwords = json.loads((demo_dir / "airflow" / "passwords.json").read_text())
    assert set(passwords) == {"admin", "itops", "itops2", "auditor"}
    assert all(re.search(rf"^  {user}\s+{re.escape(pw)}$", first, re.M) for user, pw in passwords.items()), first
    assert f"http://127.0.0.1:{port}" in first and "msteams_offboard_user" in first
    assert len(started_pids(first)) == 4  # simulator, api-server, scheduler, dag-processor: each reported stopped
    assert leftover_processes(demo_dir) == []

    second = run_demo(demo_dir, port, sim_port)
    latest_again = assert_summary_matches(second, demo_dir)
    assert latest_again["mode"] == "incremental"
    assert latest_again["run_id"] != latest["run_id"]
    assert json.loads((demo_dir / "airflow" / "passwords.json").read_text()) == passwords  # same logins
    assert not any(pw in second for pw in passwords.values())  # printed once only
    assert str(demo_dir / "airflow" / "passwords.json") in second
    assert len(started_pids(second)) == 4
    assert leftover_processes(demo_dir) == []

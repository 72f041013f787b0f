"""The sync as users run it: a real Airflow (API server, scheduler, DAG processor, LocalExecutor) runs ``msteams_sync``
against the simulator with Graph's documented limits and 150 ms +- 50 ms latency; wall time against the throttle bound.

``bench/sync.py`` measures the engine in one process (``include/`` directly); this measures the deployment: every
task is its own process started by the executor, the fan-out shards run in the ``msteams_graph`` pool created by
``python -m teamsops_airflow.setup``, and the scheduler's own latency (task start-up, dependency checks) is in the
figure. Nothing here is asserted; it prints the figures.

    .venv/bin/python bench/airflow_sync.py                         # 10,000 users / 1,000 teams, limits x1 (~8 min)
    .venv/bin/python bench/airflow_sync.py --users 2000 --scale 5  # quick

Two full runs are measured, one after the other: the run the scheduler starts when the DAG is unpaused (the
tenant's first; the executor's worker processes are started for it), then a run triggered with
``full_refresh=true`` (a daily run of a deployment that is up: the workers exist). Wall time: the DAG run's
``start_date`` -> ``end_date`` as Airflow records them (scheduling included). Throttle bound: as in
``bench/sync.py`` (the largest, over the limit classes, of requests / documented rate), from the simulator's own
per-class counts of that run; 429s are subtracted from the busiest class, so the bound is never overstated.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from sync import fmt_s, tenant_facts, tenant_spec, throttle_bound  # noqa: E402  (bench/sync.py)

DAG_ID = "msteams_sync"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=None, help="default: users / 10")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="documented limits x k (simulator and client)")
    parser.add_argument("--latency-ms", type=float, default=150)
    parser.add_argument("--jitter-ms", type=float, default=50)
    parser.add_argument("--shards", type=int, default=4, help="MSTEAMS_GRAPH_POOL_SLOTS (shards per fan-out table)")
    parser.add_argument("--parallelism", type=int, default=16, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from teamsops.simulator.testing import run_simulator
    from teamsops_airflow.local_airflow import run_airflow

    args = parse_args(argv)
    teams = args.teams if args.teams is not None else max(1, args.users // 10)
    workdir = Path(tempfile.mkdtemp(prefix="teamsops-bench-airflow-"))
    spec = tenant_spec(args.users, teams, args.seed, None)
    with run_simulator(spec=spec, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, throttle="documented",
                       throttle_scale=args.scale, seed=args.seed) as sim:  # fmt: skip
        facts = tenant_facts(sim)
        print(f"tenant: {facts['users']:,} users, {facts['teams']:,} teams, {facts['team_members']:,} memberships, "
              f"{facts['channels']:,} channels; throttle documented x {args.scale:g}, latency {args.latency_ms:g} +- "
              f"{args.jitter_ms:g} ms; {args.shards} shards per fan-out table; LocalExecutor parallelism "
              f"{args.parallelism}; data and Airflow home under {workdir}", flush=True)
        env = {"MSTEAMS_DATA_ROOT": f"file://{workdir / 'data'}", "MSTEAMS_RATE_LIMIT_SCALE": str(args.scale),
               "MSTEAMS_GRAPH_POOL_SLOTS": str(args.shards), "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
               "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        started = time.monotonic()
        with run_airflow(connections={"msteams_default": sim.connection()}, extra_env=env,
                         home=workdir / "airflow", setup=[["-m", "teamsops_airflow.setup"]]) as airflow:
            print(f"Airflow up in {time.monotonic() - started:.0f} s; unpausing {DAG_ID} ...", flush=True)
            airflow.wait_for_dag(DAG_ID, timeout=180, unpause=False)
            time.sleep(2.0)  # let the throttling windows of the set-up's requests (none expected) empty
            sim.reset_stats()
            # Unpausing the daily DAG makes the scheduler start its latest scheduled run at once: that run, the first
            # for the tenant (so a full one), is the one measured. (A triggered run as well would queue behind it and
            # mix its requests into the simulator's counts.)
            airflow.request("PATCH", f"/dags/{DAG_ID}", "admin", json={"is_paused": False}).raise_for_status()
            measured = [measure(airflow, sim, wait_for_first_run(airflow), "first run (scheduled, cold workers)")]
            time.sleep(2.0)
            sim.reset_stats()
            # max_active_runs=1: the triggered run starts once the first has ended, as tomorrow's run would.
            run_id = airflow.trigger(DAG_ID, {"full_refresh": True}, "admin")
            measured.append(measure(airflow, sim, run_id, "second full run (full_refresh, workers up)"))
            airflow.request("PATCH", f"/dags/{DAG_ID}", "admin", json={"is_paused": True})
        for figures in measured:
            report(args, facts, figures)
        summary(measured)
        if args.json:
            args.json.write_text(json.dumps({"facts": facts, "runs": measured}, indent=2, default=str))


def measure(airflow: Any, sim: Any, run_id: str, label: str) -> dict[str, Any]:
    """Wait for ``run_id`` to end; its DAG run, task instances and the simulator's counts (reset before the run)."""
    state = airflow.wait_for_state(DAG_ID, run_id, timeout=6 * 3600, poll=2.0)
    run = airflow.run(DAG_ID, run_id)
    resp = airflow.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", "admin", params={"limit": 200})
    resp.raise_for_status()
    return {"label": label, "state": state, "run": run, "tasks": resp.json()["task_instances"],
            "stats": sim.simulator.stats.snapshot(timestamps=False)}  # fmt: skip


def wait_for_first_run(airflow: Any, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = airflow.request("GET", f"/dags/{DAG_ID}/dagRuns", "admin", params={"limit": 1})
        resp.raise_for_status()
        if resp.json()["dag_runs"]:
            return str(resp.json()["dag_runs"][0]["dag_run_id"])
        time.sleep(0.5)
    raise SystemExit(f"the scheduler started no {DAG_ID} run within {timeout:.0f} s of unpausing it")


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def report(args: argparse.Namespace, facts: dict[str, int], figures: dict[str, Any]) -> None:
    state, run, tasks, stats = figures["state"], figures["run"], figures["tasks"], figures["stats"]
    wall = _ts(run["end_date"]) - _ts(run["start_date"])
    classes = dict(stats["limit_classes"])
    throttled = int(stats["throttled"])
    busiest = max((c for c in classes if c.startswith("teams.")), key=lambda c: classes[c], default=None)
    if busiest:
        classes[busiest] = max(0, classes[busiest] - throttled)  # never overstate the bound
    bound = throttle_bound(classes, 0.0, 0, args.scale, facts["users"])
    requests = stats["routes"].get("graph", {"count": 0})["count"]
    figures.update(wall_s=wall, bound=bound, ratio=wall / bound[0]["seconds"], throttled=throttled, requests=requests)
    print(f"\n{figures['label']}: {run['dag_run_id']}: {state}")
    print(f"  wall time (DAG run start -> end)  {fmt_s(wall)}")
    print(f"  throttle lower bound              {fmt_s(bound[0]['seconds'])}  ({bound[0]['class']})")
    print(f"  wall / bound                      {wall / bound[0]['seconds']:.3f}  (target <= 1.10)")
    print(f"  429s received                     {throttled:,} of {requests:,} Graph requests "
          f"({throttled / max(1, requests):.2%})")
    print("\nper task (as Airflow ran them; seconds from the run's start):")
    t0 = _ts(run["start_date"])
    rows = sorted(tasks, key=lambda t: (_ts(t["start_date"]) or 0, t["task_id"], t["map_index"]))
    for t in rows:
        start, end = _ts(t["start_date"]), _ts(t["end_date"])
        name = t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else "")
        span = f"{start - t0:7.1f} -> {end - t0:7.1f}" if start and end else "-"
        print(f"  {name:<24} {t['state'] or '-':<10} {span}")


def summary(measured: list[dict[str, Any]]) -> None:
    print("\ntargets (issue 3), per run:")
    for figures in measured:
        share = figures["throttled"] / max(1, figures["requests"])
        print(f"  {figures['label']}: {'MET ' if figures['ratio'] <= 1.10 else 'MISSED'} wall <= 1.1 x bound: "
              f"{figures['ratio']:.3f}; {'MET ' if share <= 0.02 else 'MISSED'} <= 2% answered 429: {share:.2%}")


if __name__ == "__main__":
    main()

"""Benchmark: does fan-out run at Graph's throttle ceiling, and do sharded workers together stay under it?

Starts the simulator with Graph's documented limits (GET /teams/{id}/members: 60 rps per app per tenant, 4 rps per
team) and 150 ms +- 50 ms latency, then fetches team members from many threads three ways:

1. unpaced (no client-side limiter): what a naive fan-out gets (429s, retries);
2. one client, 16 threads, the shared rate limiter at the documented limit;
3. two "shards" (two clients, each with ``share=2``, i.e. pacing at limit / 2), 8 threads each, run concurrently,
   as two Celery workers would.

Prints, side by side: requests, wall time, achieved rate (from the simulator's own request timestamps), the ceiling,
the peak requests in any 1-second window, and the 429s the simulator sent.

    .venv/bin/python bench/pacing.py [--requests 600]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import threading
import time

from teamsops.graph import GraphClient, GraphSettings, RateLimiter
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.testing import run_simulator

LIMIT = 60.0  # documented GET /teams/{id}/members rps per app per tenant


def fan_out(clients: list[GraphClient], team_ids: list[str], total: int, threads_per_client: int) -> float:
    cycle, lock = itertools.cycle(team_ids), threading.Lock()
    remaining = [total]

    def work(client: GraphClient) -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                team_id = next(cycle)
            client.get(f"/teams/{team_id}/members", params={"$select": "id"})

    threads = [threading.Thread(target=work, args=(c,)) for c in clients for _ in range(threads_per_client)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def measure(sim, name: str, clients: list[GraphClient], team_ids: list[str], total: int, threads: int) -> dict:
    for client in clients:
        client.token_roles()  # tokens first: measure Graph calls only
    time.sleep(1.5)  # let the previous scenario's throttling windows drain
    sim.reset_stats()
    wall = fan_out(clients, team_ids, total, threads)
    stats = sim.stats()
    graph = stats["routes"]["graph"]
    times = graph["timestamps"]
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"scenario": name, "requests sent": len(times), "wall s": round(wall, 2), "rate rps": round(rate, 1),
            "ceiling rps": LIMIT, "peak in 1 s": graph["max_in_1s"], "429s": stats["throttled"]}


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # the unpaced scenario logs every 429 retry otherwise
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    spec = TenantSpec(users=2000, teams=200, seed=5)
    with run_simulator(spec=spec, throttle="documented", latency_ms=150, jitter_ms=50) as sim:
        settings = GraphSettings.from_mapping({"client_id": sim.connection()["login"],
                                               "client_secret": sim.connection()["password"],
                                               **sim.connection()["extra"]})
        team_ids = list(sim.tenant.teams)
        rows = [
            measure(sim, "unpaced, 16 threads", [GraphClient(settings, rate_limiter=RateLimiter.unlimited())],
                    team_ids, args.requests, 16),
            measure(sim, "paced, 16 threads", [GraphClient(settings, rate_limiter=RateLimiter())],
                    team_ids, args.requests, 16),
            measure(sim, "2 shards share=2, 8 threads each",
                    [GraphClient(settings, rate_limiter=RateLimiter(share=2)) for _ in range(2)],
                    team_ids, args.requests, 8),
        ]
    header = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths)))


if __name__ == "__main__":
    main()

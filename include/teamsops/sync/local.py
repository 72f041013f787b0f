"""``sync_tenant``: run a whole sync in one process, the way the Airflow DAG runs it on workers.

Independent branches run concurrently (organization, SKUs, roles, users, teams ...), every table starts as soon as
its parents are written, and each shard of a fan-out table runs in its own thread with its OWN client - built by
``make_client(share)`` with a rate limiter at ``1/share`` of every limit, as each Celery worker's shard would -
so the shards together stay under the tenant's limits. For scripts, the demo and benchmarks; the DAG does the same
with Airflow tasks (see :data:`teamsops.sync.TABLES` for the dependencies).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from teamsops.sync.models import SyncConfig, TableResult
from teamsops.sync.plan import plan_run
from teamsops.sync.publishing import publish
from teamsops.sync.run import run_table
from teamsops.sync.tables import TABLES

__all__ = ["sync_tenant"]



def sync_tenant(make_client: Callable[..., Any], root: Any, run_id: str, *, config: SyncConfig | None = None,
                full_refresh: bool = False, parallel: bool = True) -> dict[str, Any]:
    """Plan, extract every table (concurrently where the dependencies allow) and publish; returns the manifest.

    :param make_client: ``make_client(share)`` or ``make_client(share, shard)`` returns a new GraphClient whose
        RateLimiter paces at ``1/share`` of every limit: ``RateLimiter(share=share, shard=shard,
        headroom=config.rate_headroom)``. Every task gets its own client, as every Airflow task does (which also keeps
        each table's request and 429 counts its own): share 1 (shard None) for the plan and the unsharded tables,
        ``config.shards`` and the shard index for each shard of a fan-out table. A two-argument factory gets the
        index, so the shards' limiters take turns on one time grid instead of bunching. All clients are made, and
        sign in, while the plan runs; each is closed when its task ends.
    :param parallel: False runs the tables one after another (still correct, only slower).
    """
    config = config or SyncConfig()
    client_for = _factory(make_client)
    tasks = [(name, shard) for name, spec in TABLES.items() for shard in range(config.shards if spec.fanout else 1)]

    def new_client(task: tuple[str, int]) -> Any:
        name, shard = task
        sharded = TABLES[name].fanout and config.shards > 1
        return client_for(config.shards if sharded else 1, shard if sharded else None)

    # Every task's client is made now and signs in while the plan runs (a sign-in costs a few round trips), so a task
    # sends its first request as soon as its parents are written. Nothing waits for these sign-ins: a task whose
    # client is still signing in waits for that token, and a sign-in that failed is retried by the task itself,
    # which then reports the error.
    clients = {task: new_client(task) for task in tasks}
    try:
        with ThreadPoolExecutor(max_workers=len(clients), thread_name_prefix="sync-sign-in") as sign_in:
            for client in clients.values():
                sign_in.submit(client.token_claims)
            with client_for(1, None) as client:
                plan = plan_run(client, root, run_id, full_refresh=full_refresh)

            def run(task: tuple[str, int]) -> TableResult:
                name, shard = task
                with clients.pop(task) as client:
                    return run_table(client, root, plan, name, config=config, shard=shard)

            results = _run_in_order(tasks, run, workers=len(tasks) if parallel else 1)
    finally:
        for client in clients.values():  # tasks that never started (a failure stopped the run)
            client.close()
    return publish(root, plan, results)


def _factory(make_client: Callable[..., Any]) -> Callable[[int, int | None], Any]:
    """``make_client`` as a two-argument factory; a one-argument one (``make_client(share)``) is not told the shard."""
    try:
        takes_shard = len(inspect.signature(make_client).parameters) >= 2
    except (TypeError, ValueError):  # builtins / C callables without a signature
        takes_shard = False
    if takes_shard:
        return make_client
    return lambda share, _shard: make_client(share)


def _run_in_order(tasks: list[tuple[str, int]], run: Callable[[tuple[str, int]], TableResult],
                  workers: int) -> list[TableResult]:
    """Run tasks as soon as every task of their parent tables is done; the first failure stops new starts."""
    pending = list(tasks)
    done_tables: dict[str, int] = {}
    need = {name: sum(1 for t, _ in tasks if t == name) for name, _ in tasks}
    results: list[TableResult] = []
    running: dict[Future[TableResult], tuple[str, int]] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync-table") as pool:
        while pending or running:
            ready = [t for t in pending if all(done_tables.get(p, 0) == need[p] for p in TABLES[t[0]].parents)]
            if not ready and not running:
                raise RuntimeError(f"no task can start: {pending} wait for tables that are not in the run")
            for task in ready[: max(0, workers - len(running))]:
                pending.remove(task)
                running[pool.submit(run, task)] = task
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name, _shard = running.pop(future)
                error = future.exception()
                if error is not None:
                    pending.clear()  # start nothing new; let what runs finish, then fail
                    wait(running)
                    raise error
                results.append(future.result())
                done_tables[name] = done_tables.get(name, 0) + 1
    return results

"""The project's own set-up in an Airflow deployment: ``python -m teamsops_airflow.setup``.

Creates (or updates) the Airflow pool ``msteams_graph`` that the sync DAGs' fan-out shards run in. A task that
names a missing pool stays ``scheduled`` forever with only a scheduler warning, so this must run once after
``airflow db migrate`` (``make demo`` and the deployment's init step run it) and again whenever
``MSTEAMS_GRAPH_POOL_SLOTS`` changes.

Why a pool, and its size: each fan-out table of a sync (installed apps, team members, channels) is mapped over
``MSTEAMS_GRAPH_POOL_SLOTS`` shards (default 4), and each shard paces at 1/shards of the tenant's documented limit of
its own class (installedApps GET, members GET, channels GET are separate Teams limits). The three tables therefore
run side by side at their full ceilings only if all their shards can run at once: the pool gets shards x 3 slots.
A smaller pool is safe (it only queues shards) but slower: with 4 slots the installedApps shards hold the pool for
the whole run and members and channels wait behind them. The pool bounds the shard tasks a cluster runs at once;
the rate bound comes from the shards' pacing (one run per tenant at a time: ``max_active_runs=1``).

It goes through Airflow's own local API client, the code path of ``airflow pools set`` (needs the metadata DB).
"""

from __future__ import annotations

import argparse
import logging
import sys

from teamsops_airflow.sync_tasks import FANOUT_TABLES, GRAPH_POOL, POOL_SLOTS_ENV, SyncSettingsError, pool_slots

log = logging.getLogger(__name__)

POOL_DESCRIPTION = (
    f"Microsoft Graph fan-out shards of the msteams_sync DAGs: {len(FANOUT_TABLES)} fan-out tables x {POOL_SLOTS_ENV} "
    "shards, each pacing at 1/shards of the tenant's Graph limit of its class. Change the shards there and re-run "
    "python -m teamsops_airflow.setup."
)


def slots_for(shards: int) -> int:
    """Pool slots that let every shard of every fan-out table run at once."""
    return shards * len(FANOUT_TABLES)


def ensure_pool(shards: int | None = None) -> tuple[str, int]:
    """Create or update the ``msteams_graph`` pool for ``shards`` shards per fan-out table (default
    ``MSTEAMS_GRAPH_POOL_SLOTS``); return ``("created" | "updated" | "unchanged", slots)``."""
    from airflow.api.client import get_current_api_client
    from airflow.exceptions import PoolNotFound

    shards = pool_slots() if shards is None else shards
    if shards < 1:
        raise SyncSettingsError(f"A sync needs at least 1 shard per fan-out table, got {shards}.")
    wanted = slots_for(shards)
    client = get_current_api_client()
    try:
        _, current, description, _, _ = client.get_pool(name=GRAPH_POOL)
    except PoolNotFound:
        current, description = None, None
    if current == wanted and description == POOL_DESCRIPTION:
        return "unchanged", wanted
    client.create_pool(name=GRAPH_POOL, slots=wanted, description=POOL_DESCRIPTION, include_deferred=False)
    return ("created" if current is None else "updated"), wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teamsops_airflow.setup", description=__doc__.partition("\n")[0])
    parser.add_argument("--shards", type=int, default=None,
                        help=f"shards per fan-out table (default: ${POOL_SLOTS_ENV} or 4); the pool gets "
                             f"{len(FANOUT_TABLES)} x that many slots")  # fmt: skip
    args = parser.parse_args(argv)
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        outcome, slots = ensure_pool(args.shards)
    except SyncSettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as err:
        # SQLite says "no such table", PostgreSQL "relation ... does not exist", MySQL "... doesn't exist".
        if not any(text in str(err) for text in ("no such table", "does not exist", "doesn't exist")):
            raise
        print("error: the Airflow metadata database is not initialised: run `airflow db migrate` first.",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"Pool {GRAPH_POOL}: {outcome} ({slots} slots).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The project's own set-up in an Airflow deployment: ``python -m teamsops_airflow.setup``.

Creates (or updates) the Airflow pool ``msteams_graph`` that the sync DAGs' fan-out shards run in. A task that
names a missing pool stays ``scheduled`` forever with only a scheduler warning, so this must run once after
``airflow db migrate`` (``make demo`` and the deployment's init step run it) and again whenever
``MSTEAMS_GRAPH_POOL_SLOTS`` changes.

Why a pool: each shard paces its Graph calls at 1/slots of the tenant's documented limits, so the pool's slot
count must equal the shard count (``MSTEAMS_GRAPH_POOL_SLOTS``, default 4). The pool then guarantees that no more
than ``slots`` shards run at once across all workers, which keeps their combined rate under Graph's limit.

It goes through Airflow's own local API client, the code path of ``airflow pools set`` (needs the metadata DB).
"""

from __future__ import annotations

import argparse
import logging
import sys

from teamsops_airflow.sync_tasks import GRAPH_POOL, POOL_SLOTS_ENV, SyncSettingsError, pool_slots

log = logging.getLogger(__name__)

POOL_DESCRIPTION = (
    "Microsoft Graph fan-out shards of the msteams_sync DAGs. Each running shard paces at 1/slots of the tenant's "
    f"Graph limits: keep slots equal to {POOL_SLOTS_ENV} (set it there and re-run python -m teamsops_airflow.setup)."
)


def ensure_pool(slots: int | None = None) -> tuple[str, int]:
    """Create or update the ``msteams_graph`` pool; return ``("created" | "updated" | "unchanged", slots)``."""
    from airflow.api.client import get_current_api_client
    from airflow.exceptions import PoolNotFound

    wanted = pool_slots() if slots is None else slots
    if wanted < 1:
        raise SyncSettingsError(f"The pool needs at least 1 slot, got {wanted}.")
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
    parser.add_argument("--slots", type=int, default=None,
                        help=f"pool slots = shards per fan-out table (default: ${POOL_SLOTS_ENV} or 4)")  # fmt: skip
    args = parser.parse_args(argv)
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        outcome, slots = ensure_pool(args.slots)
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

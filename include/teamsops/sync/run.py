"""``run_table``: extract one table (or one shard of a fan-out table) of a planned run into its Parquet part."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from teamsops.sync import deltasync, fanout, simple
from teamsops.sync.errors import SyncError
from teamsops.sync.job import TableJob
from teamsops.sync.models import RunPlan, SyncConfig, TableResult
from teamsops.sync.plan import tenant_of
from teamsops.sync.tables import table_spec

__all__ = ["EXTRACTORS", "run_table"]

log = logging.getLogger(__name__)

EXTRACTORS: dict[str, Callable[[TableJob], TableResult]] = {
    "organization": simple.extract_collection,
    "subscribed_skus": simple.extract_collection,
    "role_definitions": simple.extract_collection,
    "role_assignments": simple.extract_collection,
    "users": deltasync.extract_users,
    "user_licenses": simple.extract_user_licenses,
    "teams": deltasync.extract_teams,
    "team_members": fanout.extract_team_members,
    "channels": fanout.extract_channels,
    "user_installed_apps": fanout.extract_user_installed_apps,
}


def run_table(client: Any, root: Any, plan: RunPlan | dict[str, Any], table: str, *,
              config: SyncConfig | None = None, shard: int = 0) -> TableResult:
    """Write ``{root}/{tenant}/{table}/run_id={run_key}/part-{shard:05d}.parquet`` and say what it took.

    Idempotent: a rerun overwrites its own part. Fan-out tables read their parent's output of this run and handle
    only the parents of ``shard`` (of ``config.shards``); other tables do their work in shard 0 and return an empty
    result (``path`` None, ``mode`` "skipped") for any other shard.

    :raises GraphError: Graph refused for good (``GraphForbidden`` names the missing permission).
    :raises SyncError: a table this one reads has not been written in this run, or the client's tenant is not the
        plan's.
    """
    plan = RunPlan.coerce(plan)
    config = config or SyncConfig()
    spec = table_spec(table)
    if not 0 <= shard < config.shards:
        raise ValueError(f"shard must be in 0..{config.shards - 1} (config.shards={config.shards}), not {shard}")
    if not spec.fanout and shard > 0:
        return TableResult(table=table, shard=shard, path=None, rows=0, requests=0, throttled=0, seconds=0.0,
                           mode="skipped", extra={"reason": f"{table} is not sharded: shard 0 writes it"})
    tenant = tenant_of(client)
    if tenant != plan.tenant_id:
        raise SyncError(f"the client is signed in to tenant {tenant} but the plan is for tenant {plan.tenant_id}: "
                        "use the same connection for every task of a run")
    job = TableJob(client=client, root=root, plan=plan, spec=spec, config=config, shard=shard)
    log.info("%s: %s run %s of tenant %s", job.label, plan.mode, plan.run_id, plan.tenant_id)
    return EXTRACTORS[table](job)

"""Task callables of the ``msteams_sync`` DAGs: Airflow glue between a connection, the data root and the engine.

The engine (``teamsops.sync``, Airflow-free) does the work; this module only

* turns the Airflow connection into Graph clients (one per task; fan-out shards pace at 1/shards of the limits),
* picks the data root (``MSTEAMS_DATA_ROOT``, see :mod:`teamsops_airflow.storage`) and the tuning from the
  environment, once, in the ``plan`` task, so that every task of a run uses the same values even if a worker's
  environment differs,
* keeps XCom small: the run description (plan, root URL, config) and per-table results (paths and counts).

Environment (read by the ``plan`` task of each run; defaults in brackets):

``MSTEAMS_GRAPH_POOL_SLOTS`` [4]
    shards per fan-out table (read where the DAG file is parsed: the mapped shards are part of the DAG, and the plan
    gets their number from it), and the slots of the ``msteams_graph`` pool (``python -m teamsops_airflow.setup``).
``MSTEAMS_SYNC_WORKERS_PER_SHARD`` [8]
    concurrent Graph requests in one shard (threads sharing one client and its rate limiter).
``MSTEAMS_INSTALLED_APPS_FRACTION`` [1.0] / ``MSTEAMS_INSTALLED_APPS_FULL_EVERY`` [7]
    read installed apps for this fraction of users per run, covering every user at least every N runs.
``MSTEAMS_RATE_LIMIT_SCALE`` [1.0]
    multiply the Graph limits the client paces at. Leave at 1 for Microsoft Graph; only for the simulator started
    with ``--throttle-scale``.

Heavy imports (the engine, pyarrow, pandas) happen inside the functions: DAG files import this module at parse time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from teamsops.sync.names import FANOUT_TABLES, TABLE_ORDER, TABLE_PARENTS

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from teamsops.graph import GraphClient
    from teamsops.sync import SyncConfig

log = logging.getLogger(__name__)

GRAPH_POOL = "msteams_graph"
POOL_SLOTS_ENV = "MSTEAMS_GRAPH_POOL_SLOTS"
DEFAULT_POOL_SLOTS = 4

# The DAG's shape (tables, their parents, the fan-out tables) comes from the engine's plain-Python table names
# module, which imports neither pyarrow nor pandas: DAG files read it at parse time.
__all__ = ["FANOUT_TABLES", "GRAPH_POOL", "TABLE_ORDER", "TABLE_PARENTS", "SyncSettingsError", "extract",
           "flatten_results", "graph_client", "plan", "pool_slots", "publish", "rate_scale", "sync_config"]  # fmt: skip


class SyncSettingsError(ValueError):
    """A sync setting in the environment is invalid; the message names the variable and what it accepts."""


# ------------------------------------------------------------------------------------------ settings
def _env_number(name: str, default: float, kind: type, low: float, high: float | None = None,
                low_inclusive: bool = True) -> Any:  # fmt: skip
    raw = os.environ.get(name, "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    in_range = value is not None and (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not in_range:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise SyncSettingsError(f"{name}={raw!r} is invalid: expected {'an integer' if kind is int else 'a number'} "
                                f"{bound} (default {default}).")  # fmt: skip
    return value


def pool_slots() -> int:
    """Shards per fan-out table (``MSTEAMS_GRAPH_POOL_SLOTS``, default 4; the ``msteams_graph`` pool gets this many
    slots per fan-out table, see :mod:`teamsops_airflow.setup`)."""
    return _env_number(POOL_SLOTS_ENV, DEFAULT_POOL_SLOTS, int, 1)


def rate_scale() -> float:
    """``MSTEAMS_RATE_LIMIT_SCALE`` (1 for Microsoft Graph; the simulator's ``--throttle-scale`` otherwise)."""
    return _env_number("MSTEAMS_RATE_LIMIT_SCALE", 1.0, float, 0, low_inclusive=False)


def sync_config(shards: int | None = None) -> SyncConfig:
    """The engine's tuning from the environment (see the module docstring); ``shards`` as the DAG fixed it."""
    from teamsops.sync import SyncConfig

    return SyncConfig(
        shards=pool_slots() if shards is None else shards,
        workers_per_shard=_env_number("MSTEAMS_SYNC_WORKERS_PER_SHARD", 8, int, 1, 64),
        installed_apps_fraction=_env_number("MSTEAMS_INSTALLED_APPS_FRACTION", 1.0, float, 0, 1, low_inclusive=False),
        installed_apps_full_every=_env_number("MSTEAMS_INSTALLED_APPS_FULL_EVERY", 7, int, 1),
    )


# ------------------------------------------------------------------------------------------ clients and roots
@contextmanager
def graph_client(conn_id: str, *, share: int = 1, scale: float = 1.0, max_connections: int = 100,
                 headroom: float = 0.9, shard: int | None = None) -> Iterator[GraphClient]:  # fmt: skip
    """A Graph client for ``conn_id`` pacing at ``headroom`` x ``scale``/``share`` of Graph's limits (closed on exit).

    Built here rather than taken from ``MSTeamsHook.client`` because each shard needs its own limiter share, and its
    shard index (the shards take turns on a common time grid, see :class:`teamsops.graph.RateLimiter`).

    The client starts signing in at once, in a thread, so the sign-in's round trips overlap what the task does
    before its first request (importing the engine, reading its parents). Nothing waits for that thread: the task's
    first request waits for the same token, and a sign-in that failed is tried again there and reported as usual.
    """
    from concurrent.futures import ThreadPoolExecutor

    from airflow.sdk.log import mask_secret

    from teamsops.graph import GraphClient, RateLimiter
    from teamsops_airflow.hooks import MSTeamsHook

    settings = MSTeamsHook(conn_id).settings
    client = GraphClient(settings, rate_limiter=RateLimiter(scale=scale, share=share, shard=shard, headroom=headroom),
                         on_token=mask_secret,
                         max_connections=max_connections)  # fmt: skip
    signing_in = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-sign-in")
    try:
        signing_in.submit(client.token_claims)
        yield client
    finally:
        signing_in.shutdown(wait=True, cancel_futures=True)  # never close the client under a sign-in in flight
        client.close()


def _root(run: Mapping[str, Any]) -> ObjectStoragePath:
    from teamsops_airflow.storage import data_root

    return data_root(run["root"])


def _config(run: Mapping[str, Any]) -> SyncConfig:
    from teamsops.sync import SyncConfig

    return SyncConfig.from_dict(run["config"])


# ------------------------------------------------------------------------------------------ task callables
def plan(conn_id: str, airflow_run_id: str, *, full_refresh: bool = False, shards: int | None = None) -> dict[str, Any]:
    """Fix everything the run's tasks share: the data root, the tuning, the mode and previous deltaLinks.

    ``shards``: the number of mapped shards of the DAG's fan-out tasks (default: ``MSTEAMS_GRAPH_POOL_SLOTS``).

    Returns the run description every other task receives through XCom (small: no data).
    """
    from teamsops_airflow.storage import data_root, prepare_root

    root = data_root()
    config = sync_config(shards)
    scale = rate_scale()
    with graph_client(conn_id, scale=scale) as client:
        from teamsops.sync import plan_run  # while the client signs in

        prepare_root(root)
        # The engine derives a folder-safe key from the run id: a rerun of the same Airflow run overwrites its files.
        run_plan = plan_run(client, root, airflow_run_id, full_refresh=bool(full_refresh))
    described = run_plan.to_dict()
    log.info("Sync of %s (tenant %s) into %s: mode %s (%s); %d shard(s) per fan-out table.", conn_id,
             described.get("tenant_id"), root, described.get("mode"), described.get("reason"), config.shards)  # fmt: skip
    return {
        "conn_id": conn_id,
        "root": str(root),
        "plan": described,
        "config": config.to_dict(),
        "rate_scale": scale,
        "shards": list(range(config.shards)),
    }


def extract(run: Mapping[str, Any], table: str, shard: int = 0) -> dict[str, Any]:
    """Extract one table (or one shard of a fan-out table) into this run's folder; return its result (counts)."""
    if table not in TABLE_PARENTS:
        raise ValueError(f"unknown table {table!r}; known: {', '.join(TABLE_ORDER)}")
    config = _config(run)
    fanout = table in FANOUT_TABLES
    share = config.shards if fanout else 1
    with graph_client(run["conn_id"], share=share, scale=run["rate_scale"], headroom=config.rate_headroom,
                      shard=shard if fanout and share > 1 else None,
                      max_connections=max(config.workers_per_shard * 2, 16)) as client:  # fmt: skip
        from teamsops.sync import RunPlan, run_table  # the engine (pyarrow) loads while the client signs in

        result = run_table(client, _root(run), RunPlan.from_dict(run["plan"]), table, config=config, shard=shard)
    return result.to_dict()


def flatten_results(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Table results as one list: plain tasks give a dict, mapped tasks a (lazy) sequence of dicts.

    A mapped task's results are read by index up to ``len()``: iterating Airflow's lazy sequence probes one XCom
    past the end, which the task log reports as an error ("XCom not found").
    """
    flat: list[dict[str, Any]] = []
    for item in results:
        if isinstance(item, Mapping):
            flat.append(dict(item))
        else:
            flat.extend(dict(item[i]) for i in range(len(item)))
    return flat


def publish(run: Mapping[str, Any], results: Iterable[Any]) -> dict[str, Any]:
    """Validate the run and publish it (``latest.json`` last); return a per-table summary for XCom and assets.

    The engine logs what it published; this only keeps the XCom small (no deltaLinks, no per-shard detail).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from teamsops.sync import RunPlan, SyncValidationError
    from teamsops.sync import publish as publish_run

    flat = flatten_results(results)
    try:
        manifest = publish_run(_root(run), RunPlan.from_dict(run["plan"]), flat)
    except SyncValidationError as err:
        # Validating the same files again gives the same answer: fail now instead of burning retries. Nothing was
        # published, so the previous run stays the one readers (and the next run's deltaLinks) see.
        raise AirflowFailException(f"{err}. Re-run the DAG to extract again.") from err
    summary = {
        "run_id": manifest["run_id"],
        "tenant_id": manifest["tenant_id"],
        "mode": manifest["mode"],
        "reason": manifest.get("reason"),
        "tables": {name: {key: info.get(key) for key in ("rows", "path", "mode", "requests", "throttled")}
                   for name, info in manifest["tables"].items()},
        "totals": manifest.get("totals", {}),
    }
    return summary

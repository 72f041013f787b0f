"""Smaller promises of the engine: delta copies merge the way Graph documents them, a rerun of a task rewrites the
same part, shards split the parents without overlap, progress lines carry the figures operators need, and a plan
cannot be used with another tenant's client."""

from __future__ import annotations

import logging
import uuid

import pytest

from teamsops.sync import TABLE_ORDER, TABLES, SyncConfig, SyncError, plan_run, publish, run_table, table_frame
from teamsops.sync.deltasync import _fix_late_copies, apply_user, merge_item
from teamsops.sync.job import TableJob, shard_slice
from teamsops.sync.models import RunPlan
from teamsops.sync.storage import iter_batches

USER_COLUMNS = TABLES["users"].columns


@pytest.mark.parametrize("entries", [
    [{"id": "old", "@removed": {"reason": "deleted"}}, {"id": "new"}],
    [{"id": "new"}, {"id": "old", "@removed": {"reason": "deleted"}}],  # ordering is not guaranteed by Graph
])
def test_manager_delta_ends_with_the_new_manager_in_any_order(entries):
    previous = {**dict.fromkeys(USER_COLUMNS), "id": "u1", "manager_id": "old", "department": "Sales"}
    row = apply_user(USER_COLUMNS)(previous, {"id": "u1", "manager@delta": entries})
    assert row["manager_id"] == "new" and row["department"] == "Sales"  # absent properties keep their value


def test_copies_of_one_object_merge_and_a_removal_wins():
    first = {"id": "g", "displayName": "A", "members@delta": [{"id": "u1"}]}
    second = {"id": "g", "displayName": "B", "members@delta": [{"id": "u2"}]}
    merged = merge_item(first, second)
    assert merged["displayName"] == "B" and [m["id"] for m in merged["members@delta"]] == ["u1", "u2"]
    assert merge_item(merged, {"id": "g", "@removed": {"reason": "changed"}}) == {"id": "g",
                                                                                 "@removed": {"reason": "changed"}}


def test_a_late_copy_is_merged_into_the_row_already_written(tenant_sim, make_client, root):
    """Replays: an object that comes again later in an initial round updates (or removes) its written row."""
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    run_table(client, root, plan, "users")
    job = TableJob(client=client, root=root, plan=plan, spec=TABLES["users"], config=SyncConfig())
    ids = sorted(tenant_sim.tenant.users)
    late = {ids[0]: {"id": ids[0], "jobTitle": "Replayed"}, ids[1]: {"id": ids[1], "@removed": {"reason": "changed"}}}
    rows = _fix_late_copies(job, late, apply_user(USER_COLUMNS))
    frame = {r["id"]: r for b in iter_batches(job.run_parts("users")) for r in b.to_pylist()}
    assert rows == len(ids) - 1 == len(frame)
    assert frame[ids[0]]["jobTitle"] == "Replayed" and ids[1] not in frame
    assert [p.name for p in job.path(f"users/run_id={plan.run_key}").iterdir()] == ["part-00000.parquet"]


def test_a_rerun_of_a_task_rewrites_its_part(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    first = run_table(client, root, plan, "users")
    second = run_table(client, root, plan, "users")
    assert first.path == second.path and first.rows == second.rows == len(tenant_sim.tenant.users)
    assert first.mode == "full" and first.delta_link and first.requests >= 1


def test_shards_split_the_parents_without_overlap(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    config = SyncConfig(shards=3, workers_per_shard=2)
    run_table(client, root, plan, "teams", config=config)
    parts = [run_table(client, root, plan, "channels", config=config, shard=s) for s in range(3)]
    teams = len(tenant_sim.tenant.teams)
    assert [p.extra["parents"] for p in parts] == [teams // 3 + (s < teams % 3) for s in range(3)]  # dealt evenly
    channel_teams = [{t for batch in iter_batches([job_path(root, plan, p.file)], ["team_id"])
                      for t in batch.column(0).to_pylist()} for p in parts]
    union = set().union(*channel_teams)
    assert sum(map(len, channel_teams)) == len(union)  # no team in two shards
    assert union == {row["team_id"] for row in tenant_sim.tenant.snapshot("channels")}
    skipped = run_table(client, root, plan, "users", config=config, shard=1)
    assert skipped.mode == "skipped" and skipped.path is None
    with pytest.raises(ValueError, match="shard must be in 0..2"):
        run_table(client, root, plan, "channels", config=config, shard=3)


def test_shard_slice_deals_sorted_distinct_ids_round_robin():
    import pyarrow as pa

    ids = pa.array(["d", "a", None, "c", "b", "a", "e"])
    slices = [shard_slice(ids, s, 2) for s in range(2)]
    assert slices == [["a", "c", "e"], ["b", "d"]]  # every shard ceil(n/N) or floor(n/N), no id twice
    assert shard_slice(ids, 0, 1) == ["a", "b", "c", "d", "e"]


def job_path(root, plan, relative):
    path = root / plan.tenant_id
    for part in relative.split("/"):
        path = path / part
    return path


def test_progress_lines_show_pages_rows_requests_429s_rate_and_eta(tenant_sim, make_client, root, caplog):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    run_table(client, root, plan, "users")
    tenant_sim.inject("429", times=1, path="/teamwork/installedApps", retry_after=0.01)
    with caplog.at_level(logging.INFO, logger="teamsops.sync.progress"):
        result = run_table(client, root, plan, "user_installed_apps",
                           config=SyncConfig(workers_per_shard=2, progress_interval=0))
    lines = [r.getMessage() for r in caplog.records if r.name == "teamsops.sync.progress"]
    assert any("ETA" in line and "of" in line for line in lines), lines
    final = lines[-1]
    assert final.startswith("user_installed_apps: ") and "1 answered 429" in final and "req/s" in final
    assert result.throttled == 1 and result.requests == len(tenant_sim.tenant.users) + 1


def test_a_plan_cannot_be_used_with_another_tenants_client(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1").to_dict()
    plan["tenant_id"] = "00000000-0000-0000-0000-000000000001"
    with pytest.raises(SyncError, match="use the same connection"):
        run_table(client, root, RunPlan.from_dict(plan), "users")


def test_table_frame_before_anything_was_published(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    with pytest.raises(SyncError, match="run the sync first"):
        table_frame(root, client.token_claims()["tid"], "users")


def test_sync_tenant_runs_branches_and_shards_concurrently_under_the_limits(tenant_sim, root, matches_tenant):
    """The in-process orchestrator: each shard with its own client pacing at limit/shards, against a simulator that
    enforces the documented limits: no 429 at all, while an unpaced burst on the same tenant is throttled."""
    from concurrent.futures import ThreadPoolExecutor

    from teamsops.graph import GraphClient, GraphSettings, GraphThrottled, RateLimiter
    from teamsops.sync import sync_tenant

    tenant_sim.configure(throttle="documented")
    conn = tenant_sim.connection()
    settings = GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                           **conn["extra"]})

    def make_client(share: int) -> GraphClient:
        return GraphClient(settings, rate_limiter=RateLimiter(share=share))

    manifest = sync_tenant(make_client, root, "local-1", config=SyncConfig(shards=3, workers_per_shard=4))
    assert manifest["totals"]["throttled"] == 0 and tenant_sim.stats()["throttled"] == 0
    assert [p["shard"] for p in manifest["tables"]["user_installed_apps"]["parts"]] == [0, 1, 2]
    matches_tenant(tenant_sim, root, manifest["tenant_id"])

    def burst(user_id: str) -> None:
        try:
            unpaced.get(f"/users/{user_id}/teamwork/installedApps")
        except GraphThrottled:
            pass  # the retry budget ran out: it was throttled, which is all this part shows

    with GraphClient(settings, rate_limiter=RateLimiter.unlimited(), max_attempts=1) as unpaced:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(burst, list(tenant_sim.tenant.users)))
        assert unpaced.stats.snapshot()["throttled"] > 0  # the limits are live: pacing is what avoided the 429s


def test_an_object_store_without_rename_works_the_same(tenant_sim, make_client, matches_tenant):
    """``memory://`` stands in for abfs/s3 here: no local paths, no rename - latest.json is one PUT."""
    from upath import UPath

    from teamsops.sync import read_latest

    store = UPath(f"memory://sync-test-{uuid.uuid4().hex}")
    client = make_client(tenant_sim)
    for run_id in ("run-1", "run-2"):
        plan = plan_run(client, store, run_id)
        results = [run_table(client, store, plan, t) for t in TABLE_ORDER]
        manifest = publish(store, plan, results)
    assert manifest["mode"] == "incremental"
    latest = read_latest(store, plan.tenant_id)
    assert latest["tables"]["users"]["path"].startswith("memory://")
    matches_tenant(tenant_sim, store, plan.tenant_id)

"""Publishing is the only step that changes what readers see: a run that fails before it leaves ``latest.json``
untouched and a rerun completes; a missing permission fails fast and names the permission; a validation mismatch
publishes nothing and names the table and the numbers."""

from __future__ import annotations

import pytest

from teamsops.graph import GraphForbidden, GraphServerError
from teamsops.simulator.generator import READ_ROLES, WRITE_ROLES
from teamsops.sync import TABLE_ORDER, TABLES, SyncConfig, SyncError, SyncValidationError, plan_run, publish, \
    run_table

CONFIG = SyncConfig(shards=2, workers_per_shard=4)


def _latest_bytes(root, tenant_id: str) -> bytes:
    return (root / tenant_id / "latest.json").read_bytes()


def _graph_requests(sim) -> int:
    return sim.stats()["routes"].get("graph", {}).get("count", 0)


def test_failure_before_publish_leaves_latest_untouched_and_a_rerun_completes(tenant_sim, make_client, root, sync,
                                                                             matches_tenant):
    client = make_client(tenant_sim)
    first = sync(client, root, "run-1", CONFIG)
    tenant_id = first.plan.tenant_id
    before = _latest_bytes(root, tenant_id)
    user = next(iter(tenant_sim.tenant.users))
    client.patch(f"/users/{user}", json={"department": "Moved"})

    # Attempt 1 of run-2: Graph keeps failing on channels until the client's retry budget is spent.
    flaky = make_client(tenant_sim, max_attempts=2, max_retry_wait=1)
    tenant_sim.inject("503", times=1000, path="/channels", retry_after=0.01)
    plan = plan_run(flaky, root, "run-2")
    results = []
    with pytest.raises(GraphServerError):
        for table in TABLE_ORDER:
            for shard in range(CONFIG.shards if TABLES[table].fanout else 1):
                results.append(run_table(flaky, root, plan, table, config=CONFIG, shard=shard))
    tenant_sim.simulator.faults.clear()
    # A killed attempt with more shards left a part behind, which must not end up in the published folder.
    folder = root / tenant_id / "team_members" / f"run_id={plan.run_key}"
    stray = folder / "part-00002.parquet"
    stray.write_bytes((folder / "part-00000.parquet").read_bytes())
    assert _latest_bytes(root, tenant_id) == before  # nothing published: readers still see run-1

    # The rerun (same run id, a new plan) overwrites its own files and publishes.
    rerun = sync(client, root, "run-2", CONFIG)
    assert rerun.plan.previous_run_id == "run-1" and rerun.manifest["mode"] == "incremental"
    assert not stray.exists()
    matches_tenant(tenant_sim, root, tenant_id)

    # Re-running a run that was already published builds on the run before it, not on itself.
    again = sync(client, root, "run-2", CONFIG)
    assert again.plan.previous_run_id == "run-1" and again.plan.mode == "incremental"
    matches_tenant(tenant_sim, root, tenant_id)


def test_missing_permission_fails_fast_naming_it(tenant_sim, make_client, root):
    app_id = tenant_sim.credentials()["app_id"]
    tenant_sim.set_app(app_id, roles=(READ_ROLES | WRITE_ROLES) - {"TeamMember.Read.All", "TeamMember.ReadWrite.All"})
    client = make_client(tenant_sim)
    graph_before = _graph_requests(tenant_sim)
    with pytest.raises(GraphForbidden) as err:
        plan_run(client, root, "run-1")
    assert "TeamMember.Read.All" in str(err.value) and err.value.required_permissions == ("TeamMember.Read.All",)
    assert "team_members" in str(err.value) and "Grant admin consent" in str(err.value)
    assert _graph_requests(tenant_sim) == graph_before  # failed before reading anything
    assert not (root / client.token_claims()["tid"] / "latest.json").exists()


def test_permission_revoked_mid_run_fails_on_the_first_403(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    for table in ("users", "teams"):
        run_table(client, root, plan, table)
    app_id = tenant_sim.credentials()["app_id"]
    tenant_sim.set_app(app_id, roles=(READ_ROLES | WRITE_ROLES) - {"TeamMember.Read.All", "TeamMember.ReadWrite.All"})
    revoked = make_client(tenant_sim)  # a new token carries the new roles
    sent = revoked.stats.snapshot()["sent"]
    with pytest.raises(GraphForbidden) as err:
        run_table(revoked, root, plan, "team_members", config=SyncConfig(workers_per_shard=1))
    assert "TeamMember.Read.All" in err.value.required_permissions
    assert "TeamMember.Read.All" in str(err.value)
    assert revoked.stats.snapshot()["sent"] - sent == 1  # no retries of a 403


def test_a_table_whose_parent_has_not_run_says_so(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    with pytest.raises(SyncError, match="run teams before channels"):
        run_table(client, root, plan, "channels")


def test_orphan_members_fail_validation_and_publish_nothing(tenant_sim, make_client, root, sync):
    client = make_client(tenant_sim)
    first = sync(client, root, "run-1")
    tenant_id = first.plan.tenant_id
    before = _latest_bytes(root, tenant_id)
    plan = plan_run(client, root, "run-2", full_refresh=True)
    results = []
    for table in TABLE_ORDER:
        if table == "teams":
            # A user created and added to a team after the users table was read: the members table would name a
            # user the users table does not have.
            user = client.post("/users", json={
                "accountEnabled": True, "displayName": "Late Comer", "mailNickname": "late.comer",
                "userPrincipalName": f"late.comer@{tenant_sim.tenant.verified_domains[0]}",
                "passwordProfile": {"password": "Xy7!verylongpass"}})
            team = sorted(tenant_sim.tenant.teams)[0]
            client.post(f"/teams/{team}/members", json={
                "@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": [],
                "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{user['id']}')"})
        results.append(run_table(client, root, plan, table))
    with pytest.raises(SyncValidationError) as err:
        publish(root, plan, results)
    assert "team_members: 1 of" in str(err.value) and "user_id that is not in users.id" in str(err.value)
    assert user["id"] in str(err.value)
    assert _latest_bytes(root, tenant_id) == before
    assert not (root / tenant_id / "runs" / plan.run_key / "manifest.json").exists()


@pytest.mark.parametrize("tamper, message", [
    (lambda r: r["table"] == "users" and r.update(rows=r["rows"] + 1), "users: the task reported"),
    (lambda r: r["table"] == "team_members" and r["extra"].update(odata_count=r["extra"]["odata_count"] + 2),
     "team_members: Graph's @odata.count totals"),
    (lambda r: r["table"] == "teams" and r.update(delta_link=None), "teams: the result carries no deltaLink"),
])
def test_a_mismatch_fails_validation_naming_the_table_and_numbers(tamper, message, tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    results = [run_table(client, root, plan, table).to_dict() for table in TABLE_ORDER]
    for result in results:
        tamper(result)
    with pytest.raises(SyncValidationError, match=message) as err:
        publish(root, plan, results)
    assert err.value.problems
    assert not (root / plan.tenant_id / "latest.json").exists()
    publish(root, plan, [run_table(client, root, plan, t).to_dict() for t in TABLE_ORDER])  # untampered: fine


def test_publish_refuses_missing_tables_and_shards(tenant_sim, make_client, root):
    client = make_client(tenant_sim)
    plan = plan_run(client, root, "run-1")
    results = [run_table(client, root, plan, table, config=CONFIG, shard=0) for table in TABLE_ORDER]
    with pytest.raises(SyncValidationError) as err:
        publish(root, plan, results[:-1])
    text = str(err.value)
    assert "user_installed_apps: no result to publish" in text
    assert "team_members: expected results for shards 0..1, got shards [0]" in text
    assert not (root / plan.tenant_id / "latest.json").exists()

"""The msteams_sync DAG run for real (``dag.test()`` on a migrated SQLite DB) against the simulator over HTTPS.

What is proven here, through the DAG and its task callables (the engine has its own tests in tests/sync):
a full run publishes every table equal to the tenant's state; an incremental run after changes equals a fresh full
run; a missing permission fails the run at its first task, naming the permission; a run killed mid-way leaves
``latest.json`` untouched and re-running it completes; a failed publish publishes nothing; an ``abfs://`` root on
Azurite works end to end; and the DAG's shape matches the engine's table graph.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import storage_fixtures  # tests/storage_fixtures.py (tests/ is on sys.path, see conftest.py)

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "msteams_sync.py"
TABLES = ("organization", "subscribed_skus", "role_definitions", "role_assignments", "users", "user_licenses",
          "teams", "team_members", "channels", "user_installed_apps")  # fmt: skip


storage_fixtures.load_into(globals())  # the azurite / azure_root fixtures


# ------------------------------------------------------------------------------------------ fixtures / helpers
@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture
def sync_env(monkeypatch, tmp_path) -> Path:
    """A local data root, 2 shards per fan-out table, and pacing scaled up (the simulator does not throttle here)."""
    lake = tmp_path / "lake"
    monkeypatch.setenv("MSTEAMS_DATA_ROOT", str(lake))
    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", "2")
    monkeypatch.setenv("MSTEAMS_RATE_LIMIT_SCALE", "20")
    return lake


def _dag(dag_id: str = "msteams_sync"):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _run(dag_id: str = "msteams_sync", logical_date: datetime | None = None, **conf: Any):
    # With a logical date the run id is derived from run_after: pass the same value so a rerun has the same run id.
    return _dag(dag_id).test(logical_date=logical_date, run_after=logical_date, run_conf=conf or None)


def _task_instances(run) -> list[tuple[str, int, str, str | None, int]]:
    """(task_id, map_index, state, rendered map index, try_number) of every task instance of a run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return [(ti.task_id, ti.map_index, str(ti.state), ti.rendered_map_index, ti.try_number) for ti in tis]


def _task_states(run) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for task_id, _, state, _, _ in sorted(_task_instances(run)):
        states.setdefault(task_id, []).append(state)
    return states


def _root(url: str):
    from teamsops_airflow.storage import data_root

    return data_root(url)


def _latest(root, tenant_id: str) -> dict | None:
    from teamsops.sync import read_latest

    return read_latest(root, tenant_id)


def _rows(frame, columns: list[str]) -> set[tuple]:
    """Rows of ``columns`` as a set of tuples, with pandas' missing values as None."""
    subset = frame[columns].astype(object)
    subset = subset.where(subset.notna(), None)
    return set(map(tuple, subset.itertuples(index=False, name=None)))


def _team_role(roles: list[str]) -> str:
    return "owner" if "owner" in roles else "guest" if "guest" in roles else "member"


def expected_tables(tenant) -> dict[str, tuple[list[str], set[tuple]]]:
    """What every table must hold for ``tenant``: (columns compared, rows), straight from the simulator's state."""
    users = tenant.snapshot("users")
    live = {u["id"] for u in users}  # a soft-deleted user keeps its app index in the simulator, not in Graph's API
    managers = {m["user_id"]: m["manager_id"] for m in tenant.snapshot("managers")}
    skus = {s["skuId"]: s for s in tenant.snapshot("skus")}
    groups = {g["id"]: g for g in tenant.snapshot("groups")}
    org = tenant.organization
    user_cols = ["id", "userPrincipalName", "displayName", "mail", "accountEnabled", "userType", "department",
                 "jobTitle", "manager_id"]  # fmt: skip
    return {
        "organization": (["id", "displayName"], {(org["id"], org["displayName"])}),
        "subscribed_skus": (["sku_id", "sku_part_number", "consumed_units", "enabled_units"],
                            {(s["skuId"], s["skuPartNumber"], s["consumedUnits"], s["prepaidUnits"]["enabled"])
                             for s in skus.values()}),
        "role_definitions": (["id", "displayName", "isBuiltIn"],
                             {(r["id"], r["displayName"], r["isBuiltIn"]) for r in tenant.snapshot("role_definitions")}),
        "role_assignments": (["id", "principal_id", "role_definition_id", "directory_scope_id"],
                             {(a["id"], a["principalId"], a["roleDefinitionId"], a["directoryScopeId"])
                              for a in tenant.snapshot("role_assignments")}),
        "users": (user_cols, {(u["id"], u["userPrincipalName"], u["displayName"], u.get("mail"), u["accountEnabled"],
                               u["userType"], u.get("department"), u.get("jobTitle"), managers.get(u["id"]))
                              for u in users}),
        "user_licenses": (["user_id", "sku_id", "sku_part_number"],
                          {(u["id"], lic["skuId"], skus[lic["skuId"]]["skuPartNumber"])
                           for u in users for lic in u.get("assignedLicenses", [])}),
        "teams": (["id", "displayName"], {(tid, groups[tid]["displayName"]) for tid in tenant.teams}),
        "team_members": (["team_id", "user_id", "membership_id", "roles"],
                         {(m["team_id"], m["user_id"], m["membership_id"], _team_role(m["roles"]))
                          for m in tenant.snapshot("team_members")}),
        "channels": (["team_id", "id", "displayName", "membershipType"],
                     {(c["team_id"], c["id"], c["displayName"], c["membershipType"])
                      for c in tenant.snapshot("channels")}),
        "user_installed_apps": (["user_id", "installation_id", "teams_app_id"],
                                {(a["target_id"], a["installation_id"], a["teams_app_id"])
                                 for a in tenant.snapshot("installed_apps")
                                 if a["scope"] == "user" and a["target_id"] in live}),
    }  # fmt: skip


def assert_published_equals_tenant(root, tenant) -> None:
    """Every published table equals the simulator's state, row for row on the compared columns."""
    from teamsops.sync import table_frame

    latest = _latest(root, tenant.id)
    assert latest is not None, "nothing was published"
    assert set(latest["tables"]) == set(TABLES)
    for table, (columns, expected) in expected_tables(tenant).items():
        frame = table_frame(root, tenant.id, table)
        assert len(frame) == latest["tables"][table]["rows"], f"{table}: latest.json rows != rows read"
        got = _rows(frame, columns)
        assert len(got) == len(frame), f"{table}: duplicate rows"
        assert got == expected, f"{table}: missing {list(expected - got)[:3]}, unexpected {list(got - expected)[:3]}"


def _frames(root, tenant_id: str) -> dict[str, Any]:
    """Every published table, sorted by its key, for comparing two runs."""
    from teamsops.sync import TABLES as SPECS
    from teamsops.sync import table_frame

    frames = {}
    for table in TABLES:
        key = list(SPECS[table].key)
        frames[table] = table_frame(root, tenant_id, table).sort_values(key).reset_index(drop=True)
    return frames


def _writer(sim):
    """A read_write Graph client for changing the tenant through Graph (so delta queries see the changes)."""
    from teamsops.graph import GraphClient, GraphSettings

    conn = sim.connection()
    return GraphClient(GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                                   **conn["extra"]}))  # fmt: skip


# ------------------------------------------------------------------------------------------ shape (fast)
def test_dag_shape_matches_the_engine_tables(monkeypatch):
    from teamsops.sync import TABLES as SPECS
    from teamsops_airflow.sync_tasks import GRAPH_POOL

    monkeypatch.setenv("MSTEAMS_TENANTS", "msteams_fabrikam")
    dag = _dag("msteams_sync__msteams_fabrikam")
    assert dag.schedule == "@daily" and dag.max_active_runs == 1 and dag.catchup is False
    assert dag.params["full_refresh"] is False
    for table, spec in SPECS.items():
        task = dag.get_task(table)
        assert task.upstream_task_ids - {"plan"} == set(spec.parents), table
        assert (task.pool == GRAPH_POOL) == spec.fanout, table
        assert task.is_mapped == spec.fanout, table
        assert not task.outlets, f"{table} must not emit assets: only publish does"
    publish = dag.get_task("publish")
    assert set(TABLES) <= publish.upstream_task_ids
    assert {a.uri for a in publish.outlets} == {f"msteams://msteams_fabrikam/{t}" for t in TABLES}


def test_settings_come_from_the_environment(monkeypatch):
    from teamsops_airflow.sync_tasks import rate_scale, sync_config

    for name, value in {"MSTEAMS_GRAPH_POOL_SLOTS": "3", "MSTEAMS_SYNC_WORKERS_PER_SHARD": "5",
                        "MSTEAMS_INSTALLED_APPS_FRACTION": "0.25", "MSTEAMS_INSTALLED_APPS_FULL_EVERY": "4",
                        "MSTEAMS_RATE_LIMIT_SCALE": "2.5"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config = sync_config()
    assert (config.shards, config.workers_per_shard, config.installed_apps_fraction,
            config.installed_apps_full_every) == (3, 5, 0.25, 4)  # fmt: skip
    assert rate_scale() == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [("MSTEAMS_GRAPH_POOL_SLOTS", "0"), ("MSTEAMS_SYNC_WORKERS_PER_SHARD", "many"),
     ("MSTEAMS_INSTALLED_APPS_FRACTION", "0"), ("MSTEAMS_INSTALLED_APPS_FRACTION", "1.5"),
     ("MSTEAMS_INSTALLED_APPS_FULL_EVERY", "0"), ("MSTEAMS_RATE_LIMIT_SCALE", "-1")],
)  # fmt: skip
def test_a_bad_setting_names_the_variable_and_is_not_retried(monkeypatch, name, value):
    from teamsops_airflow.sync_tasks import SyncSettingsError, rate_scale, sync_config

    policy = _dag().get_task("plan").retry_policy
    monkeypatch.setenv(name, value)
    with pytest.raises(SyncSettingsError, match=rf"^{name}='{value}' is invalid: expected") as err:
        sync_config() if name != "MSTEAMS_RATE_LIMIT_SCALE" else rate_scale()
    assert policy.evaluate(err.value, try_number=1, max_tries=3).action.value == "fail"


def test_the_dag_maps_each_fanout_over_the_configured_shards(monkeypatch):
    """The shard count is part of the DAG (read where it is parsed), and the plan is told the same number."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", "3")
    dag = _dag()
    for table in ("user_installed_apps", "team_members", "channels"):
        assert dag.get_task(table).op_kwargs_expand_input.value["shard"] == [0, 1, 2], table

    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", "none")
    errors = DagBag(dag_folder=str(DAG_FILE)).import_errors
    assert any("MSTEAMS_GRAPH_POOL_SLOTS='none' is invalid" in str(e) for e in errors.values()), errors


# ------------------------------------------------------------------------------------------ shards and the limit
@pytest.mark.slow
def test_concurrent_shards_together_stay_under_the_tenant_limit(fresh_sim, msteams_conn, sync_env, monkeypatch):
    """Four shards of installed apps run at once (as four workers would, each with its own client): together they
    reach the tenant's limit for installedApps without crossing it, because each paces at 1/4 of it."""
    from concurrent.futures import ThreadPoolExecutor

    from teamsops_airflow import sync_tasks

    scale, shards, limit = 2.0, 4, 30 * 2.0  # documented 30 GET installedApps per second, x2
    monkeypatch.setenv("MSTEAMS_GRAPH_POOL_SLOTS", str(shards))
    monkeypatch.setenv("MSTEAMS_RATE_LIMIT_SCALE", str(scale))
    msteams_conn(fresh_sim)
    fresh_sim.configure(throttle="documented", throttle_scale=scale)
    run = sync_tasks.plan("msteams_default", "manual__shards")
    sync_tasks.extract(run, "users")
    fresh_sim.reset_stats()
    with ThreadPoolExecutor(shards) as pool:
        results = list(pool.map(lambda shard: sync_tasks.extract(run, "user_installed_apps", shard), range(shards)))
    stats = fresh_sim.stats()
    graph = stats["routes"]["graph"]
    assert sum(r["requests"] for r in results) == graph["count"] == fresh_sim.tenant.user_count()
    assert stats["throttled"] == 0 and graph["statuses"] == {"200": graph["count"]}
    assert graph["max_in_1s"] <= limit
    combined = graph["count"] / (graph["last"] - graph["first"])
    assert combined >= 0.75 * limit, f"shards together paced at {combined:.1f} rps, the limit is {limit:.0f}"


# ------------------------------------------------------------------------------------------ runs
@pytest.mark.slow
def test_full_run_publishes_the_tenant_and_emits_the_assets(sim, msteams_conn, airflow_db, sync_env):
    msteams_conn(sim)
    run = _run()
    assert run.state == "success", _task_states(run)
    root = _root(str(sync_env))
    latest = _latest(root, sim.tenant.id)
    assert latest["mode"] == "full" and latest["run_id"] == run.run_id
    assert_published_equals_tenant(root, sim.tenant)
    # Paths in latest.json are absolute URLs that pandas reads as they are.
    import pandas as pd

    assert len(pd.read_parquet(latest["tables"]["users"]["path"])) == sim.tenant.user_count()
    # Two shards per fan-out table ran as mapped task instances, labelled by shard in the UI.
    shards = sorted((m, label) for task_id, m, _, label, _ in _task_instances(run) if task_id == "team_members")
    assert shards == [(0, "shard 0"), (1, "shard 1")]

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        # The plan was told the DAG's shard count (each shard paces at 1/shards of the limits).
        planned = session.query(XComModel.value).filter_by(dag_id="msteams_sync", run_id=run.run_id, task_id="plan",
                                                           key="return_value").scalar()  # fmt: skip
        planned = json.loads(planned) if isinstance(planned, str) else planned
        assert planned["shards"] == [0, 1] and planned["config"]["shards"] == 2
        events = (session.query(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetEvent.source_dag_id == "msteams_sync", AssetEvent.source_run_id == run.run_id).all())  # fmt: skip
    by_uri = {uri: extra for uri, extra in events}
    assert set(by_uri) == {f"msteams://msteams_default/{t}" for t in TABLES}
    assert by_uri["msteams://msteams_default/users"]["rows"] == sim.tenant.user_count()
    assert by_uri["msteams://msteams_default/users"]["run_id"] == run.run_id


@pytest.mark.slow
def test_full_run_under_faults_and_five_second_tokens(fresh_sim, msteams_conn, airflow_db, sync_env):
    """5 % of Graph requests fail (503 / 504) and tokens are good for 5 s: the client's retries and token renewals
    absorb it, no task needs an Airflow retry, and the published tables still equal the tenant.

    The lifetime is 305 s because msal renews a token once less than 300 s remain: that makes a token usable for 5 s.
    A literal 5 s lifetime makes msal fetch a token for every request, and each new token is registered with Airflow's
    secrets masker, whose cost grows with every secret it holds; the engine's own tests cover that case without
    Airflow (tests/sync). Real tokens live 60-90 minutes, so a task masks only a handful."""
    msteams_conn(fresh_sim)
    fresh_sim.set_app(fresh_sim.credentials()["app_id"], token_lifetime=305)
    fresh_sim.configure(fault_rate=0.05, latency_ms=10)
    fresh_sim.reset_stats()
    try:
        run = _run()
    finally:
        fresh_sim.configure(fault_rate=0.0, latency_ms=0)
    assert run.state == "success", _task_states(run)
    assert all(try_number == 1 for *_, try_number in _task_instances(run)), "a task needed an Airflow retry"
    statuses = fresh_sim.stats()["routes"]["graph"]["statuses"]
    assert sum(n for code, n in statuses.items() if code != "200") > 0, f"no fault was injected: {statuses}"
    assert_published_equals_tenant(_root(str(sync_env)), fresh_sim.tenant)


@pytest.mark.slow
def test_incremental_run_after_changes_equals_a_full_run(fresh_sim, msteams_conn, airflow_db, sync_env):
    msteams_conn(fresh_sim)
    tenant = fresh_sim.tenant
    assert _run().state == "success"

    users = tenant.snapshot("users")
    team_id = next(iter(tenant.teams))
    members = set(tenant.team_member_ids(team_id))
    outsider = next(u["id"] for u in users if u["id"] not in members and u["userType"] == "Member")
    leaver = next(m for m in members if "owner" not in tenant.team_roles(team_id, m))
    with _writer(fresh_sim) as graph:
        created = graph.post("/users", json={
            "accountEnabled": True, "displayName": "Nora Newhire", "mailNickname": "nora.newhire",
            "userPrincipalName": f"nora.newhire@{tenant.initial_domain}",
            "passwordProfile": {"password": "Xy!93-temporary-pass", "forceChangePasswordNextSignIn": True}})
        graph.patch(f"/users/{users[5]['id']}", json={"department": "Moved Department", "jobTitle": "New Title"})
        graph.delete(f"/users/{users[7]['id']}")
        graph.post(f"/teams/{team_id}/members", json={
            "@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": [],
            "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{outsider}')"})
        membership = next(m["id"] for m in graph.paginate(f"/teams/{team_id}/members") if m["userId"] == leaver)
        graph.delete(f"/teams/{team_id}/members/{membership}")

    incremental = _run()
    assert incremental.state == "success", _task_states(incremental)
    root = _root(str(sync_env))
    latest = _latest(root, tenant.id)
    assert latest["mode"] == "incremental" and latest["run_id"] == incremental.run_id
    assert_published_equals_tenant(root, tenant)
    users_now = _frames(root, tenant.id)["users"]
    assert created["id"] in set(users_now["id"]) and users[7]["id"] not in set(users_now["id"])
    after_incremental = _frames(root, tenant.id)

    full = _run(full_refresh=True)
    assert full.state == "success"
    assert _latest(root, tenant.id)["mode"] == "full"
    after_full = _frames(root, tenant.id)
    import pandas.testing as pdt

    for table in TABLES:
        if table == "organization":
            continue  # no key changes; compared above against the tenant
        pdt.assert_frame_equal(after_incremental[table], after_full[table], check_dtype=False, obj=table)


@pytest.mark.slow
def test_missing_permission_fails_the_first_task_naming_it(fresh_sim, msteams_conn, airflow_db, sync_env, capfd):
    msteams_conn(fresh_sim)
    app_id = fresh_sim.credentials()["app_id"]
    # TeamMember.ReadWrite.All (granted for the action DAGs) would satisfy the read as well: withdraw both.
    roles = [r for r in fresh_sim.tenant.apps[app_id].roles if not r.startswith("TeamMember.")]
    fresh_sim.set_app(app_id, roles=roles)
    started = time.monotonic()
    run = _run()
    assert run.state == "failed"
    states = _task_states(run)
    assert states["plan"] == ["failed"]
    assert [t for t in _task_instances(run) if t[0] == "plan"][0][4] == 1, "the plan task was retried"
    # (the fan-outs' mapped shards exist from the start: the shard count is part of the DAG)
    assert all(set(s) == {"upstream_failed"} for t, s in states.items() if t != "plan"), states
    assert time.monotonic() - started < 60, "a permission error must not be retried"
    out, err = capfd.readouterr()
    assert "lacks the application permission(s) TeamMember.Read.All" in out + err
    assert not (sync_env / fresh_sim.tenant.id / "latest.json").exists()


_KILLABLE_RUN = textwrap.dedent("""
    import sys
    from teamsops_airflow import sync_tasks

    run = sync_tasks.plan("msteams_default", sys.argv[1])
    for table in sync_tasks.TABLE_ORDER:
        for shard in (run["shards"] if table in sync_tasks.FANOUT_TABLES else [0]):
            sync_tasks.extract(run, table, shard)
            print("done", table, shard, flush=True)
    print("extracted", flush=True)
""")


@pytest.mark.slow
def test_killed_run_leaves_latest_untouched_and_its_rerun_completes(fresh_sim, msteams_conn, airflow_db, sync_env):
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    msteams_conn(fresh_sim)
    tenant = fresh_sim.tenant
    assert _run().state == "success"
    latest_file = sync_env / tenant.id / "latest.json"
    before = latest_file.read_bytes()

    with _writer(fresh_sim) as graph:
        graph.patch(f"/users/{tenant.snapshot('users')[3]['id']}", json={"jobTitle": "Changed Before The Crash"})

    # The same task callables the DAG runs, in a process that is killed (SIGKILL: no cleanup) mid-run, under the
    # run id that dag.test() will use for this logical date, so the rerun below is a rerun of the killed run.
    logical_date = datetime(2026, 3, 1, tzinfo=timezone.utc)
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=logical_date, run_after=logical_date)
    fresh_sim.configure(latency_ms=25)  # slow enough to kill it in the middle, not so slow the test drags
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE_RUN, run_id], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("done users"):
                break
        assert proc.poll() is None, "the run finished before it could be killed:\n" + "".join(seen[-20:])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        fresh_sim.configure(latency_ms=0)

    assert latest_file.read_bytes() == before, "a killed run changed latest.json"
    partial = list((sync_env / tenant.id / "users").glob("run_id=*/part-*.parquet"))
    assert len(partial) == 2, "the killed run should have left its users part behind"

    rerun = _run(logical_date=logical_date)
    assert rerun.run_id == run_id and rerun.state == "success", _task_states(rerun)
    latest = json.loads(latest_file.read_text())
    assert latest["run_id"] == run_id and latest["mode"] == "incremental"
    assert_published_equals_tenant(_root(str(sync_env)), tenant)


@pytest.mark.slow
def test_failed_publish_publishes_nothing_and_a_rerun_publishes(fresh_sim, msteams_conn, airflow_db, sync_env):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from airflow.sdk.exceptions import AirflowFailException

    from teamsops_airflow import sync_tasks

    msteams_conn(fresh_sim)
    run = sync_tasks.plan("msteams_default", "manual__publish-check")
    results = [sync_tasks.extract(run, t, s) for t in sync_tasks.TABLE_ORDER
               for s in (run["shards"] if t in sync_tasks.FANOUT_TABLES else [0])]  # fmt: skip
    part = next(Path(r["path"].removeprefix("file://")) for r in results if r["table"] == "channels" and r["rows"])
    good = pq.read_table(part)
    orphan = {name: [None] for name in good.column_names} | {"team_id": ["no-such-team"], "id": ["19:x@thread.tacv2"]}
    pq.write_table(pa.concat_tables([good, pa.table(orphan, schema=good.schema)]), part)
    for result in results:  # the task reported the rows it wrote; make the count match so the key check decides
        if result["path"] and Path(result["path"].removeprefix("file://")) == part:
            result["rows"] += 1

    with pytest.raises(AirflowFailException, match="channels") as err:
        sync_tasks.publish(run, results)
    assert "Re-run the DAG" in str(err.value)
    assert not (sync_env / run["plan"]["tenant_id"] / "latest.json").exists()

    # Re-running the table's task overwrites its part; publish then goes through.
    for i, result in enumerate(results):
        if result["table"] == "channels":
            results[i] = sync_tasks.extract(run, "channels", result["shard"])
    summary = sync_tasks.publish(run, results)
    assert summary["tables"]["channels"]["rows"] == len(fresh_sim.tenant.snapshot("channels"))
    assert_published_equals_tenant(_root(str(sync_env)), fresh_sim.tenant)


@pytest.mark.slow
def test_abfs_root_on_azurite(fresh_sim, msteams_conn, airflow_db, sync_env, azure_root, monkeypatch):
    monkeypatch.setenv("MSTEAMS_DATA_ROOT", azure_root)
    msteams_conn(fresh_sim)
    run = _run()
    assert run.state == "success", _task_states(run)
    root = _root(azure_root)
    latest = _latest(root, fresh_sim.tenant.id)
    assert latest["tables"]["users"]["path"].startswith(azure_root + "/")
    assert_published_equals_tenant(root, fresh_sim.tenant)
    # Nothing was written locally.
    assert not sync_env.exists()

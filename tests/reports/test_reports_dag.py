"""The msteams_reports DAGs: one per tenant connection, scheduled on exactly the assets the sync publishes for the
tables the report reads, and a real ``dag.test()`` run after a sync; plus the report on an ``abfs://`` root
(Azurite), where retention must delete through the object store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import storage_fixtures  # tests/storage_fixtures.py (tests/ is on sys.path, see conftest.py)

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


storage_fixtures.load_into(globals())  # the azurite / azure_root fixtures


def _bag(*files: str):
    from airflow.dag_processing.dagbag import DagBag

    bags = {}
    for file in files:
        bag = DagBag(dag_folder=str(DAGS / file))
        assert not bag.import_errors, bag.import_errors
        bags.update(bag.dags)
    return bags


def _sync(sim, root, run_id: str) -> dict:
    from teamsops.graph import GraphClient, GraphSettings, RateLimiter
    from teamsops.sync import SyncConfig, sync_tenant

    conn = sim.connection()
    settings = GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                           **conn["extra"]})  # fmt: skip
    return sync_tenant(lambda share: GraphClient(settings, rate_limiter=RateLimiter.unlimited()), root, run_id,
                       config=SyncConfig(shards=2))  # fmt: skip


def test_one_dag_per_tenant_scheduled_on_the_sync_assets(monkeypatch):
    from airflow.sdk import AssetAll

    from teamsops.reports import READ_TABLES
    from teamsops_airflow.dag_defaults import Tag

    monkeypatch.setenv("MSTEAMS_TENANTS", "msteams_fabrikam")
    dags = _bag("msteams_reports.py", "msteams_sync.py")
    for conn_id, suffix in (("msteams_default", ""), ("msteams_fabrikam", "__msteams_fabrikam")):
        report, sync = dags[f"msteams_reports{suffix}"], dags[f"msteams_sync{suffix}"]
        published = {a.uri for a in sync.get_task("publish").outlets}
        assert isinstance(report.schedule, AssetAll), "the report must wait for ALL the tables it reads"
        scheduled = {asset.uri for asset in report.schedule.objects}
        assert scheduled == {f"msteams://{conn_id}/{t}" for t in READ_TABLES}
        assert scheduled <= published, "the report waits for an asset the sync never emits"
        assert Tag.REPORT.value in report.tags and report.max_active_runs == 1
        assert [t.task_id for t in report.tasks] == ["report"]


def test_a_bad_keep_runs_setting_is_not_retried():
    from teamsops.reports import ReportSettingsError

    policy = _bag("msteams_reports.py")["msteams_reports"].get_task("report").retry_policy
    error = ReportSettingsError("MSTEAMS_REPORT_KEEP_RUNS='0' is invalid")
    assert policy.evaluate(error, try_number=1, max_tries=3).action.value == "fail"


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
def test_dag_run_builds_the_report_of_the_published_sync(fresh_sim, msteams_conn, airflow_db, tmp_path, monkeypatch):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from teamsops_airflow.storage import data_root

    lake = tmp_path / "lake"
    monkeypatch.setenv("MSTEAMS_DATA_ROOT", str(lake))
    monkeypatch.setenv("MSTEAMS_REPORT_KEEP_RUNS", "3")
    msteams_conn(fresh_sim)
    manifest = _sync(fresh_sim, data_root(), "scheduled__2026-05-01")

    run = _bag("msteams_reports.py")["msteams_reports"].test()
    assert run.state == "success"
    tenant = fresh_sim.tenant
    reports = lake / tenant.id / "reports"
    latest = json.loads((reports / "latest.json").read_text())
    assert latest["run_id"] == manifest["run_id"]
    assert (reports / "run_id=scheduled__2026-05-01" / "report.html").exists()
    assert latest["metrics"]["users.total"] == tenant.user_count()
    with create_session() as session:
        row = session.query(XComModel.value).filter_by(dag_id="msteams_reports", run_id=run.run_id,
                                                      task_id="report", key="return_value").one()  # fmt: skip
    value = row[0] if not isinstance(row[0], str | bytes) else json.loads(row[0])
    entry = value["reports"][tenant.id]
    assert entry["report"] == latest["report"] and entry["run_id"] == manifest["run_id"]
    assert entry["tables"]["users_snapshot"]["rows"] == tenant.user_count()
    assert len(json.dumps(value)) < 10_000, "XCom must carry paths and counts only"


@pytest.mark.slow
def test_report_on_an_abfs_root_with_retention(fresh_sim, azure_root):
    from teamsops.reports import build_report, read_history
    from teamsops_airflow.storage import data_root

    root = data_root(azure_root)
    tenant_id = _sync(fresh_sim, root, "run-a")["tenant_id"]
    first = build_report(root, tenant_id, keep_runs=1)
    assert first["report"].startswith(azure_root + "/")
    _sync(fresh_sim, root, "run-b")
    second = build_report(root, tenant_id, keep_runs=1)
    assert second["previous_run_id"] == "run-a" and second["deleted_runs"] == ["run-a"]
    reports = root / tenant_id / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["history.json", "latest.json", "run_id=run-b"]
    assert [r["run_id"] for r in read_history(root, tenant_id)] == ["run-b"]
    page = (reports / "run_id=run-b" / "report.html").read_text(encoding="utf-8")
    assert f'data-metric="users.total" data-value="{fresh_sim.tenant.user_count()}"' in page

"""The append-only audit log on SQLite and on a real PostgreSQL server (the ``postgres_url`` fixture in
tests/conftest.py: ``MSTEAMS_TEST_POSTGRES_URL`` or a throw-away cluster of Debian's ``postgresql``). Tests on a shared PostgreSQL database use their own ids: rows can never be
deleted, which is the point."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from teamsops.audit import TABLE_NAME, AuditLog, default_url



@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'msteams_audit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def audit(url):
    log = AuditLog(url)
    yield log
    log.close()


def _plan(**overrides):
    user = str(uuid.uuid4())
    plan = {"version": 1, "plan_id": str(uuid.uuid4()), "dag_id": "msteams_offboard_user", "action": "offboard_user",
            "title": "Offboard users", "run_id": f"manual__{uuid.uuid4().hex[:8]}", "requester": "alice",
            "reason": "left", "ticket": "HR-1", "dry_run": False, "tenant_id": "t", "connection": "msteams_default",
            "targets": [{"type": "user", "id": user, "label": "Adele <adele@contoso.com>",
                         "snapshot": {"accountEnabled": True, "userType": "Member", "manager": None,
                                      "teams": [{"team_id": "t1", "team_name": "Sales", "role": "owner"}]}}],
            "steps": [
                {"id": "1", "kind": "disable_user", "title": "Disable", "group": user, "noop": False,
                 "target": {"type": "user", "id": user, "label": "Adele"}, "object": None,
                 "before": {"accountEnabled": True}, "after": {"accountEnabled": False},
                 "undo": {"accountEnabled": True}},
                {"id": "2", "kind": "remove_team_member", "title": "Remove from Sales", "group": user, "noop": False,
                 "target": {"type": "user", "id": user, "label": "Adele"},
                 "object": {"type": "team", "id": "t1", "label": "Sales"}, "before": {"member": True, "role": "owner"},
                 "after": {"member": False}, "undo": {"team_id": "t1", "team_name": "Sales", "role": "owner"}},
            ],
            "summary": {"steps": 2, "changes": 2, "noops": 0}, "warnings": [], "overrides": {}}
    plan.update(overrides)
    return plan, user


def _result(plan, status="applied"):
    steps = [{"id": s["id"], "kind": s["kind"], "title": s["title"], "status": status,
              "request_ids": [f"req-{s['id']}"], "before": s["before"], "error": None, "note": None,
              "at": "2025-06-02T09:00:00Z"} for s in plan["steps"]]
    return {"plan_id": plan["plan_id"], "outcome": "success", "steps": steps,
            "request_ids": [r for s in steps for r in s["request_ids"]], "counts": {"applied": len(steps)},
            "errors": []}


def test_table_is_created_once_and_rows_round_trip(url, audit):
    AuditLog(url).close()  # a second instance finds the table (and triggers) in place
    assert sa.inspect(audit.engine).has_table(TABLE_NAME)
    run = f"r-{uuid.uuid4()}"
    row_id = audit.record(phase="apply", run_id=run, target_id="ABC", before={"a": [1, "x"]}, request_ids=["r1"],
                          happened_at=datetime(2025, 6, 2, 9, 0, tzinfo=timezone.utc), dry_run=False)
    [row] = audit.query(run_id=run)
    assert row["id"] == row_id and row["before"] == {"a": [1, "x"]} and row["request_ids"] == ["r1"]
    assert row["target_id"] == "abc" and row["happened_at"].startswith("2025-06-02T09:00:00")
    assert datetime.fromisoformat(row["recorded_at"]) > datetime.now(timezone.utc) - timedelta(minutes=5)
    assert audit.query(run_id=run, since=datetime.now(timezone.utc) + timedelta(hours=1)) == []
    with pytest.raises(ValueError, match="unknown audit column"):
        audit.record(phase="apply", password="x")


def test_the_database_refuses_updates_and_deletes(audit):
    assert not any(hasattr(audit, name) for name in ("update", "delete", "purge", "remove"))
    run = f"r-{uuid.uuid4()}"
    audit.record(phase="run", run_id=run, outcome="success")
    for statement in (f"UPDATE {TABLE_NAME} SET outcome = 'failed' WHERE run_id = '{run}'",
                      f"DELETE FROM {TABLE_NAME} WHERE run_id = '{run}'"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), audit.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert audit.query(run_id=run)[0]["outcome"] == "success"
    if audit.engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), audit.engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {TABLE_NAME}")


def test_a_dry_run_plan_is_recorded_as_such(audit):
    plan, user = _plan(dry_run=True)
    assert audit.record_plan(plan) == 3
    rows = audit.query(plan_id=plan["plan_id"])
    assert {r["outcome"] for r in rows} == {"dry_run"} and all(r["dry_run"] for r in rows)
    summary = next(r for r in rows if r["step_kind"] == "plan")
    assert summary["undo"][user]["teams"][0]["role"] == "owner"
    assert summary["requester"] == "alice" and summary["ticket"] == "HR-1"


def test_a_full_run_is_recorded_once(audit):
    plan, user = _plan()
    audit.record_plan(plan)
    audit.record_decision(plan, "approved", approver="bob")
    result = _result(plan)
    recorder = audit.step_recorder(plan, approver="bob")
    recorder(plan["steps"][0], result["steps"][0])  # the first step journaled while applying
    verification = {"ok": True, "steps": [{"id": "1", "ok": True, "expected": {}, "observed": {}, "note": None},
                                          {"id": "2", "ok": True, "expected": {}, "observed": {}, "note": None}]}
    audit.record_result(plan, result, verification, approver="bob")
    rows = audit.query(plan_id=plan["plan_id"])
    phases = [r["phase"] for r in rows]
    assert phases.count("apply") == 2 and phases.count("verify") == 2 and phases.count("run") == 1
    assert phases.count("approval") == 1
    apply_rows = [r for r in rows if r["phase"] == "apply"]
    assert [r["request_ids"] for r in apply_rows] == [["req-1"], ["req-2"]]
    assert all(r["approver"] == "bob" and r["requester"] == "alice" for r in apply_rows)
    assert audit.applied_step_ids(plan["plan_id"], plan["run_id"]) == {"1", "2"}
    run = next(r for r in rows if r["phase"] == "run")
    assert run["outcome"] == "success" and run["details"]["verified"] is True


def test_membership_undo_collects_removals_since_the_last_restore(audit):
    plan, user = _plan()
    old = _result(plan)
    audit.record_result(plan, old)  # an earlier lifecycle: removed from Sales (owner)
    restore_plan = {**plan, "plan_id": str(uuid.uuid4()), "steps": [
        {"id": "1", "kind": "restore_user", "title": "Restore", "group": user, "noop": False,
         "target": {"type": "user", "id": user, "label": "Adele"}, "before": {}, "after": {}, "undo": None}]}
    audit.record_result(restore_plan, _result(restore_plan))
    assert audit.membership_undo(user) == []  # everything before the restore belongs to the previous lifecycle

    later = {**plan, "plan_id": str(uuid.uuid4()), "steps": [
        {**plan["steps"][1], "undo": {"team_id": "t2", "team_name": "Marketing", "role": "member"},
         "object": {"type": "team", "id": "t2", "label": "Marketing"}},
        {"id": "3", "kind": "delete_user", "title": "Delete", "group": user, "noop": False,
         "target": {"type": "user", "id": user, "label": "Adele"}, "before": {}, "after": {},
         "undo": {"accountEnabled": True, "teams": [{"team_id": "t3", "team_name": "Ops", "role": "owner"}]}}]}
    audit.record_result(later, _result(later))
    failed = {**plan, "plan_id": str(uuid.uuid4())}
    audit.record_result(failed, _result(failed, status="failed"))  # failed removals do not count
    dry = {**plan, "plan_id": str(uuid.uuid4()), "dry_run": True}
    audit.record_plan(dry)
    assert audit.membership_undo(user) == [
        {"team_id": "t2", "team_name": "Marketing", "role": "member"},
        {"team_id": "t3", "team_name": "Ops", "role": "owner"}]


def test_default_url_is_under_airflow_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'msteams_audit.db'}"
    assert default_url("/opt/airflow") == "sqlite:////opt/airflow/msteams_audit.db"


def test_in_memory_sqlite_keeps_one_database():
    with AuditLog("sqlite://") as log:
        log.record(phase="run", outcome="success")
        assert len(log.query()) == 1


def test_workers_starting_and_writing_at_once(url):
    import threading

    run = f"r-{uuid.uuid4()}"
    errors: list[str] = []

    def worker(index: int) -> None:
        try:
            with AuditLog(url) as log:
                for n in range(5):
                    log.record(phase="apply", run_id=run, step_id=f"{index}.{n}", outcome="applied")
        except Exception as err:  # collected and asserted below
            errors.append(repr(err))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with AuditLog(url) as log:
        assert len(log.query(run_id=run)) == 30

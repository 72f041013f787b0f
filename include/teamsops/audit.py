"""The append-only audit log of the action DAGs: table ``msteams_audit_log`` in a real database (SQLAlchemy Core).

Works on SQLite and PostgreSQL. The Airflow side passes a SQLAlchemy URL: the connection ``msteams_audit``, else
:func:`default_url` (``sqlite:///$AIRFLOW_HOME/msteams_audit.db``). :class:`AuditLog` creates the table (and its
indexes) when missing.

Append-only, twice over: the class has no update or delete method, and the database refuses ``UPDATE`` / ``DELETE``
(and ``TRUNCATE`` on PostgreSQL) on the table through triggers created with it, so even a direct SQL session cannot
rewrite history without first dropping the triggers (which needs the table owner's rights).

One row is one event. ``phase`` says which:

* ``plan`` - one row per planned step (``outcome`` ``planned`` / ``noop`` / ``dry_run``) and one summary row
  (``step_kind`` ``plan``) whose ``undo`` holds each target's snapshot: prior accountEnabled, userType, manager,
  team memberships and roles;
* ``approval`` - the decision (``approved`` / ``rejected`` / ``timed_out``) and who made it;
* ``apply`` - one row per step as it is applied (``applied``, ``already_done``, ``failed``, ``not_run``,
  ``not_reachable``, ``skipped``) with Graph's request ids, the state read just before, and the step's undo data
  when it changed something;
* ``verify`` - one row per step read back (``verified``, ``verify_failed``, ``not_verifiable``);
* ``run`` - the run's outcome (counts, bot message delivery, password delivery without the password).

Columns: id, recorded_at, happened_at, run_id, plan_id, dag_id, action, phase, step_id, step_kind, target_type,
target_id, target_label, object_id, object_label, requester, approver, reason, ticket, dry_run, outcome, before,
after, request_ids, undo, error, details, tenant_id, connection_id.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

__all__ = ["TABLE_NAME", "AuditLog", "audit_table", "default_url"]

log = logging.getLogger(__name__)

TABLE_NAME = "msteams_audit_log"
_APPEND_ONLY = f"{TABLE_NAME} is append-only"

metadata = sa.MetaData()
audit_table = sa.Table(
    TABLE_NAME,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("happened_at", sa.DateTime(timezone=True)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("plan_id", sa.String(64)),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("action", sa.String(100)),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("step_id", sa.String(20)),
    sa.Column("step_kind", sa.String(50)),
    sa.Column("target_type", sa.String(20)),
    sa.Column("target_id", sa.String(128)),
    sa.Column("target_label", sa.String(512)),
    sa.Column("object_id", sa.String(256)),
    sa.Column("object_label", sa.String(512)),
    sa.Column("requester", sa.String(250)),
    sa.Column("approver", sa.String(250)),
    sa.Column("reason", sa.Text()),
    sa.Column("ticket", sa.String(100)),
    sa.Column("dry_run", sa.Boolean(), nullable=False, default=False),
    sa.Column("outcome", sa.String(30)),
    sa.Column("before", sa.JSON()),
    sa.Column("after", sa.JSON()),
    sa.Column("request_ids", sa.JSON()),
    sa.Column("undo", sa.JSON()),
    sa.Column("error", sa.Text()),
    sa.Column("details", sa.JSON()),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("connection_id", sa.String(250)),
    sa.Index(f"ix_{TABLE_NAME}_run_id", "run_id"),
    sa.Index(f"ix_{TABLE_NAME}_plan_id", "plan_id"),
    sa.Index(f"ix_{TABLE_NAME}_target_id", "target_id"),
    sa.Index(f"ix_{TABLE_NAME}_recorded_at", "recorded_at"),
)
_COLUMNS = frozenset(c.name for c in audit_table.columns) - {"id"}
_JSON_COLUMNS = frozenset(c.name for c in audit_table.columns if isinstance(c.type, sa.JSON))
_TIME_COLUMNS = ("recorded_at", "happened_at")

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_update BEFORE UPDATE ON {TABLE_NAME} "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}: UPDATE refused'); END",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_delete BEFORE DELETE ON {TABLE_NAME} "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}: DELETE refused'); END",
]
_PG_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION USING MESSAGE = '{_APPEND_ONLY}: ' || TG_OP || ' refused'; END $$""",
    f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{TABLE_NAME}_no_change'
                       AND tgrelid = '{TABLE_NAME}'::regclass) THEN
            CREATE TRIGGER {TABLE_NAME}_no_change BEFORE UPDATE OR DELETE ON {TABLE_NAME}
            FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only();
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{TABLE_NAME}_no_truncate'
                       AND tgrelid = '{TABLE_NAME}'::regclass) THEN
            CREATE TRIGGER {TABLE_NAME}_no_truncate BEFORE TRUNCATE ON {TABLE_NAME}
            FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_append_only();
        END IF;
    END $$""",
]


def default_url(airflow_home: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///$AIRFLOW_HOME/msteams_audit.db`` (the fallback when there is no ``msteams_audit`` connection)."""
    home = Path(airflow_home or os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"sqlite:///{home / 'msteams_audit.db'}"


class AuditLog:
    """Append-only audit log in the database at ``url`` (a SQLAlchemy URL; the table is created when missing).

    :param url: e.g. ``postgresql+psycopg2://user:pw@host/db`` or ``sqlite:////path/msteams_audit.db``.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = _engine(url, engine_kwargs)
        self._ensure_table()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({self.engine.url.render_as_string(hide_password=True)!r})"

    # ---------------------------------------------------------------------------------------- schema
    def _ensure_table(self) -> None:
        """Create the table, indexes and append-only triggers when missing.

        DDL runs only when something is missing, so a database user that may only INSERT and SELECT works once the
        table exists. On PostgreSQL an advisory lock serializes workers that start at the same moment; elsewhere a
        lost creation race is detected and the check repeated.
        """
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    if self.engine.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock(hashtext('{TABLE_NAME}'))")
                    metadata.create_all(conn, checkfirst=True)
                    if not _has_triggers(conn):
                        for statement in _trigger_statements(self.engine.dialect.name):
                            conn.exec_driver_sql(statement)
                return
            except sa.exc.DBAPIError as err:
                if not sa.inspect(self.engine).has_table(TABLE_NAME):
                    raise
                if attempt == 0:
                    continue  # another worker created it meanwhile: look again
                log.warning("%s exists but its append-only triggers could not be created (%s); only this API "
                            "is append-only: ask the database owner to install them", TABLE_NAME, err.orig)

    # ---------------------------------------------------------------------------------------- generic
    def record(self, **row: Any) -> int:
        """Insert one row; returns its id. Unknown column names are refused (``ValueError``)."""
        return self.record_rows([row])[0]

    def record_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Insert rows in one transaction; returns their ids."""
        prepared = [_prepare(row) for row in rows]
        ids: list[int] = []
        with self.engine.begin() as conn:
            for row in prepared:
                result = conn.execute(audit_table.insert().values(**row))
                ids.append(int(result.inserted_primary_key[0]))
        return ids

    def query(self, *, run_id: str | None = None, plan_id: str | None = None, dag_id: str | None = None,
              target_id: str | None = None, phase: str | Iterable[str] | None = None,
              outcome: str | Iterable[str] | None = None, step_kind: str | Iterable[str] | None = None,
              dry_run: bool | None = None, since: datetime | None = None, limit: int = 1000,
              newest_first: bool = False) -> list[dict[str, Any]]:
        """Rows matching every given filter, oldest first (or newest first), as dicts with ISO timestamps."""
        table = audit_table
        stmt = sa.select(table)
        for column, value in (("run_id", run_id), ("plan_id", plan_id), ("dag_id", dag_id),
                              ("target_id", target_id.lower() if target_id else None), ("phase", phase),
                              ("outcome", outcome), ("step_kind", step_kind)):
            if value is None:
                continue
            col = table.c[column]
            stmt = stmt.where(col == value if isinstance(value, str) else col.in_(list(value)))
        if dry_run is not None:
            stmt = stmt.where(table.c.dry_run.is_(dry_run))
        if since is not None:
            stmt = stmt.where(table.c.recorded_at >= _utc(since))
        stmt = stmt.order_by(table.c.id.desc() if newest_first else table.c.id.asc()).limit(limit)
        with self.engine.connect() as conn:
            return [_row_out(dict(r._mapping)) for r in conn.execute(stmt)]

    # ---------------------------------------------------------------------------------------- action flow
    def record_plan(self, plan: Mapping[str, Any], *, run_id: str | None = None,
                    requester: str | None = None) -> int:
        """The plan: one row per step plus a summary row with the targets' undo snapshots. Returns rows written.

        A dry-run plan is recorded with ``dry_run`` true and outcome ``dry_run``."""
        base = _base(plan, run_id, requester=requester)
        dry = bool(plan.get("dry_run"))
        rows = [{**base, **_step_fields(step), "phase": "plan",
                 "outcome": "dry_run" if dry else ("noop" if step.get("noop") else "planned"),
                 "before": step.get("before"), "after": step.get("after"), "undo": step.get("undo"),
                 "details": {"title": step.get("title"), "note": step.get("note"),
                             "destructive": step.get("destructive")}}
                for step in plan.get("steps") or []]
        snapshots = {t["id"]: t["snapshot"] for t in plan.get("targets") or [] if t.get("id") and t.get("snapshot")}
        rows.append({**base, "phase": "plan", "step_kind": "plan", "outcome": "dry_run" if dry else "planned",
                     "undo": snapshots or None,
                     "details": {"title": plan.get("title"), "summary": plan.get("summary"),
                                 "warnings": plan.get("warnings"), "overrides": plan.get("overrides"),
                                 "targets": [{k: t.get(k) for k in ("type", "id", "label")}
                                             for t in plan.get("targets") or []]}})
        return len(self.record_rows(rows))

    def record_decision(self, plan: Mapping[str, Any], decision: str, *, run_id: str | None = None,
                        approver: str | None = None, note: str | None = None) -> int:
        """The approval decision: ``approved``, ``rejected`` or ``timed_out``."""
        return self.record(**_base(plan, run_id, approver=approver), phase="approval", step_kind="approval",
                           outcome=decision, details={"note": note} if note else None)

    def record_step(self, plan: Mapping[str, Any], step: Mapping[str, Any], outcome: Mapping[str, Any], *,
                    run_id: str | None = None, approver: str | None = None) -> int:
        """One applied step (use :meth:`step_recorder` as ``apply_plan(on_step=...)``)."""
        changed = outcome.get("status") in ("applied", "already_done") and not step.get("noop")
        return self.record(**_base(plan, run_id, approver=approver), **_step_fields(step), phase="apply",
                           outcome=outcome.get("status"), before=outcome.get("before", step.get("before")),
                           after=step.get("after"), request_ids=outcome.get("request_ids") or None,
                           undo=step.get("undo") if changed else None, error=outcome.get("error"),
                           happened_at=_parse(outcome.get("at")),
                           details={k: outcome[k] for k in ("note", "activity_id") if outcome.get(k)} or None)

    def step_recorder(self, plan: Mapping[str, Any], *, run_id: str | None = None,
                      approver: str | None = None) -> Callable[[Mapping[str, Any], Mapping[str, Any]], None]:
        """An ``on_step`` callback for :func:`teamsops.actions.apply_plan` that records each step as it happens."""
        def on_step(step: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
            self.record_step(plan, step, outcome, run_id=run_id, approver=approver)
        return on_step

    def record_result(self, plan: Mapping[str, Any], result: Mapping[str, Any] | None,
                      verification: Mapping[str, Any] | None = None, *, run_id: str | None = None,
                      approver: str | None = None) -> int:
        """The end of a run: the apply rows an ``on_step`` recorder did not already write (same step, same status),
        one verify row per step, and the run's outcome. Returns rows written."""
        base = _base(plan, run_id, approver=approver)
        steps = {s["id"]: s for s in plan.get("steps") or []}
        written = 0
        if result:
            recorded = self.applied_rows(str(plan.get("plan_id")), base["run_id"])
            for outcome in result.get("steps") or []:
                if recorded.get(outcome["id"]) != outcome.get("status"):  # not journaled by an on_step recorder
                    self.record_step(plan, steps[outcome["id"]], outcome, run_id=base["run_id"], approver=approver)
                    written += 1
        rows: list[dict[str, Any]] = []
        for check in (verification or {}).get("steps") or []:
            verdict = {True: "verified", False: "verify_failed", None: "not_verifiable"}[check.get("ok")]
            rows.append({**base, **_step_fields(steps[check["id"]]), "phase": "verify", "outcome": verdict,
                         "after": check.get("expected"),
                         "details": {"observed": check.get("observed"), "note": check.get("note")}})
        rows.append({**base, "phase": "run", "step_kind": "run", "outcome": _run_outcome(result, verification),
                     "request_ids": (result or {}).get("request_ids") or None,
                     "error": "\n".join((result or {}).get("errors") or []) or None,
                     "details": {"counts": (result or {}).get("counts"), "messages": (result or {}).get("messages"),
                                 "password": (result or {}).get("password"),
                                 "verified": None if verification is None else verification.get("ok"),
                                 "verify_failures": (verification or {}).get("failures")}})
        return written + len(self.record_rows(rows))

    def applied_rows(self, plan_id: str, run_id: str | None = None) -> dict[str, str]:
        """step id -> last recorded apply status for a plan (and run)."""
        rows = self.query(plan_id=plan_id, run_id=run_id, phase="apply", limit=100_000)
        return {r["step_id"]: r["outcome"] for r in rows if r["step_id"]}

    def applied_step_ids(self, plan_id: str, run_id: str | None = None) -> set[str]:
        """Ids of a plan's steps an earlier attempt applied (``done_step_ids`` of apply_plan: messages are not
        sent twice when the apply task is retried)."""
        return {sid for sid, status in self.applied_rows(plan_id, run_id).items()
                if status in ("applied", "already_done")}

    def membership_undo(self, user_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        """The team memberships (and roles) runs removed from a user since their last restore, oldest record wins:
        ``[{"team_id", "team_name", "role"}]``. Read from applied ``remove_team_member`` steps and the snapshot of
        applied ``delete_user`` steps."""
        rows = self.query(target_id=user_id, phase="apply", dry_run=False, outcome=("applied", "already_done"),
                          step_kind=("remove_team_member", "delete_user", "restore_user"), limit=limit,
                          newest_first=True)
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["step_kind"] == "restore_user":
                break  # memberships removed before an earlier restore belong to a previous lifecycle
            undo = row.get("undo") or {}
            entries = undo.get("teams") or [] if row["step_kind"] == "delete_user" else [undo]
            for entry in entries:
                if entry.get("team_id"):
                    found[entry["team_id"]] = {k: entry.get(k) for k in ("team_id", "team_name", "role")}
        return sorted(found.values(), key=lambda e: str(e.get("team_name") or ""))


# ---------------------------------------------------------------------------------------------- helpers
def _engine(url: str, kwargs: dict[str, Any]) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 30})
        if parsed.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", StaticPool)  # one in-memory database shared by all sessions
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _trigger_statements(dialect: str) -> list[str]:
    statements = {"sqlite": _SQLITE_TRIGGERS, "postgresql": _PG_TRIGGERS}.get(dialect, [])
    if not statements:
        log.warning("%s: no append-only triggers for the %s dialect; only the API is append-only", TABLE_NAME, dialect)
    return statements


def _has_triggers(conn: sa.Connection) -> bool:
    """Whether both append-only triggers exist (catalog reads only)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        sql = f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{TABLE_NAME}'"
    elif dialect == "postgresql":
        sql = (f"SELECT count(*) FROM pg_trigger WHERE tgrelid = '{TABLE_NAME}'::regclass AND tgname IN "
               f"('{TABLE_NAME}_no_change', '{TABLE_NAME}_no_truncate')")
    else:
        return True
    return int(conn.exec_driver_sql(sql).scalar() or 0) >= 2


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets readers and one writer work at once (several Airflow workers write the same file)."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _prepare(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(row) - _COLUMNS
    if unknown:
        raise ValueError(f"unknown audit column(s) {sorted(unknown)}; columns: {sorted(_COLUMNS)}")
    out = dict(row)
    out.setdefault("recorded_at", datetime.now(timezone.utc))
    out.setdefault("dry_run", False)
    if not out.get("phase"):
        raise ValueError("an audit row needs a phase (plan, approval, apply, verify, run)")
    for name in _TIME_COLUMNS:
        if isinstance(out.get(name), datetime):
            out[name] = _utc(out[name])
    for name in _JSON_COLUMNS & set(out):
        if out[name] is not None:
            out[name] = json.loads(json.dumps(out[name], default=str))  # JSON-safe, detached copy
    if out.get("target_id"):
        out["target_id"] = str(out["target_id"]).lower()
    return out


def _row_out(row: dict[str, Any]) -> dict[str, Any]:
    for name in _TIME_COLUMNS:
        value = row.get(name)
        if isinstance(value, datetime):
            row[name] = _utc(value).isoformat()
    return row


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _base(plan: Mapping[str, Any], run_id: str | None, *, requester: str | None = None,
          approver: str | None = None) -> dict[str, Any]:
    return {"run_id": run_id or plan.get("run_id"), "plan_id": plan.get("plan_id"), "dag_id": plan.get("dag_id"),
            "action": plan.get("action"), "requester": requester or plan.get("requester"), "approver": approver,
            "reason": plan.get("reason"), "ticket": plan.get("ticket"), "dry_run": bool(plan.get("dry_run")),
            "tenant_id": plan.get("tenant_id"), "connection_id": plan.get("connection")}


def _step_fields(step: Mapping[str, Any]) -> dict[str, Any]:
    target, obj = step.get("target") or {}, step.get("object") or {}
    return {"step_id": step.get("id"), "step_kind": step.get("kind"), "target_type": target.get("type"),
            "target_id": target.get("id"), "target_label": target.get("label"), "object_id": obj.get("id"),
            "object_label": obj.get("label")}


def _run_outcome(result: Mapping[str, Any] | None, verification: Mapping[str, Any] | None) -> str:
    if result is None:
        return "not_applied"
    if verification is not None and not verification.get("ok"):
        return "verify_failed"
    return str(result.get("outcome"))

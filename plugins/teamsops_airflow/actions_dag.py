"""The action DAGs (``msteams_create_user``, ``msteams_disable_user``, ...): one factory, one flow for every action.

``build_action_dag(dag_id)`` builds the DAG of an action in :data:`teamsops.actions.ACTIONS`::

    resolve -> plan -> approve -> apply -> verify -> audit

* **resolve** validates the conf (the same schema as the trigger form, plus the cross-key rules a form cannot
  express), refuses a read-only connection, and looks up every user / team / channel the conf names; what is not
  found is listed in one error.
* **plan** reads the current state and computes before -> after per step (no-ops marked, safeguards applied), writes
  the plan to the audit log (a dry run is recorded as such) and renders it as the Markdown body of the approval.
* **approve** is :class:`~teamsops_airflow.hitl.ActionApprovalOperator` (Airflow's ApprovalOperator): approvers from
  ``MSTEAMS_APPROVERS`` minus the requester, ``MSTEAMS_APPROVAL_TIMEOUT_HOURS`` (default 24; no answer = Reject),
  Reject skips apply and verify, a dry run skips it. No conf key can skip it.
* **apply** reads the recorded answer itself (Approve, from someone other than the requester, or nothing happens),
  re-checks the safeguards, and applies each step idempotently, journaling every step (with Graph's request ids) in
  the audit log as it happens, so a retried or re-run apply does only what is left.
* **verify** reads every step back; a write that did not take fails the run.
* **audit** always runs (a teardown: the approval's Reject does not skip it) and records the decision and the
  outcome, or why the run was refused; it fails the run when an earlier task failed.

Configuration (environment of the workers; deliberately not run conf, which the requester controls):
``MSTEAMS_APPROVERS``, ``MSTEAMS_APPROVAL_TIMEOUT_HOURS`` (see :mod:`teamsops_airflow.hitl`), ``MSTEAMS_SAFEGUARDS``
(JSON for :meth:`teamsops.actions.Safeguards.from_mapping`: protected_accounts, extra_protected_roles, max_batch...).
The audit database is the Airflow connection ``msteams_audit`` (postgres or sqlite type, or any type with an extra
``sqlalchemy_url``), else ``sqlite:///$AIRFLOW_HOME/msteams_audit.db``.

Parse time stays cheap: only the conf schemas are imported; Graph, the audit log and the plan code load inside tasks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import DAG, Param, get_parsing_context, task
from airflow.sdk.exceptions import AirflowFailException

from teamsops.actions.conf import ACTIONS, APP_ONLY_LIMITS, ActionSpec
from teamsops_airflow.dag_defaults import DEFAULT_ARGS, Tag
from teamsops_airflow.hitl import DECISION_KEY, ActionApprovalOperator, Decision, require_approval

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

    from teamsops.audit import AuditLog
    from teamsops_airflow.hooks import MSTeamsHook

log = logging.getLogger(__name__)

AUDIT_CONN_ID = "msteams_audit"
SAFEGUARDS_ENV = "MSTEAMS_SAFEGUARDS"
TASK_IDS = ("resolve", "plan", "approve", "apply", "verify", "audit")
_FAILED_STATES = frozenset({"failed", "upstream_failed"})
_START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


# ------------------------------------------------------------------------------------------------ configuration
def connection_sqlalchemy_url(conn: Connection) -> str:
    """The SQLAlchemy URL of an Airflow connection: extra ``sqlalchemy_url``, or built from a postgres / sqlite
    connection (``Connection.get_uri()`` would say ``postgres://``, which SQLAlchemy refuses)."""
    import sqlalchemy as sa

    explicit = (conn.extra_dejson or {}).get("sqlalchemy_url")
    if explicit:
        return str(explicit)
    kind = (conn.conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        url = sa.engine.URL.create("postgresql", username=conn.login or None, password=conn.password or None,
                                   host=conn.host or None, port=conn.port or None, database=conn.schema or None)
        return url.render_as_string(hide_password=False)
    if kind == "sqlite":
        return f"sqlite:///{conn.host or conn.schema}"
    raise AirflowFailException(
        f"Connection {AUDIT_CONN_ID!r} has type {conn.conn_type!r}: use a postgres or sqlite connection, or put a "
        "SQLAlchemy URL in its extra as 'sqlalchemy_url'.")


def audit_url() -> str:
    """The audit database: connection ``msteams_audit`` when defined, else SQLite under ``$AIRFLOW_HOME``."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from teamsops.audit import default_url

    try:
        conn = BaseHook.get_connection(AUDIT_CONN_ID)
    except AirflowNotFoundException:
        return default_url()
    return connection_sqlalchemy_url(conn)


@contextmanager
def open_audit() -> Iterator[AuditLog]:
    from teamsops.audit import AuditLog

    audit = AuditLog(audit_url())
    try:
        yield audit
    finally:
        audit.close()


def load_safeguards(value: str | None = None) -> Any:
    """:class:`teamsops.actions.Safeguards` from ``MSTEAMS_SAFEGUARDS`` (JSON object; unset = the defaults)."""
    from teamsops.actions import Safeguards

    raw = os.getenv(SAFEGUARDS_ENV, "") if value is None else value
    if not raw.strip():
        return Safeguards()
    try:
        return Safeguards.from_mapping(json.loads(raw))
    except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
        raise AirflowFailException(f"{SAFEGUARDS_ENV} is invalid: {err}. Expected a JSON object such as "
                                   '{"protected_accounts": ["breakglass@contoso.com"], "max_batch": 20}.') from err


# ------------------------------------------------------------------------------------------------ task bodies
def _run_facts(context: Context) -> tuple[str, str, str | None, dict[str, Any]]:
    dag_run = context["dag_run"]
    return dag_run.dag_id, dag_run.run_id, dag_run.triggering_user_name, dict(dag_run.conf or {})


@contextmanager
def _refusal(context: Context) -> Iterator[None]:
    """Turn an ActionError into a task failure without retries (retrying cannot fix a refused conf or plan), and
    keep its text in XCom (key ``error``) for the audit task."""
    from teamsops.actions import ActionError
    from teamsops.graph import GraphError

    try:
        yield
    except ActionError as err:
        context["ti"].xcom_push(key="error", value=str(err))
        raise AirflowFailException(str(err)) from err
    except GraphError as err:
        # Transient errors go on to the retry policy; the audit still gets the operator's sentence.
        context["ti"].xcom_push(key="error", value=err.summary())
        raise


@contextmanager
def _hook(conn_id: str) -> Iterator[MSTeamsHook]:
    from teamsops_airflow.hooks import MSTeamsHook

    hook = MSTeamsHook(conn_id)
    try:
        yield hook
    finally:
        hook.close()


def resolve_references(client: Any, dag_id: str, conf: Mapping[str, Any]) -> dict[str, list[str]]:
    """Look up every user / team / channel the (validated) conf names; ``{conf key: [labels]}``.

    :raises NotFoundError: / :raises AmbiguousError: naming each object that was not found.
    """
    from teamsops.actions.errors import NotFoundError
    from teamsops.actions.resolve import label, resolve_channel, resolve_team, resolve_users

    found: dict[str, list[str]] = {}
    missing: list[str] = []
    user_keys = ("users", "manager", "new_owner") if dag_id != "msteams_restore_user" else ()
    for key in user_keys:
        refs = conf.get(key)
        if not refs:
            continue
        try:
            role = "user" if key == "users" else key
            found[key] = [label(u) for u in resolve_users(client, [refs] if isinstance(refs, str) else refs, role=role)]
        except NotFoundError as err:
            missing += err.problems or [err.headline]
    if conf.get("user") and dag_id != "msteams_restore_user":
        try:
            found["user"] = [label(u) for u in resolve_users(client, [conf["user"]])]
        except NotFoundError as err:
            missing += [f"user {p}" for p in err.problems] or [err.headline]
    if conf.get("team"):
        try:
            team = resolve_team(client, conf["team"])
            found["team"] = [str(team.get("displayName") or team["id"])]
            if conf.get("channel"):
                channel = resolve_channel(client, team, conf["channel"])
                found["channel"] = [str(channel.get("displayName") or channel["id"])]
        except NotFoundError as err:
            missing += err.problems or [err.headline]
    if missing:
        raise NotFoundError(f"{len(missing)} object(s) named in the conf were not found (nothing was changed)",
                            missing)
    return found


def resolve_step(context: Context) -> dict[str, Any]:
    """Validate the conf, refuse a read-only connection, look up every object; return what was found."""
    from teamsops.actions import validate_conf
    from teamsops.actions.plan import refuse_read_only

    dag_id, _, requester, raw = _run_facts(context)
    with _refusal(context):
        conf = validate_conf(dag_id, raw)
        with _hook(conf["connection"]) as hook:
            refuse_read_only(hook.client, conf["connection"])
            found = resolve_references(hook.client, dag_id, conf)
    log.info("resolved for %s (requested by %s): %s", dag_id, requester or "unknown", found)
    return {"connection": conf["connection"], "found": found, "dry_run": bool(conf.get("dry_run"))}


def plan_step(context: Context) -> dict[str, Any]:
    """Build the plan (reads only), record it in the audit log, push its Markdown (key ``markdown``)."""
    from teamsops.actions import build_plan, render_plan

    dag_id, run_id, requester, raw = _run_facts(context)
    connection = context["ti"].xcom_pull(task_ids="resolve")["connection"]
    with _refusal(context), _hook(connection) as hook, open_audit() as audit:
        plan = build_plan(hook.client, dag_id, raw, safeguards=load_safeguards(), requester=requester,
                          run_id=run_id, audit=audit)
        audit.record_plan(plan, run_id=run_id, requester=requester)
    context["ti"].xcom_push(key="markdown", value=render_plan(plan))
    log.info("plan %s: %s", plan["plan_id"], plan["summary"])
    return plan


def apply_step(context: Context) -> dict[str, Any]:
    """Check the recorded answer, then apply the plan idempotently (each step journaled in the audit log)."""
    from teamsops.actions import ApplyFailed, apply_plan, raise_for_outcome
    from teamsops.actions.steps import MESSAGE_KINDS

    ti = context["ti"]
    _, run_id, requester, _ = _run_facts(context)
    plan = ti.xcom_pull(task_ids="plan")
    try:
        decision = require_approval(ti.xcom_pull(task_ids="approve", key=DECISION_KEY), requester)
    except AirflowFailException as err:
        ti.xcom_push(key="error", value=str(err))
        raise
    sends_messages = any(s["kind"] in MESSAGE_KINDS and not s.get("noop") for s in plan["steps"])
    with _refusal(context), _hook(plan["connection"]) as hook, open_audit() as audit:
        if not audit.query(plan_id=plan["plan_id"], run_id=run_id, phase="approval", limit=1):
            audit.record_decision(plan, decision.outcome, run_id=run_id, approver=decision.approver,
                                  note=_decision_note(decision))
        bot = hook.get_bot_client() if sends_messages else None
        try:
            result = apply_plan(hook.client, plan, bot=bot, safeguards=load_safeguards(),
                                on_step=audit.step_recorder(plan, run_id=run_id, approver=decision.approver),
                                done_step_ids=audit.applied_step_ids(plan["plan_id"], run_id))
        finally:
            if bot is not None:
                bot.close()
        ti.xcom_push(key="result", value=result)
        try:
            raise_for_outcome(result)
        except ApplyFailed as err:
            # Every write was already retried within the client's budget and each step is journaled: a blind task
            # retry would only repeat the failure. Clearing this task re-applies what is left (idempotent).
            ti.xcom_push(key="error", value=str(err))
            raise AirflowFailException(str(err)) from err
    log.info("applied %s: %s", plan["plan_id"], result["counts"])
    return result


def verify_step(context: Context) -> dict[str, Any]:
    """Read every step back; fail when a write did not take."""
    from teamsops.actions import VerifyFailed, raise_for_outcome, verify_plan

    ti = context["ti"]
    plan = ti.xcom_pull(task_ids="plan")
    result = ti.xcom_pull(task_ids="apply", key="result")
    with _refusal(context), _hook(plan["connection"]) as hook:
        report = verify_plan(hook.client, plan, result)
    ti.xcom_push(key="report", value=report)
    try:
        raise_for_outcome(report)
    except VerifyFailed as err:
        ti.xcom_push(key="error", value=str(err))
        raise AirflowFailException(str(err)) from err
    return report


def audit_step(context: Context) -> dict[str, Any]:
    """Record how the run ended (decision, outcome, or why it was refused); fail when an earlier task failed."""
    ti = context["ti"]
    dag_id, run_id, requester, raw = _run_facts(context)
    states = _task_states(context, dag_id, run_id)
    failed = [t for t in TASK_IDS[:-1] if states.get(t) in _FAILED_STATES]
    errors = {t: ti.xcom_pull(task_ids=t, key="error") for t in TASK_IDS[:-1]}
    first_error = next((errors[t] for t in TASK_IDS[:-1] if errors.get(t)), None)
    plan = ti.xcom_pull(task_ids="plan")
    decision = Decision.from_payload(ti.xcom_pull(task_ids="approve", key=DECISION_KEY))
    with open_audit() as audit:
        outcome = _record_outcome(audit, context, plan, decision, states, first_error, requester, raw)
    if failed:
        where = failed[0]
        raise AirflowFailException(f"The run failed at task {where!r} (outcome recorded in the audit log as "
                                   f"{outcome!r}): {errors.get(where) or first_error or 'see that task log'}")
    return {"outcome": outcome, "states": states}


def _task_states(context: Context, dag_id: str, run_id: str) -> dict[str, str | None]:
    found = context["ti"].get_task_states(dag_id=dag_id, run_ids=[run_id])
    return dict(found.get(run_id) or {})


def _record_outcome(audit: AuditLog, context: Context, plan: dict[str, Any] | None, decision: Decision | None,
                    states: Mapping[str, str | None], error: str | None, requester: str | None,
                    raw: Mapping[str, Any]) -> str:
    """Write the run's last audit rows (once per plan: a retried audit task does not duplicate them)."""
    dag_id, run_id = context["dag_run"].dag_id, context["dag_run"].run_id
    if _run_recorded(audit, run_id, (plan or {}).get("plan_id")):
        return "already_recorded"
    if plan is None:
        # Refused before a plan existed (invalid conf, not found, protected account...): still on the record.
        audit.record(run_id=run_id, dag_id=dag_id, action=dag_id.removeprefix("msteams_"), phase="run",
                     step_kind="run", outcome="refused", requester=requester, reason=raw.get("reason"),
                     ticket=raw.get("ticket"), dry_run=bool(raw.get("dry_run")), error=error,
                     details={"conf": dict(raw), "states": dict(states)})
        return "refused"
    if plan.get("dry_run"):
        return "dry_run"  # the plan task recorded the plan (outcome dry_run); nothing else happened
    if decision is not None and not decision.approved:
        audit.record_decision(plan, decision.outcome, run_id=run_id, approver=decision.approver,
                              note=_decision_note(decision))
    result = context["ti"].xcom_pull(task_ids="apply", key="result")
    report = context["ti"].xcom_pull(task_ids="verify", key="report")
    if result is None:
        base = _base_row(plan, run_id, decision)
        outcome = "not_applied" if decision is None or decision.approved else decision.outcome
        audit.record(**base, phase="run", step_kind="run", outcome=outcome, error=error,
                     details={"states": dict(states)})
        return outcome
    audit.record_result(plan, result, report, run_id=run_id, approver=decision.approver if decision else None)
    return "verify_failed" if report is not None and not report.get("ok") else str(result.get("outcome"))


def _decision_note(decision: Decision) -> str | None:
    """Say in the audit log when the approval had to be asked more than once (see teamsops_airflow.hitl)."""
    if decision.attempt > 1:
        return (f"asked {decision.attempt} times: an earlier request was interrupted (e.g. Airflow 3.3.2 lost the "
                "resume of an answer given within seconds of the request); this answer is the one that counted")
    return None


def _run_recorded(audit: AuditLog, run_id: str, plan_id: str | None) -> bool:
    return any(row["plan_id"] == plan_id for row in audit.query(run_id=run_id, phase="run"))


def _base_row(plan: Mapping[str, Any], run_id: str, decision: Decision | None) -> dict[str, Any]:
    return {"run_id": run_id, "plan_id": plan.get("plan_id"), "dag_id": plan.get("dag_id"),
            "action": plan.get("action"), "requester": plan.get("requester"),
            "approver": decision.approver if decision else None, "reason": plan.get("reason"),
            "ticket": plan.get("ticket"), "dry_run": bool(plan.get("dry_run")), "tenant_id": plan.get("tenant_id"),
            "connection_id": plan.get("connection")}


# ------------------------------------------------------------------------------------------------ the DAG
def _doc(spec: ActionSpec) -> str:
    keys = "\n".join(f"* `{key}`{' (required)' if key in spec.required else ''}: "
                     f"{schema.get('description') or schema.get('title') or ''}"
                     for key, schema in spec.params.items())
    return (f"## {spec.title}\n\n{spec.description}\n\n"
            "**Flow:** resolve → plan → approve (a second person, in Airflow's *Required actions*) → apply → "
            "verify → audit. Reject, or no answer within the approval timeout, changes nothing. `dry_run` stops "
            "after the plan and records it in the audit log. The requester cannot approve their own run.\n\n"
            f"**Conf keys**\n\n{keys}\n\n**Not possible with app-only access:** {APP_ONLY_LIMITS}\n")


def build_action_dag(dag_id: str) -> DAG:
    """The DAG of one action (``dag_id`` must be in :data:`teamsops.actions.ACTIONS`)."""
    spec = ACTIONS.get(dag_id)
    if spec is None:
        raise ValueError(f"unknown action DAG {dag_id!r}; known: {', '.join(sorted(ACTIONS))}")
    params = {key: Param(**kwargs) for key, kwargs in spec.airflow_params().items()}
    with DAG(
        dag_id=dag_id,
        description=spec.title,
        doc_md=_doc(spec),
        schedule=None,
        start_date=_START_DATE,
        catchup=False,
        default_args=DEFAULT_ARGS,
        tags=[Tag.MSTEAMS.value, Tag.ACTION.value],
        params=params,
    ) as dag:
        resolve = _task("resolve", resolve_step)
        plan = _task("plan", plan_step)
        approve = ActionApprovalOperator(
            task_id="approve",
            subject=f"{spec.title}: approve the plan of run {{{{ run_id }}}}",
            body="{{ ti.xcom_pull(task_ids='plan', key='markdown') }}",
        )
        apply = _task("apply", apply_step)
        verify = _task("verify", verify_step)
        # A teardown: the approval's Reject (ignore_downstream_trigger_rules) skips everything downstream except
        # teardowns, and on_failure_fail_dagrun makes it the task that decides the run's state.
        audit = _task("audit", audit_step).as_teardown(on_failure_fail_dagrun=True)
        resolve >> plan >> approve >> apply >> verify >> audit
    return dag


def _task(task_id: str, body: Callable[[Context], Any]) -> Any:
    """A TaskFlow task running ``body(context)`` (the bodies are plain functions, documented and testable)."""

    def run(**context: Any) -> Any:
        return body(context)

    run.__name__ = run.__qualname__ = task_id
    run.__doc__ = body.__doc__
    return task(task_id=task_id)(run)().operator


def build_action_dags(dag_ids: Iterable[str] | None = None) -> dict[str, DAG]:
    """Every action DAG, or only the one a task process is parsing for (Airflow's parsing context), which keeps
    the start of each task fast."""
    wanted = list(dag_ids) if dag_ids is not None else list(ACTIONS)
    parsing_for = get_parsing_context().dag_id
    if parsing_for in wanted:
        wanted = [parsing_for]
    return {dag_id: build_action_dag(dag_id) for dag_id in wanted}

"""The approval step of the action DAGs: who may approve, how long the request waits, and reading the real answer.

:class:`ActionApprovalOperator` is Airflow's ``ApprovalOperator`` (Approve / Reject, ``fail_on_reject=False``,
``ignore_downstream_trigger_rules=True``) with the project's rules applied when the task runs:

* **Approvers** come from ``MSTEAMS_APPROVERS`` (comma-separated user names, or ``id:name`` for auth managers whose
  user ids are not the names, e.g. FAB's numeric ids). Empty means any user whose role may answer (op and above).
  The run's requester is removed from the list, so the API refuses their answer with 403; when nobody else is left
  the task fails at once ("configure another approver") instead of waiting for an answer that cannot come.
* **Timeout**: ``MSTEAMS_APPROVAL_TIMEOUT_HOURS`` (default 24). The default answer is Reject, so a request nobody
  answers changes nothing.
* **Dry runs** never ask: the task skips itself (and with it apply and verify) when the plan is a dry run.

**The Airflow 3.3.2 race.** An answer that arrives within a few seconds of the task parking in ``awaiting_input``
resumes the task (SCHEDULED) before the scheduler has processed the executor's "finished" event of the parking
attempt; the scheduler then sees a queued task "finished" and fails it as killed externally ("state mismatch",
``scheduler_job_runner.process_executor_events``). The resumed attempt is refused by the execution API, so
``execute_complete`` never runs and nothing is applied. This operator therefore has its own retries with a short
fixed delay, so the failure becomes ``up_for_retry`` instead of a failed run, and the next attempt **asks again**
(subject "asked again", and a note in the body saying why). The lost answer cannot be honoured instead: the
scheduler's failure path clears the task's resume payload, the next attempt's request write wipes the recorded
answer, and Airflow's task supervisor does not relay HITL reads to a task, so a task has no supported way to read
it first. The window is the time until the scheduler has processed the parking attempt's end: about 1 s on an
idle deployment, several seconds on a loaded one.

A second, SQLite-only gap: Airflow serializes "answer" and "park" with row locks, which SQLite ignores, so an
answer landing in the few milliseconds between the request being written and the task parking can leave the task
parked with its answer recorded; the scheduler's timeout sweep then resumes it with that answer at the deadline.
Nothing is applied before, and PostgreSQL (the supported metadata database) does not have this gap.

The apply task never trusts the approval task's state: it reads the recorded answer itself
(:func:`require_approval`), so nothing is applied without an Approve from someone other than the requester.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

APPROVERS_ENV = "MSTEAMS_APPROVERS"
APPROVAL_TIMEOUT_ENV = "MSTEAMS_APPROVAL_TIMEOUT_HOURS"
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=24)
DECISION_KEY = "decision"
APPROVE = ApprovalOperator.APPROVE
REJECT = ApprovalOperator.REJECT
# Re-asking after the 3.3.2 race: each lost answer costs one retry, and an answer lands in the race window only
# when it comes within seconds of the request, so five in a row is not a realistic human pattern.
APPROVAL_RETRIES = 5
APPROVAL_RETRY_DELAY = timedelta(seconds=5)
ASKED_AGAIN_NOTE = (
    "> **Asked again.** An earlier request for this approval was interrupted (Airflow 3.3.2 can lose an answer given "
    "within seconds of the request appearing), so nothing was applied. Please answer once more.\n\n"
)


class ApprovalConfigError(ValueError):
    """``MSTEAMS_APPROVERS`` or ``MSTEAMS_APPROVAL_TIMEOUT_HOURS`` is malformed (the message names the variable)."""


class ApprovalRefused(AirflowFailException):
    """Apply refused: no Approve answer, or the requester approved their own run. Nothing was applied."""


# ------------------------------------------------------------------------------------------------ configuration
def configured_approvers(value: str | None = None) -> list[dict[str, str]]:
    """``MSTEAMS_APPROVERS`` as HITL users ``[{"id", "name"}]`` (empty list = no restriction).

    Entries are ``name`` (id = name, as with Airflow's simple auth manager) or ``id:name``.
    """
    raw = os.getenv(APPROVERS_ENV, "") if value is None else value
    users: dict[str, dict[str, str]] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        user_id, _, name = entry.partition(":")
        user_id, name = user_id.strip(), (name.strip() or user_id.strip())
        if not user_id:
            raise ApprovalConfigError(f"{APPROVERS_ENV}: entry {entry!r} has no user id; use 'name' or 'id:name'")
        users.setdefault(user_id, {"id": user_id, "name": name})
    return list(users.values())


def approval_timeout(value: str | None = None) -> timedelta:
    """``MSTEAMS_APPROVAL_TIMEOUT_HOURS`` (a positive number of hours, default 24) as a timedelta."""
    raw = os.getenv(APPROVAL_TIMEOUT_ENV, "") if value is None else value
    if not raw.strip():
        return DEFAULT_APPROVAL_TIMEOUT
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not hours > 0:
        raise ApprovalConfigError(f"{APPROVAL_TIMEOUT_ENV}={raw!r} is invalid: expected a positive number of hours")
    return timedelta(hours=hours)


def same_person(user: Mapping[str, Any] | None, requester: str | None) -> bool:
    """True when the HITL user (``{"id", "name"}``) is the run's requester (compared case-insensitively)."""
    if not user or not requester:
        return False
    wanted = requester.strip().lower()
    return any(str(user.get(key) or "").strip().lower() == wanted for key in ("id", "name"))


def eligible_approvers(approvers: list[dict[str, str]], requester: str | None) -> list[dict[str, str]]:
    """The configured approvers without the requester."""
    return [user for user in approvers if not same_person(user, requester)]


# ------------------------------------------------------------------------------------------------ the answer
@dataclass(frozen=True)
class Decision:
    """The answer the approval task received (its XCom ``decision``, see :func:`decision_payload`)."""

    option: str | None
    approver: str | None
    approver_id: str | None
    responded_at: str | None
    timed_out: bool
    attempt: int = 1  # the approval task's try that got this answer (> 1: the request was asked again)

    @property
    def approved(self) -> bool:
        return self.option == APPROVE and not self.timed_out

    @property
    def outcome(self) -> str:
        """``approved``, ``rejected`` or ``timed_out`` (the audit log's decision values)."""
        if self.timed_out:
            return "timed_out"
        return "approved" if self.approved else "rejected"

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any] | None) -> Decision | None:
        """Read the approval task's ``decision`` XCom; ``None`` when there is no answer."""
        if not payload or not payload.get("chosen_options"):
            return None
        user = payload.get("responded_by_user") or {}
        when = payload.get("responded_at")
        options = list(payload["chosen_options"])
        return cls(option=str(options[0]) if len(options) == 1 else None,
                   approver=user.get("name"), approver_id=user.get("id"),
                   responded_at=when.isoformat() if isinstance(when, datetime) else (str(when) if when else None),
                   timed_out=bool(payload.get("timedout")) or (not user and options == [REJECT]),
                   attempt=int(payload.get("attempt") or 1))


def require_approval(payload: Mapping[str, Any] | None, requester: str | None) -> Decision:
    """What the apply task checks before anything else: the approval task's recorded answer is Approve, from a
    named person who is not the requester (when Airflow knows who triggered the run).

    :raises ApprovalRefused: otherwise; nothing has been applied.
    """
    decision = Decision.from_payload(payload)
    if decision is None:
        raise ApprovalRefused("No approval answer is recorded for this run, so nothing was applied. Trigger the "
                              "DAG again and have an approver answer the request.")
    if not decision.approved:
        raise ApprovalRefused(f"The approval answer was {decision.outcome!r}, not Approve: nothing was applied.")
    if not decision.approver:
        raise ApprovalRefused("The approval has no named approver (is simple_auth_manager_all_admins on?): "
                              "nothing was applied. Approvals need authenticated, named users.")
    if same_person({"id": decision.approver_id, "name": decision.approver}, requester):
        raise ApprovalRefused(f"{decision.approver} approved their own request: the requester cannot approve their "
                              "own run, so nothing was applied. Trigger the DAG again and ask another person to "
                              f"approve (restrict approvers with {APPROVERS_ENV}).")
    return decision


# ------------------------------------------------------------------------------------------------ the operator
class ActionApprovalOperator(ApprovalOperator):
    """Approve / Reject an action's plan (see the module docstring for the rules applied at run time).

    :param plan_task_id: the task whose return value is the plan (a dry-run plan skips the approval).
    """

    def __init__(self, *, plan_task_id: str = "plan", **kwargs: Any) -> None:
        for fixed in ("fail_on_reject", "ignore_downstream_trigger_rules", "defaults", "assigned_users"):
            if fixed in kwargs:
                raise ValueError(f"{fixed} is fixed by ActionApprovalOperator (see teamsops_airflow.hitl)")
        kwargs.setdefault("retries", APPROVAL_RETRIES)
        kwargs.setdefault("retry_delay", APPROVAL_RETRY_DELAY)
        kwargs.setdefault("retry_exponential_backoff", False)
        kwargs.setdefault("response_timeout", DEFAULT_APPROVAL_TIMEOUT)
        super().__init__(fail_on_reject=False, ignore_downstream_trigger_rules=True, defaults=REJECT, **kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if not plan:
            raise AirflowFailException(f"no plan from task {self.plan_task_id!r}: nothing to approve")
        if plan.get("dry_run"):
            raise AirflowSkipException("dry run: the plan is recorded in the audit log; nothing is asked or applied")
        requester = context["dag_run"].triggering_user_name
        try:
            approvers = configured_approvers()
            self.response_timeout = approval_timeout()
        except ApprovalConfigError as err:
            ti.xcom_push(key="error", value=str(err))
            raise AirflowFailException(str(err)) from err
        if approvers:
            eligible = eligible_approvers(approvers, requester)
            if not eligible:
                message = (f"Nobody can approve this run: {APPROVERS_ENV} lists only the requester {requester!r}. "
                           "Add another approver to it and trigger again (nothing was applied).")
                ti.xcom_push(key="error", value=message)
                raise AirflowFailException(message)
            self.assigned_users = eligible
        if ti.try_number > 1:
            log.warning("attempt %d: asking again (an earlier attempt was interrupted, e.g. Airflow lost the resume "
                        "of an early answer); nothing has been applied", ti.try_number)
            self.subject = f"{self.subject} (asked again)"
            self.body = ASKED_AGAIN_NOTE + (self.body or "")
        log.info("asking for approval of plan %s (requester %s, approvers %s, timeout %s)", plan.get("plan_id"),
                 requester or "unknown", [u["name"] for u in approvers] or "any op user", self.response_timeout)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            # Pushed before the parent runs: on Reject it skips the downstream tasks by raising, so its return
            # value never reaches XCom, and the audit task must still learn who rejected.
            answer = decision_payload(event)
            answer["attempt"] = context["ti"].try_number
            context["ti"].xcom_push(key=DECISION_KEY, value=answer)
        return super().execute_complete(context=context, event=event)


def decision_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """The answer as stored in XCom (key ``decision``): options, who, when, and whether the request timed out
    (a timeout also carries "Reject", the default, but the audit log should say nobody answered)."""
    when = event.get("responded_at")
    return {"chosen_options": list(event.get("chosen_options") or []),
            "responded_by_user": event.get("responded_by_user"),
            "responded_at": when.isoformat() if isinstance(when, datetime) else when,
            "timedout": bool(event.get("timedout"))}

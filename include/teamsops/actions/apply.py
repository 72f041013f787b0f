"""Apply an approved plan, idempotently, recording Graph's request id of every write.

For each step, in order:

1. a step whose group already failed is not run (``not_run``); other groups (other users of a batch) go on;
2. the current state is read; a step already in its target state succeeds **without a write** (``already_done``);
   message steps, which cannot be read back, are skipped when ``done_step_ids`` (from the audit log of this run)
   says an earlier attempt delivered them;
3. otherwise the one write is sent with automatic re-sending switched off. When the connection drops after the
   request was sent (outcome unknown), the state is **re-read** (a few times, Graph is eventually consistent): if the
   change took, the step is ``applied`` and nothing is sent again; only when the re-read shows it did not take is it
   sent once more. A 404/400/409 answer is also checked by re-reading (e.g. a membership removed meanwhile);
4. ``on_step(step, step_result)`` is called after every step (the DAG records each step in the audit log there, so a
   crash half-way leaves a complete trail and a rerun skips what was done). An exception from it stops the apply.

Before the first write the plan is checked: not a dry run, same tenant as the client, a bot client when the plan
sends messages; and the target users are checked against the protected-account safeguards again (a role may have
been assigned while the run waited for approval).

The result (JSON-serialisable, small)::

    {"plan_id", "dag_id", "action", "title", "tenant_id", "started_at", "finished_at",
     "outcome": "success" | "partial" | "failed",
     "steps": [{"id", "kind", "title", "target_id", "status", "request_ids", "before", "error", "note", "at",
                "activity_id"?}],
     "request_ids": [...every Graph request-id of a write...],
     "counts": {"applied", "already_done", "failed", "not_run", "not_reachable", "skipped"},
     "messages": {"delivered": n, "not_reachable": ["Name <upn>", ...], "failed": [...]},
     "password": {"generated": true, "delivered": true, "delivered_to": "Name <upn>"}        # create_user only
               | {"generated": true, "delivered": false, "reason": "...", "advice": "an admin must reset..."}
               | {"generated": false, "note": "..."},
     "errors": ["step 3 (...): ..."]}

Step statuses: ``applied`` (written now), ``already_done`` (no write needed), ``failed``, ``not_run``,
``not_reachable`` (bot not installed / blocked), ``skipped`` (e.g. no password to deliver).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from teamsops.actions.bot_messages import NOT_REACHABLE_CODES
from teamsops.actions.context import iso_now
from teamsops.actions.errors import PlanError, SafeguardError
from teamsops.actions.lifecycle import PASSWORD_ADVICE
from teamsops.actions.safeguards import Safeguards, protection_of
from teamsops.actions.steps import KINDS, MESSAGE_KINDS, NoPasswordToDeliver, StepContext, StepKind, Written
from teamsops.graph import (
    BotClient,
    BotError,
    GraphBadRequest,
    GraphClient,
    GraphConflict,
    GraphConnectionError,
    GraphError,
    GraphNotFound,
)

__all__ = ["STATUSES", "Settle", "apply_plan"]

log = logging.getLogger(__name__)

STATUSES = ("applied", "already_done", "failed", "not_run", "not_reachable", "skipped")
_CHECKED_ERRORS = (GraphNotFound, GraphBadRequest, GraphConflict)


@dataclass(frozen=True)
class Settle:
    """How long to wait for Graph's eventual consistency when re-reading after a write.

    :param attempts: reads before concluding (the first one immediately).
    :param delay: seconds between reads (doubled each time).
    """

    attempts: int = 4
    delay: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def reads(self, read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Read until ``done(state)`` or the attempts are spent; return the last state."""
        delay = self.delay
        state = read()
        for _ in range(self.attempts - 1):
            if done(state):
                break
            self.sleep(delay)
            delay *= 2
            state = read()
        return state


def apply_plan(client: GraphClient, plan: dict[str, Any], *, bot: BotClient | None = None,
               safeguards: Safeguards | None = None,
               on_step: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
               done_step_ids: Iterable[str] = (), settle: Settle | None = None) -> dict[str, Any]:
    """Apply an approved plan (see the module docstring).

    :param bot: needed when the plan sends bot messages.
    :param safeguards: re-checked against the target users before the first write (defaults when None).
    :param on_step: called as ``on_step(step, step_result)`` after each step (audit journaling).
    :param done_step_ids: ids of this plan's message steps an earlier attempt recorded as delivered.
    :raises PlanError: / :raises SafeguardError: before anything is written.
    """
    check_plan(client, plan, bot)
    recheck_protection(client, plan, safeguards or Safeguards())
    ctx = StepContext(client, bot, texts=dict(plan.get("texts") or {}))
    settle = settle or Settle()
    done = set(done_step_ids)
    result = _new_result(plan)
    failed_groups: set[str] = set()
    try:
        for step in plan["steps"]:
            outcome = _run_step(ctx, step, failed_groups, done, settle)
            result["steps"].append(outcome)
            if outcome["status"] == "failed" and step["kind"] not in MESSAGE_KINDS:
                failed_groups.add(str(step.get("group")))
            if on_step is not None:
                on_step(step, outcome)
    finally:
        ctx.secrets.clear()  # temporary passwords never outlive the apply
    return _finish(plan, result)


def check_plan(client: GraphClient, plan: dict[str, Any], bot: BotClient | None) -> None:
    """Refuse a plan that must not be applied, before any write."""
    if plan.get("version") != 1 or not isinstance(plan.get("steps"), list):
        raise PlanError("this is not a plan built by teamsops.actions.build_plan (version 1)")
    if plan.get("dry_run"):
        raise PlanError(f"plan {plan.get('plan_id')} is a dry run: it is never applied (trigger again with "
                        "dry_run false to make the change)")
    if str(plan.get("tenant_id")).lower() != str(client.settings.tenant_id).lower():
        raise PlanError(f"plan {plan.get('plan_id')} was made for tenant {plan.get('tenant_id')}, but the client "
                        f"is connected to {client.settings.tenant_id}: refusing to apply it elsewhere")
    unknown = [s["kind"] for s in plan["steps"] if s["kind"] not in KINDS]
    if unknown:
        raise PlanError(f"plan has unknown step kinds {sorted(set(unknown))}")
    if bot is None and any(s["kind"] in MESSAGE_KINDS and not s.get("noop") for s in plan["steps"]):
        raise PlanError("this plan sends bot messages: pass bot=BotClient(...) built from the same connection")
    if client.settings.read_only:
        raise PlanError("the connection is read-only (access='read'): set access to read_write to apply plans")


def recheck_protection(client: GraphClient, plan: dict[str, Any], safeguards: Safeguards) -> None:
    """Protected accounts are never changed: check the users the plan writes to again, right before applying."""
    override = bool((plan.get("overrides") or {}).get("override_protection"))
    users: dict[str, str] = {}
    for step in plan["steps"]:
        target = step.get("target") or {}
        # Users the step changes: messages change nobody, a promoted new owner is not the run's subject (group).
        if step["kind"] in MESSAGE_KINDS or not target.get("id"):
            continue
        if target.get("type") == "user" and step.get("group") == target.get("id"):
            users[target["id"]] = target.get("label", target["id"])
    refused = []
    for user_id, label in users.items():
        info = protection_of(client, {"id": user_id, "userPrincipalName": _upn_of(plan, user_id)}, safeguards)
        if info["configured"] or (info["roles"] and not override):
            why = "a configured protected account" if info["configured"] else f"holds {', '.join(info['roles'])}"
            refused.append(f"{label} is {why} now")
    if refused:
        raise SafeguardError("refused before any write: a target became protected after the plan was approved",
                             refused)


def _upn_of(plan: dict[str, Any], user_id: str) -> str:
    return next((t.get("userPrincipalName") or "" for t in plan.get("targets") or [] if t.get("id") == user_id), "")


def _new_result(plan: dict[str, Any]) -> dict[str, Any]:
    return {"plan_id": plan.get("plan_id"), "dag_id": plan.get("dag_id"), "action": plan.get("action"),
            "title": plan.get("title"), "tenant_id": plan.get("tenant_id"), "started_at": iso_now(),
            "finished_at": None, "outcome": None, "steps": [], "request_ids": [], "errors": []}


# ------------------------------------------------------------------------------------------------ one step
def _run_step(ctx: StepContext, step: dict[str, Any], failed_groups: set[str], done: set[str],
              settle: Settle) -> dict[str, Any]:
    outcome: dict[str, Any] = {"id": step["id"], "kind": step["kind"], "title": step["title"],
                               "target_id": (step.get("target") or {}).get("id"), "status": None,
                               "request_ids": [], "before": None, "error": None, "note": None, "at": None}
    try:
        if str(step.get("group")) in failed_groups:
            outcome.update(status="not_run", note="an earlier step for the same user failed")
        elif step["kind"] in MESSAGE_KINDS:
            _run_message(ctx, step, outcome, done)
        else:
            _run_write(ctx, KINDS[step["kind"]], step, outcome, settle)
    except GraphError as err:
        outcome.update(status="failed", error=err.summary())
        log.error("step %s (%s) failed: %s", step["id"], step["title"], err.summary())
    outcome["at"] = iso_now()
    return outcome


def _run_write(ctx: StepContext, kind: StepKind, step: dict[str, Any], outcome: dict[str, Any],
               settle: Settle) -> None:
    state = kind.read(ctx, step)
    outcome["before"] = _public(state)
    if kind.satisfied(step, state):
        outcome.update(status="already_done")
        if step["kind"] == "create_user":
            outcome["note"] = "the user already exists: no password was generated"
        return
    written = _write_verified(ctx, kind, step, state, settle)
    outcome.update(status="applied", request_ids=written.request_ids, note=written.note)
    if written.details.get("already"):
        outcome["status"] = "already_done"
    log.info("step %s (%s): applied (request-id %s)", step["id"], step["title"], ", ".join(written.request_ids))


def _write_verified(ctx: StepContext, kind: StepKind, step: dict[str, Any], state: dict[str, Any],
                    settle: Settle, resent: bool = False) -> Written:
    """One write; after a connection loss with unknown outcome, re-read before deciding anything."""
    try:
        return _write_settling(ctx, kind, step, state, settle)
    except GraphConnectionError as err:
        if not err.outcome_unknown:
            raise
        log.warning("step %s: the connection dropped after sending (client-request-id %s): re-reading",
                    step["id"], err.client_request_id)
        latest = settle.reads(lambda: kind.read(ctx, step), lambda s: kind.satisfied(step, s))
        if kind.satisfied(step, latest):
            return Written([], note=f"the connection dropped after the request was sent (client-request-id "
                                    f"{err.client_request_id}); re-reading shows the change took, so it was not "
                                    "sent again")
        if resent:
            raise
        written = _write_verified(ctx, kind, step, latest, settle, resent=True)
        written.note = ("the connection dropped after the first send; re-reading showed the change had not taken, "
                        "so it was sent once more")
        return written
    except _CHECKED_ERRORS as err:
        latest = kind.read(ctx, step)
        if kind.satisfied(step, latest):
            return Written([], note=f"Graph answered {err.status} {err.code}, but the target state is already "
                                    "reached (changed meanwhile)", details={"already": True})
        raise


def _write_settling(ctx: StepContext, kind: StepKind, step: dict[str, Any], state: dict[str, Any],
                    settle: Settle) -> Written:
    """The write; a 404 about an object created earlier in this apply is retried while Graph catches up."""
    delay = settle.delay
    for attempt in range(settle.attempts):
        try:
            return kind.write(ctx, step, state)
        except GraphNotFound:
            refs = {str(v).lower() for v in (step.get("params") or {}).values() if isinstance(v, str)}
            if attempt + 1 >= settle.attempts or not refs & ctx.created:
                raise
            log.info("step %s: a just-created object is not visible yet; retrying in %.1f s", step["id"], delay)
            settle.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _run_message(ctx: StepContext, step: dict[str, Any], outcome: dict[str, Any], done: set[str]) -> None:
    if step["id"] in done:
        outcome.update(status="already_done", note="delivered by an earlier attempt of this run (audit log)")
        return
    if step.get("noop"):
        outcome.update(status="skipped", note=step.get("note") or "nothing to send")
        return
    try:
        written = KINDS[step["kind"]].write(ctx, step, {})
    except NoPasswordToDeliver:
        outcome.update(status="skipped", note="the user was not created by this run (it already existed), so there "
                                              "is no temporary password to deliver")
        return
    except BotError as err:
        _bot_failure(step, outcome, err)
        return
    outcome.update(status="applied", activity_id=written.details.get("activity_id"))


def _bot_failure(step: dict[str, Any], outcome: dict[str, Any], err: BotError) -> None:
    label = (step.get("target") or {}).get("label")
    if err.code in NOT_REACHABLE_CODES:
        outcome.update(status="not_reachable", error=f"{label} is not reachable by the bot: {err.summary()}")
    elif err.code == "ConnectionError":
        outcome.update(status="failed", error=f"{label}: {err.summary()} (not sent again: a message cannot be read "
                                              "back, so a duplicate is worse than a check)")
    else:
        outcome.update(status="failed", error=f"{label}: {err.summary()}")
    log.warning("step %s (%s): %s", step["id"], step["title"], outcome["error"])


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """State as recorded in the result (opaque membership ids left out)."""
    return {k: v for k, v in state.items() if k != "membership_id"}


# ------------------------------------------------------------------------------------------------ result
def _finish(plan: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    steps = result["steps"]
    result["counts"] = {status: sum(1 for s in steps if s["status"] == status) for status in STATUSES}
    result["request_ids"] = [rid for s in steps for rid in s["request_ids"]]
    result["errors"] = [f"step {s['id']} ({s['title']}): {s['error']}" for s in steps
                        if s["status"] in ("failed", "not_reachable") and s["error"]]
    messages = [s for s in steps if s["kind"] in MESSAGE_KINDS]
    if messages:
        labels = {s["id"]: (s.get("target") or {}).get("label") for s in plan["steps"]}
        result["messages"] = {
            "delivered": sum(1 for s in messages if s["status"] in ("applied", "already_done")),
            "not_reachable": [labels[s["id"]] for s in messages if s["status"] == "not_reachable"],
            "failed": [labels[s["id"]] for s in messages if s["status"] == "failed"]}
    if any(s["kind"] == "create_user" for s in plan["steps"]):
        result["password"] = _password_outcome(plan, steps)
    result["outcome"] = _outcome(plan, result)
    result["finished_at"] = iso_now()
    return result


def _password_outcome(plan: dict[str, Any], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """What happened to the temporary password (never the password itself)."""
    planned = next(s for s in plan["steps"] if s["kind"] == "create_user")
    create = next(s for s in steps if s["kind"] == "create_user")
    delivery = next((s for s in steps if s["kind"] == "deliver_password"), None)
    if delivery is not None and delivery["status"] in ("applied", "already_done"):
        manager = next(s["target"]["label"] for s in plan["steps"] if s["kind"] == "deliver_password")
        return {"generated": True, "delivered": True, "delivered_to": manager}
    if create["status"] == "applied":
        reason = "no manager was given" if delivery is None else "the manager could not be reached by the bot"
        return {"generated": True, "delivered": False, "reason": reason, "advice": PASSWORD_ADVICE}
    if planned["noop"]:
        return {"generated": False, "note": "the user existed before this run: no password was generated"}
    if create["status"] == "already_done":
        return {"generated": True, "delivered": False, "advice": PASSWORD_ADVICE,
                "reason": "the account was created by an earlier attempt of this run and its temporary password is "
                          "gone (it is never stored)"}
    return {"generated": False, "note": "the user was not created"}


def _outcome(plan: dict[str, Any], result: dict[str, Any]) -> str:
    counts = result["counts"]
    if counts["failed"] or counts["not_run"]:
        return "failed"
    messages = result.get("messages")
    only_messages = all(s["kind"] in MESSAGE_KINDS for s in plan["steps"])
    if messages and only_messages and not messages["delivered"] and messages["not_reachable"]:
        return "failed"  # nobody could be reached: the run did nothing it was asked to do
    if counts["not_reachable"]:
        return "partial"
    return "success"

"""Verify an applied plan by reading the state back: a write that did not take is a failure, never a silent success.

Every readable step (no-ops included: the state may have drifted since the plan) is read again and must be in its
target state; Graph is eventually consistent, so a step not yet in its target state is re-read a few times
(:class:`~teamsops.actions.apply.Settle`) before it counts as failed. Steps that failed or did not run in apply fail
verification. Bot messages cannot be read back: a message is verified by the connector's activity id recorded in the
apply result, and a recipient that was not reachable is reported (not a verification failure).

When a later step of the plan deleted the user (offboarding with ``delete``), earlier steps about that user are read
from ``/directory/deletedItems`` where Graph keeps the properties, and relationships that no longer exist for a
deleted user (its manager) count as verified by the deletion.

The report (JSON-serialisable)::

    {"plan_id", "title", "checked_at", "ok": bool,
     "steps": [{"id", "kind", "title", "ok": true | false | null, "observed": {...}, "expected": {...}, "note"}],
     "failures": ["step 4 (Remove from team 'Sales'): expected {...}, observed {...}"]}
"""

from __future__ import annotations

import logging
from typing import Any

from teamsops.actions.apply import Settle
from teamsops.actions.context import iso_now
from teamsops.actions.steps import KINDS, MESSAGE_KINDS, StepContext
from teamsops.graph import GraphClient, GraphError

__all__ = ["verify_plan"]

log = logging.getLogger(__name__)


def verify_plan(client: GraphClient, plan: dict[str, Any], result: dict[str, Any], *,
                settle: Settle | None = None) -> dict[str, Any]:
    """Read back every step of an applied plan (see the module docstring)."""
    settle = settle or Settle()
    outcomes = {s["id"]: s for s in result.get("steps") or []}
    deleted = _deleted_users(plan, outcomes)
    report: dict[str, Any] = {"plan_id": plan.get("plan_id"), "title": plan.get("title"), "checked_at": None,
                              "ok": True, "steps": [], "failures": []}
    for step in plan["steps"]:
        entry = _check(client, step, outcomes.get(step["id"]), deleted, settle)
        report["steps"].append(entry)
        if entry["ok"] is False:
            report["failures"].append(f"step {step['id']} ({step['title']}): {entry['note']}")
    report["ok"] = not report["failures"]
    report["checked_at"] = iso_now()
    if report["ok"]:
        log.info("verified %s: %d step(s) in their target state", plan.get("title"), len(plan["steps"]))
    else:
        log.error("verification of %s failed: %s", plan.get("title"), "; ".join(report["failures"]))
    return report


def _deleted_users(plan: dict[str, Any], outcomes: dict[str, dict[str, Any]]) -> dict[str, str]:
    """user id -> id of the delete step that removed them in this plan."""
    return {s["params"]["user"]: s["id"] for s in plan["steps"] if s["kind"] == "delete_user"
            and (outcomes.get(s["id"]) or {}).get("status") in ("applied", "already_done")}


def _check(client: GraphClient, step: dict[str, Any], outcome: dict[str, Any] | None, deleted: dict[str, str],
           settle: Settle) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": step["id"], "kind": step["kind"], "title": step["title"], "ok": None,
                             "observed": None, "expected": step.get("after"), "note": None}
    status = (outcome or {}).get("status")
    if outcome is None or status in ("failed", "not_run"):
        entry.update(ok=False, note=f"the step {'did not run' if outcome is None else status} in apply"
                                    + (f": {outcome.get('error')}" if outcome and outcome.get("error") else ""))
        return entry
    if step["kind"] in MESSAGE_KINDS:
        return _check_message(entry, outcome)
    kind = KINDS[step["kind"]]
    user = (step.get("params") or {}).get("user")
    if step["kind"] == "remove_manager" and user in deleted and int(step["id"]) < int(deleted[user]):
        entry.update(ok=True, note=f"the user was deleted by step {deleted[user]}: the manager relationship no "
                                   "longer exists")
        return entry
    ctx = StepContext(client)
    try:
        state = settle.reads(lambda: kind.read(ctx, step), lambda s: kind.satisfied(step, s))
    except GraphError as err:
        entry.update(ok=False, note=f"could not read the state back: {err.summary()}")
        return entry
    entry["observed"] = {k: v for k, v in state.items() if k != "membership_id"}
    entry["ok"] = bool(kind.satisfied(step, state))
    if not entry["ok"]:
        entry["note"] = f"the change did not take: expected {step.get('after')}, observed {entry['observed']}"
    elif state.get("deleted") and step["kind"] != "delete_user":
        entry["note"] = "read from deletedItems (the user was deleted afterwards)"
    return entry


def _check_message(entry: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    status = outcome["status"]
    if status == "applied":
        entry.update(ok=True, observed={"activity_id": outcome.get("activity_id")},
                     note="delivered (connector activity id); messages cannot be read back")
    elif status == "already_done":
        entry.update(ok=True, note=outcome.get("note"))
    elif status == "not_reachable":
        entry.update(ok=None, note=outcome.get("error"))
    else:
        entry.update(ok=None, note=outcome.get("note"))
    return entry


"""Markdown for people: the plan as the approval request body, and the outcome of a run.

The approval body says who asked, why (ticket, reason), on which connection and tenant, then one table row per step
with before -> after. No-ops are marked as such, destructive changes are called out, and an override of the
protected-account safeguard is shown in **bold** at the top with the accounts it lets through. Long plans are cut
after :data:`MAX_ROWS` rows (the full plan is in XCom and the audit log). Values from the tenant are escaped so a
display name cannot break the table or inject formatting.
"""

from __future__ import annotations

import json
from typing import Any

from teamsops.actions.steps import MESSAGE_KINDS

__all__ = ["MAX_ROWS", "render_plan", "render_result"]

MAX_ROWS = 150
_MAX_TEXT = 1500


def render_plan(plan: dict[str, Any]) -> str:
    """The approval request body (Markdown) for a plan."""
    lines = [f"### {_esc(plan['title'])}{' (dry run: nothing will be changed)' if plan.get('dry_run') else ''}", ""]
    lines += _header(plan)
    lines += _callouts(plan)
    lines += _steps_table(plan)
    lines += _texts(plan)
    if plan.get("warnings"):
        lines += ["", "#### Warnings", *[f"- {_esc(w)}" for w in plan["warnings"]]]
    lines += ["", f"Plan `{plan.get('plan_id')}` made at {plan.get('created_at')}. **Approve** applies exactly these "
                  "steps, each re-checked first (already-done steps are not repeated); **Reject** or no answer before "
                  "the timeout changes nothing."]
    return "\n".join(lines)


def _header(plan: dict[str, Any]) -> list[str]:
    rows = [("Requested by", plan.get("requester") or "unknown"), ("Ticket", plan.get("ticket") or "-"),
            ("Reason", plan.get("reason") or "-"),
            ("Connection", f"{plan.get('connection')} (tenant {plan.get('tenant_id')})")]
    if plan.get("run_id"):
        rows.append(("Run", plan["run_id"]))
    return ["| | |", "|---|---|", *[f"| {k} | {_esc(v)} |" for k, v in rows], ""]


def _callouts(plan: dict[str, Any]) -> list[str]:
    out = []
    overrides = plan.get("overrides") or {}
    if overrides.get("override_protection"):
        who = [f"{_esc(v['label'])} ({_esc(', '.join(v['roles']))})" for v in (overrides.get("overridden") or {})
               .values()]
        out.append("**OVERRIDE: the protection of privileged accounts is lifted for this run"
                   + (f"; it changes {'; '.join(who)}.**" if who else " (no target holds a privileged role).**"))
        out.append("")
    summary = plan.get("summary") or {}
    if summary.get("destructive_changes"):
        out += [f"> **Destructive:** {summary['destructive_changes']} change(s) below remove access or data "
                "(marked DESTRUCTIVE). Undo data is recorded in the audit log.", ""]
    return out


def _steps_table(plan: dict[str, Any]) -> list[str]:
    summary = plan.get("summary") or {}
    steps = plan.get("steps") or []
    out = [f"#### {summary.get('changes', 0)} change(s), {summary.get('noops', 0)} no-op(s)", "",
           "| # | Target | Step | Before | After |", "|---|---|---|---|---|"]
    for step in steps[:MAX_ROWS]:
        out.append(_row(step))
    if len(steps) > MAX_ROWS:
        out.append(f"| | | ... and {len(steps) - MAX_ROWS} more step(s): see the plan in XCom / the audit log | | |")
    if not steps:
        out.append("| | | nothing to do | | |")
    return out


def _row(step: dict[str, Any]) -> str:
    title = _esc(step["title"])
    if step.get("noop"):
        title = f"no-op: {title} (already in the target state)"
    elif step.get("destructive"):
        title = f"**{title}** (DESTRUCTIVE)"
    if step.get("note"):
        title += f"<br>*{_esc(step['note'])}*"
    target = (step.get("target") or {}).get("label") or ""
    return (f"| {step['id']} | {_esc(target)} | {title} | {_esc(fmt_state(step.get('before')))} | "
            f"{_esc(fmt_state(step.get('after')))} |")


def _texts(plan: dict[str, Any]) -> list[str]:
    texts = plan.get("texts") or {}
    if "message" not in texts:
        return []
    text = texts["message"]
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + " [...]"
    quoted = "\n".join("> " + _esc(line, table=False) for line in text.splitlines() or [""])
    return ["", "#### Message (sent by the bot)", quoted]


def fmt_state(state: Any) -> str:
    """A step's before/after as short text."""
    if not isinstance(state, dict):
        return "" if state is None else str(state)
    parts = []
    if "member" in state:
        parts.append(f"member ({state.get('role') or 'member'})" if state["member"] else "not a member")
    for key, value in state.items():
        if key in ("member", "role", "exists", "membership_id") or (value is None and key != "manager"):
            continue
        parts.append(_fmt_pair(key, value))
    if state.get("exists") is False and "state" not in state:
        parts.insert(0, "does not exist")
    return "; ".join(p for p in parts if p) or "-"


def _fmt_pair(key: str, value: Any) -> str:
    if key == "manager":
        return "manager: " + (f"{value.get('displayName')} <{value.get('userPrincipalName')}>" if value else "none")
    if key == "bot_installed":
        return "bot installed" if value else "bot NOT installed"
    if key == "state":
        return {"active": "active account", "deleted": "deleted (restorable)", "gone": "permanently deleted"}.get(
            value, str(value))
    if key == "message":
        return f"message {value}"
    return f"{key}: {json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}"


def _esc(value: Any, table: bool = True) -> str:
    """Escape Markdown that could break the table or add formatting (values come from the tenant)."""
    text = str(value)
    for char in "\\`*_[]<>#":
        text = text.replace(char, "\\" + char)
    if table:
        text = text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text


def render_result(plan: dict[str, Any], result: dict[str, Any], verification: dict[str, Any] | None = None) -> str:
    """The outcome of an applied plan (Markdown): counts, failures, messages, password delivery, verification."""
    counts = result.get("counts") or {}
    lines = [f"### {_esc(plan['title'])}: {result.get('outcome')}", "",
             ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items() if n) or "no steps", ""]
    for error in result.get("errors") or []:
        lines.append(f"- {_esc(error, table=False)}")
    messages = result.get("messages")
    if messages:
        lines.append(f"- bot messages delivered: {messages['delivered']}")
        if messages["not_reachable"]:
            lines.append("- not reachable (bot not installed or blocked): "
                         + ", ".join(_esc(n, table=False) for n in messages["not_reachable"]))
    password = result.get("password")
    if password and password.get("generated"):
        lines.append(f"- temporary password delivered to {_esc(password['delivered_to'], table=False)}"
                     if password.get("delivered") else f"- **{_esc(password['advice'], table=False)}**")
    if verification is not None:
        lines.append("- verification: all changes read back in their target state" if verification["ok"]
                     else "- **verification failed:** " + "; ".join(_esc(f, table=False)
                                                                  for f in verification["failures"]))
    if any(s["kind"] in MESSAGE_KINDS for s in plan.get("steps") or []) and not messages:
        lines.append("- no bot message was sent")
    return "\n".join(lines)

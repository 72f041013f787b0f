"""Lifecycle actions on Entra ID users and Microsoft Teams, Airflow-free: plan -> (approve) -> apply -> verify.

The action DAGs wire these functions into tasks (the approval in between is Airflow's)::

    from teamsops.actions import ACTIONS, apply_plan, build_plan, render_plan, verify_plan, raise_for_outcome
    from teamsops.audit import AuditLog

    plan = build_plan(client, "msteams_disable_user", conf, safeguards=..., requester=..., run_id=...)
    body = render_plan(plan)                                   # the approval request (Markdown)
    result = apply_plan(client, plan, bot=bot, on_step=audit.step_recorder(plan, approver=...),
                        done_step_ids=audit.applied_step_ids(plan["plan_id"], run_id))
    report = verify_plan(client, plan, result)
    audit.record_result(plan, result, report, approver=...)
    raise_for_outcome(result); raise_for_outcome(report)

Plans and results are small JSON-serialisable dicts (they travel through XCom). Nothing here logs or returns a secret:
the temporary password of a new user lives only in the apply task's memory until the bot delivers it.

Modules: ``conf`` (DAG ids, conf schema, validation), ``resolve`` (users, teams, channels), ``safeguards``
(protected accounts, privileged roles, batch limits), ``steps`` (read / satisfied / write per kind of change),
``plan`` (+ ``runbooks``, ``bot_messages``, ``lifecycle``), ``apply``, ``verify``, ``render``, ``errors``.
"""

from __future__ import annotations

from teamsops.actions.apply import Settle, apply_plan
from teamsops.actions.conf import ACTIONS, APP_ONLY_LIMITS, ActionSpec, validate_conf
from teamsops.actions.errors import (
    ActionError,
    AmbiguousError,
    ApplyFailed,
    ConfError,
    NotFoundError,
    PlanError,
    ReadOnlyConnectionError,
    SafeguardError,
    VerifyFailed,
    raise_for_outcome,
)
from teamsops.actions.plan import build_plan
from teamsops.actions.render import render_plan, render_result
from teamsops.actions.safeguards import PROTECTED_ROLES, Safeguards
from teamsops.actions.verify import verify_plan

__all__ = [
    "ACTIONS",
    "APP_ONLY_LIMITS",
    "PROTECTED_ROLES",
    "ActionError",
    "ActionSpec",
    "AmbiguousError",
    "ApplyFailed",
    "ConfError",
    "NotFoundError",
    "PlanError",
    "ReadOnlyConnectionError",
    "SafeguardError",
    "Safeguards",
    "Settle",
    "VerifyFailed",
    "apply_plan",
    "build_plan",
    "raise_for_outcome",
    "render_plan",
    "render_result",
    "validate_conf",
    "verify_plan",
]

"""What every plan builder shares: the :class:`PlanContext` that collects steps, targets, warnings and overrides,
and the reads that capture a user's state for undo (account state, manager, team memberships and roles).

A plan step is a JSON-serialisable dict::

    {"id": "3", "kind": "remove_team_member", "title": "Remove from team 'Sales'",
     "group": "<user id>",                      # a failed step skips the rest of its group, not other users
     "target": {"type": "user", "id": "...", "label": "Adele Vance <adele@contoso.com>"},
     "object": {"type": "team", "id": "...", "label": "Sales"} | None,
     "params": {...},                           # what the step kind needs to apply it
     "before": {...}, "after": {...},           # current and target state, shown in the approval
     "noop": false,                             # already in the target state at plan time
     "destructive": true, "undo": {...} | None, "note": "..." | None}
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from teamsops.actions.safeguards import Safeguards, enforce_protection, user_label
from teamsops.actions.steps import KINDS, read_manager, read_membership
from teamsops.graph import GraphClient, GraphNotFound

__all__ = ["PLAN_VERSION", "PlanContext", "graph_now", "iso_now", "memberships", "team_object", "team_owners",
           "user_snapshot", "user_target"]

log = logging.getLogger(__name__)

PLAN_VERSION = 1


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def graph_now(client: GraphClient) -> str:
    """Graph's clock (the ``Date`` header of a cheap read), so time comparisons do not depend on the worker's clock;
    the worker's UTC time when the header is missing."""
    response = client.request("GET", "/organization", params={"$select": "id"})
    try:
        moment = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        moment = None
    if moment is None:
        return iso_now()
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PlanContext:
    """Collects the plan while a builder runs.

    :ivar conf: the validated, normalized conf.
    """

    client: GraphClient
    dag_id: str
    conf: dict[str, Any]
    safeguards: Safeguards
    audit: Any = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    overridden: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # message texts, stored once (steps refer to them by key)
    _graph_time: str | None = None

    @property
    def graph_time(self) -> str:
        if self._graph_time is None:
            self._graph_time = graph_now(self.client)
        return self._graph_time

    def protect(self, users: list[dict[str, Any]]) -> None:
        """Apply the protected-account safeguards to the users this run changes."""
        override = bool(self.conf.get("override_protection"))
        found = enforce_protection(self.client, users, self.safeguards, override=override)
        for user in users:
            if user["id"] in found:
                self.overridden[user["id"]] = {"label": user_label(user), "roles": found[user["id"]]["roles"]}

    def add_target(self, user: dict[str, Any], snapshot: dict[str, Any] | None = None) -> None:
        entry = {"type": "user", "id": user.get("id"), "label": user_label(user),
                 "userPrincipalName": user.get("userPrincipalName")}
        if snapshot is not None:
            entry["snapshot"] = snapshot
        self.targets.append(entry)

    def step(self, kind: str, title: str, *, target: dict[str, Any], params: dict[str, Any],
             before: dict[str, Any], after: dict[str, Any], group: str | None = None,
             obj: dict[str, Any] | None = None, undo: dict[str, Any] | None = None,
             note: str | None = None, noop: bool | None = None) -> dict[str, Any]:
        """Append a step; ``noop`` defaults to the kind's ``satisfied(before)``."""
        spec = KINDS[kind]
        step = {"id": str(len(self.steps) + 1), "kind": kind, "title": title, "group": group or target.get("id"),
                "target": target, "object": obj, "params": params, "before": before, "after": after,
                "destructive": spec.destructive, "undo": undo, "note": note}
        step["noop"] = bool(spec.satisfied(step, before)) if noop is None and spec.readable else bool(noop)
        self.steps.append(step)
        return step

    def finish(self, *, title: str, destructive: bool, requester: str | None, run_id: str | None) -> dict[str, Any]:
        """The plan dict (JSON-serialisable)."""
        changes = [s for s in self.steps if not s["noop"]]
        conf = self.conf
        return {
            "version": PLAN_VERSION,
            "plan_id": str(uuid.uuid4()),
            "dag_id": self.dag_id,
            "action": self.dag_id.removeprefix("msteams_"),
            "title": title,
            "destructive": destructive,
            "created_at": iso_now(),
            "graph_time": self._graph_time,
            "tenant_id": self.client.settings.tenant_id,
            "connection": conf.get("connection"),
            "requester": requester,
            "run_id": run_id,
            "reason": conf.get("reason"),
            "ticket": conf.get("ticket"),
            "dry_run": bool(conf.get("dry_run")),
            "conf": {k: v for k, v in conf.items() if k != "message"},  # the text is in "texts", once
            "overrides": {"override_protection": bool(conf.get("override_protection")),
                          "overridden": self.overridden},
            "targets": self.targets,
            "steps": self.steps,
            "texts": self.texts,
            "warnings": self.warnings,
            "summary": {"steps": len(self.steps), "changes": len(changes), "noops": len(self.steps) - len(changes),
                        "destructive_changes": sum(1 for s in changes if s["destructive"]),
                        "messages": sum(1 for s in changes if not KINDS[s["kind"]].readable)},
        }


def user_target(user: dict[str, Any]) -> dict[str, Any]:
    """The ``target`` of a step acting on a user."""
    return {"type": "user", "id": user["id"], "label": user_label(user)}


def team_object(team: dict[str, Any]) -> dict[str, Any]:
    return {"type": "team", "id": team["id"], "label": team.get("displayName") or team["id"]}


def team_owners(client: GraphClient, team_id: str) -> list[dict[str, Any]]:
    """The team's owners (its group's owners, users only), ``[{"id", "userPrincipalName", "displayName"}]``."""
    owners = client.paginate(f"/groups/{team_id}/owners", params={"$select": "id,userPrincipalName,displayName"})
    return [o for o in owners if o.get("@odata.type", "#microsoft.graph.user") == "#microsoft.graph.user"]


def joined_teams(client: GraphClient, user_id: str) -> list[dict[str, Any]]:
    """``GET /users/{id}/joinedTeams``: id and displayName of every team the user is a member of."""
    try:
        return [{"id": t["id"], "displayName": t.get("displayName")}
                for t in client.paginate(f"/users/{user_id}/joinedTeams")]
    except GraphNotFound:
        return []


def memberships(client: GraphClient, user_id: str) -> list[dict[str, Any]]:
    """The user's teams with their role: ``[{"team_id", "team_name", "role", "membership_id"}]``."""
    out = []
    for team in joined_teams(client, user_id):
        state = read_membership(client, team["id"], user_id)
        if state.get("member"):
            out.append({"team_id": team["id"], "team_name": team["displayName"], "role": state["role"],
                        "membership_id": state.get("membership_id")})
    return out


def user_snapshot(client: GraphClient, user: dict[str, Any], *,
                  teams: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Undo data for a user: prior accountEnabled, userType, manager and (when given) team memberships and roles."""
    manager = read_manager(client, user["id"]).get("manager")
    snap: dict[str, Any] = {"accountEnabled": user.get("accountEnabled"), "userType": user.get("userType"),
                            "manager": manager}
    if teams is not None:
        snap["teams"] = [{k: t[k] for k in ("team_id", "team_name", "role")} for t in teams]
    return snap

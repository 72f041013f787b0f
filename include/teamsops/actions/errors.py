"""Errors of the action layer: what an operator sees when a run is refused or fails.

Every class is an :class:`ActionError`; its message is one or more plain sentences that say what is wrong and what to
do. ``problems`` holds one line per problem when several were found at once (a batch with three unknown users is one
error listing the three), so a run is refused with everything to fix, not one thing at a time.

Hierarchy::

    ActionError                  problems: list[str]
    ├── ConfError                the run conf is invalid (also a ValueError); nothing was read or written
    ├── ReadOnlyConnectionError  the connection has access="read"; refused at plan time
    ├── NotFoundError            a user, team, channel or deleted user does not exist (names each one)
    ├── AmbiguousError           a team or channel name matches several objects (lists the candidates)
    ├── SafeguardError           protected account, last owner, batch limit, guest owner...
    ├── PlanError                the plan cannot be applied (dry run, other tenant, missing bot client)
    ├── ApplyFailed              raise_for_outcome: a step failed while applying (the result says which)
    └── VerifyFailed             raise_for_outcome: a write did not take (the verification says which)

Messages never contain secrets (the temporary password of a new user is never put in any message or result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ActionError",
    "AmbiguousError",
    "ApplyFailed",
    "ConfError",
    "NotFoundError",
    "PlanError",
    "ReadOnlyConnectionError",
    "SafeguardError",
    "VerifyFailed",
    "raise_for_outcome",
]


class ActionError(Exception):
    """A refused or failed action. ``str(error)`` is the headline followed by one line per problem."""

    def __init__(self, headline: str, problems: Iterable[str] = ()) -> None:
        self.headline = headline
        self.problems = [str(p) for p in problems]
        super().__init__(self._text())

    def _text(self) -> str:
        if not self.problems:
            return self.headline
        return self.headline + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class ConfError(ActionError, ValueError):
    """The run conf does not match the DAG's parameters; nothing was read or written."""


class ReadOnlyConnectionError(ActionError):
    """The connection is read-only (``access="read"``): every action is refused before anything is read."""


class NotFoundError(ActionError):
    """Objects named in the conf do not exist in the tenant (each one is listed)."""


class AmbiguousError(ActionError):
    """A display name matches several objects; the candidates are listed so the conf can use an id."""


class SafeguardError(ActionError):
    """A safeguard refused the run (protected account, last owner, batch limit...)."""


class PlanError(ActionError):
    """The plan cannot be applied as given (a dry-run plan, another tenant, no bot client for bot steps)."""


class ApplyFailed(ActionError):
    """At least one step failed while applying; ``result`` is the apply result (JSON-serialisable)."""

    def __init__(self, headline: str, problems: Iterable[str] = (), result: Mapping[str, Any] | None = None) -> None:
        self.result = dict(result or {})
        super().__init__(headline, problems)


class VerifyFailed(ActionError):
    """A write did not take (or a step never ran); ``report`` is the verification (JSON-serialisable)."""

    def __init__(self, headline: str, problems: Iterable[str] = (), report: Mapping[str, Any] | None = None) -> None:
        self.report = dict(report or {})
        super().__init__(headline, problems)


def raise_for_outcome(report: Mapping[str, Any]) -> None:
    """Raise :class:`ApplyFailed` / :class:`VerifyFailed` when an apply result or a verification failed.

    Apply results have ``outcome`` (``success`` / ``partial`` / ``failed``); verifications have ``ok``. A ``partial``
    outcome (e.g. a bot message that could not reach one of several users) does not raise: the result lists who.
    """
    if "ok" in report and "outcome" not in report:
        if not report["ok"]:
            raise VerifyFailed(f"verification failed for {report.get('title', 'the action')}: a change did not take",
                               report.get("failures") or [], report=report)
        return
    if report.get("outcome") == "failed":
        raise ApplyFailed(f"{report.get('title', 'the action')} failed; the result lists what was applied",
                          report.get("errors") or [], result=report)

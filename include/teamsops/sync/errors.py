"""Errors of the sync engine (Graph errors keep their own types from :mod:`teamsops.graph.errors`).

* :class:`SyncError` - the run cannot go on as asked (a parent table of this run is missing, a plan belongs to
  another tenant, ...). The message says which step must run first or what to fix.
* :class:`SyncValidationError` - the checks before publishing failed; nothing was published. ``problems`` lists
  one sentence per failed check, each naming the table and the numbers.
"""

from __future__ import annotations

__all__ = ["SyncError", "SyncValidationError"]


class SyncError(RuntimeError):
    """The sync cannot continue as asked; the message says what to do."""


class SyncValidationError(SyncError):
    """Validation before publishing failed; ``latest.json`` and the run manifest were NOT written.

    :param problems: one sentence per failed check (table, what was expected, what was found).
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        head = f"validation failed, nothing was published ({len(self.problems)} problem(s))"
        super().__init__(head + ": " + "; ".join(self.problems))

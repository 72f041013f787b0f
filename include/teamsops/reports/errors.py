"""Errors of the reports: what happened and what to do about it."""

from __future__ import annotations

__all__ = ["ReportError", "ReportSettingsError"]


class ReportError(RuntimeError):
    """A report cannot be built from what the sync published; the message says what is missing and what to run."""


class ReportSettingsError(ValueError):
    """A report setting (e.g. ``MSTEAMS_REPORT_KEEP_RUNS``) is invalid; the message names it and what it accepts."""

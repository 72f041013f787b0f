"""Report names as plain Python (no pandas, no pyarrow, no matplotlib): cheap enough for DAG files at parse time.

:data:`READ_TABLES` are the sync tables a report reads; the reports DAG is scheduled on their assets, so it runs when
a sync has published all of them. :data:`REPORT_TABLES` are the Parquet tables every report run writes.
"""

from __future__ import annotations

__all__ = ["DEFAULT_KEEP_RUNS", "KEEP_RUNS_ENV", "READ_TABLES", "REPORT_TABLES"]

READ_TABLES: tuple[str, ...] = ("organization", "subscribed_skus", "users", "user_licenses", "teams", "team_members",
                                "user_installed_apps", "role_definitions", "role_assignments")

REPORT_TABLES: tuple[str, ...] = ("metrics", "licence_utilisation", "licence_waste", "team_overview", "team_guests",
                                  "app_inventory", "privileged_role_holders", "user_changes", "users_snapshot")

KEEP_RUNS_ENV = "MSTEAMS_REPORT_KEEP_RUNS"
DEFAULT_KEEP_RUNS = 30

"""Table names and dependencies as plain Python (no pyarrow, no pandas): cheap enough for DAG files at parse time.

:data:`teamsops.sync.TABLES` is the full description (schemas, links, permissions); a test keeps the two equal.
"""

from __future__ import annotations

__all__ = ["FANOUT_TABLES", "TABLE_ORDER", "TABLE_PARENTS"]

# An order in which running the tables one after another satisfies every table's parents.
TABLE_ORDER: tuple[str, ...] = ("organization", "subscribed_skus", "role_definitions", "role_assignments", "users",
                                "user_licenses", "teams", "team_members", "channels", "user_installed_apps")

# Tables of the same run each table needs before it starts (the DAG's upstream tasks, besides the plan).
TABLE_PARENTS: dict[str, tuple[str, ...]] = {
    "organization": (),
    "subscribed_skus": (),
    "role_definitions": (),
    "role_assignments": ("role_definitions",),
    "users": (),
    "user_licenses": ("users", "subscribed_skus"),
    "teams": (),
    "team_members": ("teams", "users"),
    "channels": ("teams",),
    "user_installed_apps": ("users",),
}

# Tables read per parent object, split into shards (one mapped task per shard).
FANOUT_TABLES: frozenset[str] = frozenset({"team_members", "channels", "user_installed_apps"})

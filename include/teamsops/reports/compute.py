"""The report tables, computed from one published sync run (pandas; no I/O, no Airflow).

Every function takes the sync's tables as DataFrames (the columns of :data:`teamsops.sync.TABLES`) and returns a
DataFrame with the columns of its schema in :data:`SCHEMAS`, sorted so that two builds of the same data are equal.
:func:`metrics` condenses them into the headline numbers; the HTML shows exactly these tables and numbers.

Definitions (the ones IT teams ask about):

* licence utilisation: per SKU of ``subscribedSkus``, consumed vs enabled units (``prepaidUnits.enabled``), the
  units still free and the number of users the sync saw holding it;
* licence waste: every licence assigned to a disabled account or to a guest (a disabled guest counts in both);
* team ownership: owners, members and guests per team from ``team_members.roles`` (Graph reports a guest as
  ``guest`` even when they own the team, so guest owners do not count as owners); ``ownerless`` = 0 owners,
  ``single-owner`` = exactly 1;
* app inventory: installs per Teams app in users' personal scope; ``custom`` = distributionMethod is not ``store``
  (``organization`` = published to the tenant's catalog, ``sideloaded`` = uploaded for a user or team);
* privileged role holders: assignments of the directory roles the action safeguards protect
  (:data:`teamsops.actions.safeguards.PROTECTED_ROLES`, matched on the role's templateId or id);
* user changes: users added, disabled (enabled before, disabled now) and removed since the previous snapshot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

__all__ = ["SCHEMAS", "app_inventory", "compute_all", "licence_utilisation", "licence_waste", "metrics",
           "privileged_role_holders", "team_guests", "team_overview", "user_changes", "users_snapshot"]  # fmt: skip

_S, _I, _B, _F = pa.string(), pa.int64(), pa.bool_(), pa.float64()


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


SCHEMAS: dict[str, pa.Schema] = {
    "metrics": _schema(("metric", _S), ("value", _I), ("label", _S)),
    "licence_utilisation": _schema(("sku_id", _S), ("sku_part_number", _S), ("enabled_units", _I),
                                   ("consumed_units", _I), ("available_units", _I), ("utilisation_pct", _F),
                                   ("assigned_users", _I), ("capability_status", _S)),
    "licence_waste": _schema(("user_id", _S), ("userPrincipalName", _S), ("displayName", _S), ("sku_id", _S),
                             ("sku_part_number", _S), ("disabled", _B), ("guest", _B)),
    "team_overview": _schema(("team_id", _S), ("displayName", _S), ("visibility", _S), ("owners", _I),
                             ("members", _I), ("guests", _I), ("total_members", _I), ("ownership", _S)),
    "team_guests": _schema(("team_id", _S), ("team_name", _S), ("user_id", _S), ("userPrincipalName", _S),
                           ("displayName", _S), ("accountEnabled", _B)),
    "app_inventory": _schema(("teams_app_id", _S), ("app_display_name", _S), ("distribution_method", _S),
                             ("custom", _B), ("installs", _I), ("users", _I)),
    "privileged_role_holders": _schema(("role_definition_id", _S), ("role_name", _S), ("principal_id", _S),
                                       ("principal_type", _S), ("userPrincipalName", _S), ("displayName", _S),
                                       ("accountEnabled", _B), ("userType", _S), ("directory_scope_id", _S)),
    "user_changes": _schema(("change", _S), ("user_id", _S), ("userPrincipalName", _S), ("displayName", _S)),
    "users_snapshot": _schema(("id", _S), ("userPrincipalName", _S), ("displayName", _S), ("accountEnabled", _B),
                              ("userType", _S)),
}  # fmt: skip

CHANGE_KINDS = ("added", "disabled", "removed")
NON_USER_PRINCIPAL = "group or service principal"


def _frame(name: str, rows: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """``rows`` with exactly the columns of the table's schema, in order (an empty input keeps the columns)."""
    columns = SCHEMAS[name].names
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return frame.reindex(columns=columns).reset_index(drop=True)


def _users(users: pd.DataFrame) -> pd.DataFrame:
    """The user columns the report shows, indexed by id; a missing ``accountEnabled`` counts as enabled (Graph
    omits it only for accounts it cannot sign in to anyway)."""
    frame = users[["id", "userPrincipalName", "displayName", "accountEnabled", "userType"]].copy()
    frame["accountEnabled"] = frame["accountEnabled"].astype(object).where(frame["accountEnabled"].notna(), True)
    return frame.astype({"accountEnabled": bool})


# ---------------------------------------------------------------------------------------------- licences
def licence_utilisation(skus: pd.DataFrame, user_licenses: pd.DataFrame) -> pd.DataFrame:
    holders = user_licenses.groupby("sku_id")["user_id"].nunique()
    frame = skus[["sku_id", "sku_part_number", "enabled_units", "consumed_units", "capability_status"]].copy()
    frame["enabled_units"] = frame["enabled_units"].fillna(0).astype("int64")
    frame["consumed_units"] = frame["consumed_units"].fillna(0).astype("int64")
    frame["available_units"] = frame["enabled_units"] - frame["consumed_units"]
    frame["utilisation_pct"] = [round(100.0 * c / e, 1) if e else None
                                for c, e in zip(frame["consumed_units"], frame["enabled_units"], strict=True)]
    frame["assigned_users"] = frame["sku_id"].map(holders).fillna(0).astype("int64")
    return _frame("licence_utilisation", frame.sort_values(["sku_part_number", "sku_id"]))


def licence_waste(users: pd.DataFrame, user_licenses: pd.DataFrame) -> pd.DataFrame:
    people = _users(users).rename(columns={"id": "user_id"})
    frame = user_licenses[["user_id", "sku_id", "sku_part_number"]].merge(people, on="user_id", how="inner")
    frame["disabled"] = ~frame["accountEnabled"]
    frame["guest"] = frame["userType"].eq("Guest")
    frame = frame[frame["disabled"] | frame["guest"]]
    return _frame("licence_waste", frame.sort_values(["userPrincipalName", "sku_part_number", "sku_id"]))


# ---------------------------------------------------------------------------------------------- teams
def team_overview(teams: pd.DataFrame, team_members: pd.DataFrame) -> pd.DataFrame:
    roles = team_members.assign(role=team_members["roles"].fillna("member"))
    counts = roles.pivot_table(index="team_id", columns="role", values="user_id", aggfunc="count", fill_value=0)
    frame = teams[["id", "displayName", "visibility"]].rename(columns={"id": "team_id"})
    for role, column in (("owner", "owners"), ("member", "members"), ("guest", "guests")):
        series = counts[role] if role in counts.columns else pd.Series(dtype="int64")
        frame[column] = frame["team_id"].map(series).fillna(0).astype("int64")
    frame["total_members"] = frame["team_id"].map(roles.groupby("team_id")["user_id"].count()).fillna(0).astype("int64")
    frame["ownership"] = ["ownerless" if n == 0 else "single-owner" if n == 1 else "owned" for n in frame["owners"]]
    return _frame("team_overview", frame.sort_values(["displayName", "team_id"]))


def team_guests(teams: pd.DataFrame, team_members: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    guests = team_members[team_members["roles"].eq("guest")][["team_id", "user_id"]]
    names = teams[["id", "displayName"]].rename(columns={"id": "team_id", "displayName": "team_name"})
    people = _users(users).rename(columns={"id": "user_id"})
    frame = guests.merge(names, on="team_id", how="left").merge(people, on="user_id", how="left")
    return _frame("team_guests", frame.sort_values(["team_name", "team_id", "userPrincipalName", "user_id"]))


# ---------------------------------------------------------------------------------------------- apps and roles
def app_inventory(installed: pd.DataFrame) -> pd.DataFrame:
    if installed.empty:
        return _frame("app_inventory", [])
    grouped = installed.groupby("teams_app_id", dropna=False).agg(
        app_display_name=("app_display_name", "first"), distribution_method=("distribution_method", "first"),
        installs=("installation_id", "count"), users=("user_id", "nunique")).reset_index()
    grouped["custom"] = grouped["distribution_method"].ne("store")
    grouped = grouped.sort_values(["installs", "app_display_name", "teams_app_id"], ascending=[False, True, True])
    return _frame("app_inventory", grouped)


def privileged_role_holders(role_definitions: pd.DataFrame, role_assignments: pd.DataFrame, users: pd.DataFrame,
                            privileged: dict[str, str] | None = None) -> pd.DataFrame:
    """Assignments of privileged roles, with the user behind each principal (other principals are labelled)."""
    if privileged is None:
        from teamsops.actions.safeguards import PROTECTED_ROLES

        privileged = PROTECTED_ROLES
    keys = {k.lower() for k in privileged}
    defs = role_definitions[["id", "displayName", "templateId"]]
    chosen = defs[defs["id"].str.lower().isin(keys) | defs["templateId"].fillna("").str.lower().isin(keys)]
    chosen = chosen.rename(columns={"id": "role_definition_id", "displayName": "role_name"})[
        ["role_definition_id", "role_name"]]
    frame = role_assignments.merge(chosen, on="role_definition_id", how="inner")
    people = _users(users).rename(columns={"id": "principal_id"})
    frame = frame.merge(people, on="principal_id", how="left")
    frame["principal_type"] = ["user" if pd.notna(u) else NON_USER_PRINCIPAL for u in frame["userPrincipalName"]]
    return _frame("privileged_role_holders",
                  frame.sort_values(["role_name", "userPrincipalName", "principal_id"], na_position="last"))


# ---------------------------------------------------------------------------------------------- changes
def users_snapshot(users: pd.DataFrame) -> pd.DataFrame:
    """What the next report compares against (kept with every report run: the sync may have removed its files)."""
    return _frame("users_snapshot", _users(users).sort_values("id"))


def user_changes(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """Users added, disabled (enabled in ``previous``, disabled now) and removed; empty without a previous run."""
    if previous is None:
        return _frame("user_changes", [])
    before = previous.set_index("id")
    now = current.set_index("id")
    added = now.loc[now.index.difference(before.index)]
    removed = before.loc[before.index.difference(now.index)]
    both = now.index.intersection(before.index)
    was_enabled = before.loc[both, "accountEnabled"].fillna(True).astype(bool)
    is_enabled = now.loc[both, "accountEnabled"].fillna(True).astype(bool)
    disabled = now.loc[both[(was_enabled & ~is_enabled).to_numpy()]]
    parts = [frame.reset_index().assign(change=kind) for kind, frame in
             (("added", added), ("disabled", disabled), ("removed", removed)) if not frame.empty]
    if not parts:
        return _frame("user_changes", [])
    frame = pd.concat(parts).rename(columns={"id": "user_id"})
    frame["order"] = frame["change"].map({k: i for i, k in enumerate(CHANGE_KINDS)})
    return _frame("user_changes", frame.sort_values(["order", "userPrincipalName", "user_id"]))


# ---------------------------------------------------------------------------------------------- everything
def compute_all(frames: dict[str, pd.DataFrame], previous_users: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """Every report table (:data:`SCHEMAS`) from the sync's tables and the previous run's users (or None)."""
    users = frames["users"]
    snapshot = users_snapshot(users)
    tables = {
        "licence_utilisation": licence_utilisation(frames["subscribed_skus"], frames["user_licenses"]),
        "licence_waste": licence_waste(users, frames["user_licenses"]),
        "team_overview": team_overview(frames["teams"], frames["team_members"]),
        "team_guests": team_guests(frames["teams"], frames["team_members"], users),
        "app_inventory": app_inventory(frames["user_installed_apps"]),
        "privileged_role_holders": privileged_role_holders(frames["role_definitions"], frames["role_assignments"],
                                                           users),
        "user_changes": user_changes(previous_users, snapshot),
        "users_snapshot": snapshot,
    }
    tables["metrics"] = metrics(tables, baseline=previous_users is not None)
    return tables


def metrics(tables: dict[str, pd.DataFrame], *, baseline: bool) -> pd.DataFrame:
    """The headline numbers (name, value, label) shown in the report's summary."""
    skus, waste, teams = tables["licence_utilisation"], tables["licence_waste"], tables["team_overview"]
    guests, apps, roles = tables["team_guests"], tables["app_inventory"], tables["privileged_role_holders"]
    users, changes = tables["users_snapshot"], tables["user_changes"]
    disabled, guest = waste[waste["disabled"].astype(bool)], waste[waste["guest"].astype(bool)]
    custom = apps[apps["custom"].astype(bool)]
    role_users = roles[roles["principal_type"].eq("user")]
    rows = [
        ("users.total", len(users), "Users"),
        ("users.enabled", int(users["accountEnabled"].astype(bool).sum()), "Enabled users"),
        ("users.disabled", int((~users["accountEnabled"].astype(bool)).sum()), "Disabled users"),
        ("users.guests", int(users["userType"].eq("Guest").sum()), "Guest users"),
        ("licences.skus", len(skus), "Subscribed SKUs"),
        ("licences.enabled_units", int(skus["enabled_units"].sum()), "Licences bought (enabled units)"),
        ("licences.consumed_units", int(skus["consumed_units"].sum()), "Licences assigned (consumed units)"),
        ("licences.available_units", int(skus["available_units"].sum()), "Licences free"),
        ("waste.disabled.licences", len(disabled), "Licences on disabled accounts"),
        ("waste.disabled.users", disabled["user_id"].nunique(), "Disabled accounts holding licences"),
        ("waste.guest.licences", len(guest), "Licences on guests"),
        ("waste.guest.users", guest["user_id"].nunique(), "Guests holding licences"),
        ("waste.total.licences", len(waste), "Licences on disabled accounts or guests"),
        ("waste.total.users", waste["user_id"].nunique(), "Disabled accounts or guests holding licences"),
        ("teams.total", len(teams), "Teams"),
        ("teams.ownerless", int(teams["ownership"].eq("ownerless").sum()), "Teams without an owner"),
        ("teams.single_owner", int(teams["ownership"].eq("single-owner").sum()), "Teams with a single owner"),
        ("teams.with_guests", int((teams["guests"] > 0).sum()), "Teams with guests"),
        ("guests.memberships", len(guests), "Guest memberships in teams"),
        ("guests.in_teams", guests["user_id"].nunique(), "Guests in at least one team"),
        ("apps.distinct", len(apps), "Apps installed by users"),
        ("apps.installs", int(apps["installs"].sum()), "App installations (personal scope)"),
        ("apps.custom", len(custom), "Custom or sideloaded apps"),
        ("apps.custom_installs", int(custom["installs"].sum()), "Installations of custom or sideloaded apps"),
        ("roles.privileged_assignments", len(roles), "Privileged role assignments"),
        ("roles.privileged_principals", roles["principal_id"].nunique(), "Principals holding a privileged role"),
        ("roles.privileged_users", role_users["principal_id"].nunique(), "Users holding a privileged role"),
        ("changes.baseline", int(baseline), "A previous run to compare with (1 = yes)"),
        *((f"changes.{kind}", int(changes["change"].eq(kind).sum()), f"Users {kind} since the previous run")
          for kind in CHANGE_KINDS),
    ]
    return pd.DataFrame([{"metric": m, "value": int(v), "label": label} for m, v, label in rows],
                        columns=SCHEMAS["metrics"].names)


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """A report table as Arrow data with its declared schema (typed even when empty)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return pa.Table.from_pylist(clean.to_dict("records"), schema=SCHEMAS[name])

"""The ten tables of a tenant sync: their Parquet schemas, keys, parents, links and the permission each needs.

Entity tables keep Graph's own property names (``userPrincipalName``, ``displayName`` ...); link tables and values
the sync derives use snake_case (``team_id``, ``manager_id``, ``sku_part_number``). Nested Graph values that a
report rarely needs as structure (``verifiedDomains``, ``assignedLicenses``) are stored as JSON text.

Dependencies (``parents``) are the tables of the SAME run a table reads: fan-out tables read their parent's ids,
``user_licenses`` is derived from ``users`` and ``subscribed_skus`` without calling Graph, and ``team_members``
reads the ``users`` outcome of the run to know whose ``userType`` changed (a guest's team role is ``guest``).
``links`` are the keys :func:`teamsops.sync.publish` checks against their parent before publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

__all__ = ["FORMAT_VERSION", "TABLES", "Link", "TableSpec", "table_spec"]

# Bumped when a table's layout or the manifest changes incompatibly: a plan never builds incrementally on a run
# published in another format (it runs a full sync instead and says why).
FORMAT_VERSION = 1

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()


@dataclass(frozen=True)
class Link:
    """``column`` of this table must be a value of ``parent.parent_column`` (None values are not checked)."""

    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True)
class TableSpec:
    """One table of the sync.

    :param name: table name (also its folder under the tenant).
    :param schema: the Parquet schema every part file of the table has.
    :param key: columns that identify a row.
    :param parents: tables of the same run this one reads (they must have run before it).
    :param fanout: True when the table is read per parent object and may be split into shards.
    :param change_feed: ``"delta"`` for tables kept up to date through a Graph delta query, ``"derived"`` for
        tables computed from other tables, ``"full"`` for tables re-read in full on every run.
    :param permissions: application permissions the table needs (any broader one also works).
    :param links: foreign keys checked before publishing.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    parents: tuple[str, ...] = ()
    fanout: bool = False
    change_feed: str = "full"
    permissions: tuple[str, ...] = ()
    links: tuple[Link, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind) for name, kind in fields])


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "organization",
            _schema(("id", _STR), ("displayName", _STR), ("verifiedDomains", _STR), ("countryLetterCode", _STR),
                    ("tenantType", _STR), ("createdDateTime", _TS), ("onPremisesSyncEnabled", pa.bool_()),
                    ("technicalNotificationMails", _STR)),
            key=("id",), permissions=("Organization.Read.All",),
            description="GET /organization (verifiedDomains and technicalNotificationMails as JSON text)"),
        TableSpec(
            "subscribed_skus",
            _schema(("sku_id", _STR), ("sku_part_number", _STR), ("consumed_units", pa.int64()),
                    ("enabled_units", pa.int64()), ("suspended_units", pa.int64()), ("warning_units", pa.int64()),
                    ("locked_out_units", pa.int64()), ("capability_status", _STR), ("applies_to", _STR),
                    ("id", _STR)),
            key=("sku_id",), permissions=("Organization.Read.All",),
            description="GET /subscribedSkus (the tenant's licence inventory; units from prepaidUnits)"),
        TableSpec(
            "role_definitions",
            _schema(("id", _STR), ("displayName", _STR), ("description", _STR), ("isBuiltIn", pa.bool_()),
                    ("isEnabled", pa.bool_()), ("templateId", _STR)),
            key=("id",), permissions=("RoleManagement.Read.Directory",),
            description="GET /roleManagement/directory/roleDefinitions"),
        TableSpec(
            "role_assignments",
            _schema(("id", _STR), ("principal_id", _STR), ("role_definition_id", _STR),
                    ("directory_scope_id", _STR)),
            key=("id",), parents=("role_definitions",), permissions=("RoleManagement.Read.Directory",),
            links=(Link("role_definition_id", "role_definitions", "id"),),
            description="GET /roleManagement/directory/roleAssignments (principals: users, groups, apps)"),
        TableSpec(
            "users",
            _schema(("id", _STR), ("userPrincipalName", _STR), ("displayName", _STR), ("mail", _STR),
                    ("accountEnabled", pa.bool_()), ("userType", _STR), ("department", _STR), ("jobTitle", _STR),
                    ("createdDateTime", _TS), ("manager_id", _STR), ("givenName", _STR), ("surname", _STR),
                    ("companyName", _STR), ("officeLocation", _STR), ("usageLocation", _STR),
                    ("employeeId", _STR), ("creationType", _STR), ("externalUserState", _STR),
                    ("onPremisesSyncEnabled", pa.bool_()), ("assignedLicenses", _STR)),
            key=("id",), change_feed="delta", permissions=("User.Read.All",),
            links=(Link("manager_id", "users", "id"),),
            description="GET /users/delta with manager (manager_id from manager@delta; assignedLicenses as JSON)"),
        TableSpec(
            "user_licenses",
            _schema(("user_id", _STR), ("sku_id", _STR), ("sku_part_number", _STR), ("disabled_plans", _STR)),
            key=("user_id", "sku_id"), parents=("users", "subscribed_skus"), change_feed="derived",
            links=(Link("user_id", "users", "id"), Link("sku_id", "subscribed_skus", "sku_id")),
            description="users.assignedLicenses joined to subscribed_skus (licenseDetails has no app-only access)"),
        TableSpec(
            "teams",
            _schema(("id", _STR), ("displayName", _STR), ("description", _STR), ("visibility", _STR),
                    ("createdDateTime", _TS), ("mail", _STR), ("mailNickname", _STR), ("classification", _STR)),
            key=("id",), change_feed="delta", permissions=("Group.Read.All", "GroupMember.Read.All"),
            description="GET /groups/delta with members and owners, groups whose resourceProvisioningOptions "
                        "contain 'Team' (visibility in the team's casing: private / public / hiddenMembership)"),
        TableSpec(
            "team_members",
            _schema(("team_id", _STR), ("user_id", _STR), ("membership_id", _STR), ("roles", _STR)),
            key=("team_id", "user_id"), parents=("teams", "users"), fanout=True,
            permissions=("TeamMember.Read.All",),
            links=(Link("team_id", "teams", "id"), Link("user_id", "users", "id")),
            description="GET /teams/{id}/members (roles: owner / member / guest); re-read only for teams whose "
                        "membership changed"),
        TableSpec(
            "channels",
            _schema(("team_id", _STR), ("id", _STR), ("displayName", _STR), ("description", _STR),
                    ("membershipType", _STR), ("createdDateTime", _TS), ("email", _STR), ("webUrl", _STR)),
            key=("team_id", "id"), parents=("teams",), fanout=True, permissions=("Channel.ReadBasic.All",),
            links=(Link("team_id", "teams", "id"),),
            description="GET /teams/{id}/channels (membershipType standard / private / shared)"),
        TableSpec(
            "user_installed_apps",
            _schema(("user_id", _STR), ("installation_id", _STR), ("teams_app_id", _STR),
                    ("app_display_name", _STR), ("distribution_method", _STR), ("external_id", _STR)),
            key=("user_id", "installation_id"), parents=("users",), fanout=True,
            permissions=("TeamsAppInstallation.ReadForUser.All",),
            links=(Link("user_id", "users", "id"),),
            description="GET /users/{id}/teamwork/installedApps?$expand=teamsApp (all users, or a rolling "
                        "fraction per run)"),
    )
}  # fmt: skip


def table_spec(name: str) -> TableSpec:
    """The spec of a table, or a ValueError that lists the known tables."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; the sync has: {', '.join(TABLES)}") from None

"""In-memory state of the simulated Microsoft cloud: tenants, their directory and Teams data, app registrations.

This module holds state and the rules that change it; it knows nothing of HTTP (see ``http.py``). A rule that is
broken raises :class:`RuleViolation` with a *kind* (``invalid``, ``not_found``, ``conflict``, ``forbidden``); the API
modules translate the kind into the status and error code of the workload they imitate (directory or Teams).

CONTRACT (used by identity.py / server.py / admin endpoints; keep these names and meanings):
  * ``Directory.get_tenant(ref)`` resolves a tenant by id or by any verified domain (case-insensitive), else None.
  * ``Directory.find_app(app_id)`` -> ``(Tenant, AppRegistration)`` or None, searching every tenant.
  * ``Directory.tenants`` dict id -> Tenant; ``Directory.add_tenant(tenant)``.
  * ``Tenant.id``, ``Tenant.display_name``, ``Tenant.initial_domain``, ``Tenant.apps`` (dict app_id -> AppRegistration),
    ``Tenant.lock`` (an RLock every reader/writer of that tenant's state holds).
  * ``AppRegistration`` fields below.
  * ``Tenant.user_count()``, ``Tenant.snapshot(collection)``, ``Tenant.bot_messages``.
  * ``Directory.journal`` (write journal), ``Directory.record_write(...)``, ``Directory.expire_delta_tokens(...)``.

Storage conventions (they keep reads cheap for 100,000-user tenants):
  * Graph resources are dicts keyed by Graph's own property names; a property that is ``null`` is simply absent, so
    rendering uses ``dict.get``.
  * Nested values (lists, dicts) are never mutated in place: a write assigns a new value. Generated users share
    nested values (e.g. one ``assignedLicenses`` list per licence combination), and rendered responses hand out
    references to them after the tenant lock is released.
  * Relationships (members, owners, managers, app installations) live in indexes, not inside the resource dicts.
"""

from __future__ import annotations

import base64
import json
import re
import string
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

SOFT_DELETE_RETENTION = timedelta(days=30)
DELTA_TOKEN_LIFETIME = timedelta(days=7)  # directory objects (delta-query-overview.md, "Token duration")
DELTA_EXPIRY_MODES = ("syncStateNotFound", "reset410")

# Properties that only a higher-privileged admin may change on a user who holds a privileged role
# (Entra "Who can perform sensitive actions"; user-update.md).
SENSITIVE_USER_PROPERTIES = frozenset(
    {
        "accountEnabled",
        "businessPhones",
        "mobilePhone",
        "otherMails",
        "passwordProfile",
        "userPrincipalName",
        "onPremisesImmutableId",
    }
)
# Roles whose holders may change sensitive properties of privileged users and delete admins (app-only: the role must
# be assigned to the app's service principal). Global Administrator, Privileged Authentication Administrator.
SENSITIVE_ACTION_ROLES = frozenset({"62e90394-69f5-4237-9190-012177145e10", "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"})

_UPN_LOCAL_CHARS = set(string.ascii_letters + string.digits + "'.-_!#^~")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


_ABSENT = object()  # "not in the index" for dict.pop on insertion-ordered sets (whose values are None)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """Graph's directory timestamp format: ``2021-03-04T10:12:00Z`` (UTC, no fractions)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_guid(value: str) -> bool:
    return bool(_GUID_RE.match(value))


def opaque_id(*parts: str) -> str:
    """Teams' opaque ids: standard base64 of ``part1##part2`` (membership and installation ids look like this)."""
    return base64.b64encode("##".join(parts).encode()).decode()


def parse_opaque_id(value: str) -> list[str] | None:
    try:
        decoded = base64.b64decode(value.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    parts = decoded.split("##")
    return parts if len(parts) == 2 else None


class RuleViolation(Exception):
    """A request broke a rule of the directory or of Teams.

    :param kind: ``invalid`` (400), ``not_found`` (404), ``conflict`` (409) or ``forbidden`` (403).
    :param message: the message Graph gives for it.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class ClientSecret:
    """A client secret of an app registration (only the value is checked; ``key_id`` is the 'Secret ID')."""

    value: str
    key_id: str
    expires_at: datetime


@dataclass
class ClientCertificate:
    """A certificate registered on an app (public part only).

    :param pem: the certificate, PEM.
    :param thumbprint_sha1: hex upper-case SHA-1 of the DER (what the portal shows; JWT header ``x5t`` is its base64url).
    :param thumbprint_sha256: hex SHA-256 of the DER (JWT header ``x5t#S256`` is its base64url).
    """

    pem: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    expires_at: datetime


@dataclass
class AppRegistration:
    """An application registered (and consented) in a tenant.

    :param roles: granted application permissions (become the token's ``roles`` claim), e.g. ``User.Read.All``.
    :param bot: True when the app is also a Bot Framework bot (``https://api.botframework.com/.default`` tokens).
    :param teams_app_id: id of the Teams app (catalog entry) that packages this bot, when ``bot`` is True.
    """

    app_id: str
    display_name: str
    tenant_id: str
    service_principal_id: str
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[ClientCertificate] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)
    enabled: bool = True
    bot: bool = False
    teams_app_id: str | None = None
    # Lifetime (seconds) of tokens issued to this app; a short one lets tests exercise 401 refresh.
    token_lifetime: int = 3599


@dataclass(frozen=True)
class Change:
    """One entry of a tenant's change log, which feeds ``/users/delta`` and ``/groups/delta``.

    :param kind: ``user`` or ``group``.
    :param props: names of the properties that changed (a change to an unselected property is not reported).
    :param links: relationship changes ``(relationship, target_id, added)``: ``members``/``owners`` of a group,
        ``manager`` of a user.
    :param lifecycle: ``created``, ``deleted`` (soft), ``restored`` or ``purged`` (hard delete), else None.
    """

    seq: int
    kind: str
    object_id: str
    props: frozenset[str] = frozenset()
    links: tuple[tuple[str, str, bool], ...] = ()
    lifecycle: str | None = None


@dataclass
class DeletedUser:
    """A soft-deleted user and the relationships Entra keeps so that a restore brings them back."""

    user: dict[str, Any]
    deleted_at: datetime
    original_upn: str
    member_of: list[str] = field(default_factory=list)
    owner_of: list[str] = field(default_factory=list)
    manager: str | None = None
    reports: list[str] = field(default_factory=list)


@dataclass
class Tenant:
    """One Entra ID tenant with its directory and Teams data.

    Graph resources are stored as dicts keyed by Graph's own property names, so ``$select`` is a projection.
    Relationship indexes use ``dict[str, None]`` as an insertion-ordered set.
    """

    id: str
    display_name: str
    initial_domain: str
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    verified_domains: list[str] = field(default_factory=list)
    organization: dict[str, Any] = field(default_factory=dict, repr=False)
    users: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    upn_index: dict[str, str] = field(default_factory=dict, repr=False)  # lower-case UPN -> user id
    manager_of: dict[str, str] = field(default_factory=dict, repr=False)  # user id -> manager id
    reports_of: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    group_members: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)
    group_owners: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)
    member_of: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)  # user id -> group ids
    owner_of: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # team-only properties, id = group id
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)  # team id -> channels
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # teamsApp id -> teamsApp
    app_definitions: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # teamsApp id -> definition
    user_apps: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)  # user id -> teamsApp ids
    team_apps: dict[str, dict[str, None]] = field(default_factory=dict, repr=False)  # team id -> teamsApp ids
    skus: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # skuId -> subscribedSku
    role_definitions: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    role_assignments: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    service_principals: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    deleted_users: dict[str, DeletedUser] = field(default_factory=dict, repr=False)
    bot_messages: list[dict[str, Any]] = field(default_factory=list, repr=False)
    bot_conversations: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # What the generator made this tenant from (spec, sync and bot app ids); see generator.app_credentials.
    generated: dict[str, Any] = field(default_factory=dict, repr=False)

    # Delta machinery: the change log, the token "epoch" that expire_delta_tokens bumps, and server-side paging
    # sessions of delta rounds (real skiptokens are opaque too).
    changes: list[Change] = field(default_factory=list, repr=False)
    change_seq: int = 0
    delta_epoch: int = 0
    delta_expired_modes: dict[int, str] = field(default_factory=dict, repr=False)
    delta_sessions: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)

    # ------------------------------------------------------------------ reads
    def user_count(self) -> int:
        """Number of (not deleted) users: the size class of the identity throttling limits."""
        return len(self.users)

    def resolve_user(self, ref: str) -> dict[str, Any] | None:
        """A user by object id or by userPrincipalName (case-insensitive), like ``/users/{id | userPrincipalName}``."""
        user = self.users.get(ref) or self.users.get(ref.lower())
        if user is not None:
            return user
        user_id = self.upn_index.get(ref.lower())
        return self.users.get(user_id) if user_id else None

    def is_team(self, group_id: str) -> bool:
        return group_id in self.teams

    def team_member_ids(self, team_id: str) -> dict[str, None]:
        """Members of a team (a team's roster is its group's members; owners are always members too)."""
        return self.group_members.get(team_id, {})

    def team_roles(self, team_id: str, user_id: str) -> list[str]:
        """conversationMember roles: ``["owner"]``, ``[]`` for a member, ``["guest"]`` for a guest."""
        if self.users.get(user_id, {}).get("userType") == "Guest":
            return ["guest"]
        return ["owner"] if user_id in self.group_owners.get(team_id, {}) else []

    def joined_team_ids(self, user_id: str) -> list[str]:
        return [gid for gid in self.member_of.get(user_id, {}) if gid in self.teams]

    def role_ids_of(self, principal_id: str) -> set[str]:
        return {a["roleDefinitionId"] for a in self.role_assignments.values() if a["principalId"] == principal_id}

    def holds_admin_role(self, user_id: str) -> bool:
        return bool(self.role_ids_of(user_id))

    def holds_privileged_role(self, user_id: str) -> bool:
        return any(self.role_definitions.get(r, {}).get("isPrivileged") for r in self.role_ids_of(user_id))

    def app_can_act_on_admins(self, app_id: str) -> bool:
        """True when the app's service principal holds a role that may manage privileged users."""
        app = self.apps.get(app_id)
        return bool(app and self.role_ids_of(app.service_principal_id) & SENSITIVE_ACTION_ROLES)

    def installed_app_ids(self, scope: str, target_id: str) -> dict[str, None]:
        return (self.user_apps if scope == "user" else self.team_apps).get(target_id, {})

    def purge_expired_deleted_users(self, now: datetime | None = None) -> None:
        """Hard-delete users soft-deleted more than 30 days ago, as Entra does on its own.

        Nothing calls this on a timer: generated tenants date their deleted users relative to the spec's fixed epoch
        (so generation stays reproducible), and a clock-driven purge would delete them on the first request. Call it
        (or ``DELETE /directory/deletedItems/{id}``) to exercise permanent deletion."""
        now = now or utcnow()
        with self.lock:
            for user_id in [u for u, d in self.deleted_users.items() if now - d.deleted_at > SOFT_DELETE_RETENTION]:
                self.purge_deleted_user(user_id)

    # ------------------------------------------------------------------ admin snapshots
    def snapshot(self, collection: str) -> list[dict[str, Any]]:
        """A detached copy of one collection, for admin reads and test assertions.

        Collections: users, groups, team_members, channels, skus, installed_apps, role_definitions,
        role_assignments, deleted_users, managers, bot_messages.
        """
        builders = {
            "users": lambda: list(self.users.values()),
            "groups": lambda: [
                {**g, "members": list(self.group_members.get(gid, {})), "owners": list(self.group_owners.get(gid, {}))}
                for gid, g in self.groups.items()
            ],
            "team_members": self._snapshot_team_members,
            "channels": lambda: [{**c, "team_id": tid} for tid, chans in self.channels.items() for c in chans],
            "skus": lambda: list(self.skus.values()),
            "installed_apps": self._snapshot_installed_apps,
            "role_definitions": lambda: list(self.role_definitions.values()),
            "role_assignments": lambda: list(self.role_assignments.values()),
            "deleted_users": lambda: [
                {**d.user, "deletedDateTime": iso(d.deleted_at)} for d in self.deleted_users.values()
            ],
            "managers": lambda: [{"user_id": u, "manager_id": m} for u, m in self.manager_of.items()],
            "bot_messages": lambda: list(self.bot_messages),
        }
        if collection not in builders:
            raise KeyError(f"unknown collection {collection!r}; choose one of {', '.join(sorted(builders))}")
        with self.lock:
            rows = builders[collection]()
            # A JSON round trip detaches the copy from shared nested values, and proves the rows are serialisable.
            return json.loads(json.dumps(rows))

    def _snapshot_team_members(self) -> list[dict[str, Any]]:
        return [
            {"team_id": tid, "user_id": uid, "roles": self.team_roles(tid, uid), "membership_id": opaque_id(tid, uid)}
            for tid in self.teams
            for uid in self.group_members.get(tid, {})
        ]

    def _snapshot_installed_apps(self) -> list[dict[str, Any]]:
        rows = []
        for scope, index in (("user", self.user_apps), ("team", self.team_apps)):
            for target, app_ids in index.items():
                for app_id in app_ids:
                    rows.append(
                        {
                            "scope": scope,
                            "target_id": target,
                            "teams_app_id": app_id,
                            "installation_id": opaque_id(target, app_id),
                        }
                    )
        return rows

    # ------------------------------------------------------------------ change log
    def log_change(
        self,
        kind: str,
        object_id: str,
        props: frozenset[str] | set[str] = frozenset(),
        links: tuple[tuple[str, str, bool], ...] = (),
        lifecycle: str | None = None,
    ) -> None:
        """Append to the change log that delta rounds read (caller holds the lock)."""
        self.change_seq += 1
        self.changes.append(Change(self.change_seq, kind, object_id, frozenset(props), links, lifecycle))

    # ------------------------------------------------------------------ index helpers (caller holds the lock)
    def link_member(self, group_id: str, user_id: str) -> bool:
        members = self.group_members.setdefault(group_id, {})
        if user_id in members:
            return False
        members[user_id] = None
        self.member_of.setdefault(user_id, {})[group_id] = None
        return True

    def unlink_member(self, group_id: str, user_id: str) -> bool:
        if self.group_members.get(group_id, {}).pop(user_id, _ABSENT) is _ABSENT:
            return False
        self.member_of.get(user_id, {}).pop(group_id, None)
        return True

    def link_owner(self, group_id: str, user_id: str) -> bool:
        owners = self.group_owners.setdefault(group_id, {})
        if user_id in owners:
            return False
        owners[user_id] = None
        self.owner_of.setdefault(user_id, {})[group_id] = None
        return True

    def unlink_owner(self, group_id: str, user_id: str) -> bool:
        if self.group_owners.get(group_id, {}).pop(user_id, _ABSENT) is _ABSENT:
            return False
        self.owner_of.get(user_id, {}).pop(group_id, None)
        return True

    def link_manager(self, user_id: str, manager_id: str) -> None:
        old = self.manager_of.get(user_id)
        if old is not None:
            self.reports_of.get(old, {}).pop(user_id, None)
        self.manager_of[user_id] = manager_id
        self.reports_of.setdefault(manager_id, {})[user_id] = None

    def unlink_manager(self, user_id: str) -> str | None:
        old = self.manager_of.pop(user_id, None)
        if old is not None:
            self.reports_of.get(old, {}).pop(user_id, None)
        return old

    def adjust_consumed_units(self, user: dict[str, Any], delta: int) -> None:
        for licence in user.get("assignedLicenses") or ():
            sku = self.skus.get(licence["skuId"])
            if sku is not None:
                self.skus[sku["skuId"]] = {**sku, "consumedUnits": sku["consumedUnits"] + delta}

    # ------------------------------------------------------------------ user writes
    def create_user(self, props: dict[str, Any], user_id: str, now: datetime) -> dict[str, Any]:
        """Create a user (props already checked for known, writable property names)."""
        with self.lock:
            upn = props["userPrincipalName"]
            self.check_upn(upn)
            check_password(props["passwordProfile"].get("password"))
            stored = {k: v for k, v in props.items() if k != "passwordProfile" and v is not None}
            stored.update(
                {
                    "id": user_id,
                    "userType": props.get("userType") or "Member",
                    "createdDateTime": iso(now),
                    "signInSessionsValidFromDateTime": iso(now),
                    "lastPasswordChangeDateTime": iso(now),
                    "businessPhones": props.get("businessPhones") or [],
                    "assignedLicenses": [],
                    "assignedPlans": [],
                }
            )
            self.users[user_id] = stored
            self.upn_index[upn.lower()] = user_id
            self.log_change("user", user_id, frozenset(stored), lifecycle="created")
            return stored

    def update_user(self, user_id: str, changes: dict[str, Any], now: datetime) -> None:
        """Apply a PATCH (props already checked for known, writable names and types)."""
        with self.lock:
            user = self.users[user_id]
            if "displayName" in changes and not (changes["displayName"] or "").strip():
                raise RuleViolation("invalid", "Invalid value specified for property 'displayName' of resource 'User'.")
            new_upn = changes.get("userPrincipalName")
            if new_upn is not None and new_upn.lower() != user["userPrincipalName"].lower():
                self.check_upn(new_upn)
            if "passwordProfile" in changes:
                check_password((changes["passwordProfile"] or {}).get("password"))
            updated = dict(user)
            for key, value in changes.items():
                if key == "passwordProfile":
                    updated["lastPasswordChangeDateTime"] = iso(now)
                elif value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = value
            if new_upn is not None:
                self.upn_index.pop(user["userPrincipalName"].lower(), None)
                self.upn_index[new_upn.lower()] = user_id
            self.users[user_id] = updated
            self.log_change("user", user_id, frozenset(changes) - {"passwordProfile"})

    def check_upn(self, upn: str, ignore_id: str | None = None) -> None:
        """userPrincipalName rules: allowed characters, a verified domain, unique (user-post-users.md)."""
        local, _, domain = upn.rpartition("@")
        if not local or not domain or not set(local) <= _UPN_LOCAL_CHARS or local.startswith(".") or ".." in local:
            raise RuleViolation(
                "invalid", "Invalid value specified for property 'userPrincipalName' of resource 'User'."
            )
        if domain.lower() not in {d.lower() for d in self.verified_domains}:
            raise RuleViolation(
                "invalid",
                "The domain portion of the userPrincipalName property is invalid. "
                "You must use one of the verified domain names in your organization.",
            )
        owner = self.upn_index.get(upn.lower())
        if owner is not None and owner != ignore_id:
            raise RuleViolation(
                "invalid", "Another object with the same value for property userPrincipalName already exists."
            )

    def delete_user(self, user_id: str, now: datetime) -> None:
        """Soft delete: the user moves to deletedItems for 30 days; memberships and manager links are removed from
        the live directory but remembered, so a restore brings them back ("all of the account's organization
        information is preserved", Entra users-restore.md). Licences are released while deleted."""
        with self.lock:
            user = self.users.pop(user_id)
            upn = user["userPrincipalName"]
            self.upn_index.pop(upn.lower(), None)
            record = DeletedUser(user=user, deleted_at=now, original_upn=upn)
            for group_id in list(self.member_of.get(user_id, {})):
                self.unlink_member(group_id, user_id)
                record.member_of.append(group_id)
                self.log_change("group", group_id, links=(("members", user_id, False),))
            for group_id in list(self.owner_of.get(user_id, {})):
                self.unlink_owner(group_id, user_id)
                record.owner_of.append(group_id)
                self.log_change("group", group_id, links=(("owners", user_id, False),))
            record.manager = self.unlink_manager(user_id)
            for report in list(self.reports_of.get(user_id, {})):
                self.unlink_manager(report)
                record.reports.append(report)
                self.log_change("user", report, {"manager"}, links=(("manager", user_id, False),))
            # App installations are kept: they come back with a restore (and go with a purge).
            self.adjust_consumed_units(user, -1)
            # Entra renames a soft-deleted user's UPN to <object id without dashes><UPN> so the UPN can be reused.
            record.user = {**user, "userPrincipalName": user_id.replace("-", "") + upn}
            self.deleted_users[user_id] = record
            self.log_change("user", user_id, lifecycle="deleted")

    def restore_user(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            record = self.deleted_users[user_id]
            owner = self.upn_index.get(record.original_upn.lower())
            if owner is not None:
                raise RuleViolation(
                    "invalid", "Another object with the same value for property userPrincipalName already exists."
                )
            del self.deleted_users[user_id]
            user = {**record.user, "userPrincipalName": record.original_upn}
            self.users[user_id] = user
            self.upn_index[record.original_upn.lower()] = user_id
            self.adjust_consumed_units(user, +1)  # restored even if that over-consumes the SKU (users-restore.md)
            self._restore_links(user_id, record)
            self.log_change("user", user_id, frozenset(user), lifecycle="restored")
            return user

    def _restore_links(self, user_id: str, record: DeletedUser) -> None:
        for group_id in record.member_of:
            if group_id in self.groups and self.link_member(group_id, user_id):
                self.log_change("group", group_id, links=(("members", user_id, True),))
        for group_id in record.owner_of:
            if group_id in self.groups and self.link_owner(group_id, user_id):
                self.log_change("group", group_id, links=(("owners", user_id, True),))
        if record.manager in self.users:
            self.link_manager(user_id, record.manager)
        for report in record.reports:
            if report in self.users and report not in self.manager_of:
                self.link_manager(report, user_id)
                self.log_change("user", report, {"manager"}, links=(("manager", user_id, True),))

    def purge_deleted_user(self, user_id: str) -> None:
        """Permanent delete of a soft-deleted user; delta then reports it with ``@removed: {"reason": "deleted"}``."""
        with self.lock:
            del self.deleted_users[user_id]
            self.user_apps.pop(user_id, None)
            self.log_change("user", user_id, lifecycle="purged")

    def set_manager(self, user_id: str, manager_id: str) -> None:
        with self.lock:
            if manager_id == user_id:
                raise RuleViolation("invalid", "A user cannot be their own manager.")
            cursor, seen = manager_id, set()
            while cursor is not None and cursor not in seen:
                if cursor == user_id:
                    raise RuleViolation("invalid", "Setting this manager would create a circular reporting chain.")
                seen.add(cursor)
                cursor = self.manager_of.get(cursor)
            old = self.manager_of.get(user_id)
            self.link_manager(user_id, manager_id)
            links = (
                (("manager", manager_id, True),)
                if old is None
                else (("manager", old, False), ("manager", manager_id, True))
            )
            self.log_change("user", user_id, {"manager"}, links=links)

    def remove_manager(self, user_id: str) -> None:
        with self.lock:
            old = self.unlink_manager(user_id)
            if old is None:
                raise RuleViolation(
                    "not_found",
                    "Resource 'manager' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            self.log_change("user", user_id, {"manager"}, links=(("manager", old, False),))

    def revoke_sessions(self, user_id: str, now: datetime) -> None:
        """Reset signInSessionsValidFromDateTime. For a guest the property changes too, but the guest's sessions
        live in their home tenant and are unaffected (user-revokesigninsessions.md)."""
        with self.lock:
            self.users[user_id] = {**self.users[user_id], "signInSessionsValidFromDateTime": iso(now)}
            self.log_change("user", user_id, {"signInSessionsValidFromDateTime"})

    # ------------------------------------------------------------------ team membership writes
    def add_team_member(self, team_id: str, user_id: str, owner: bool) -> None:
        """Add (or re-add) a user to a team: Teams answers 201 again for an existing member and applies the roles."""
        with self.lock:
            user = self.users[user_id]
            if owner and user.get("userType") == "Guest":
                raise RuleViolation("invalid", "Guest users cannot be assigned the owner role.")
            if self.link_member(team_id, user_id):
                self.log_change("group", team_id, links=(("members", user_id, True),))
            self._apply_owner_flag(team_id, user_id, owner)

    def set_team_member_owner(self, team_id: str, user_id: str, owner: bool) -> None:
        with self.lock:
            if owner and self.users[user_id].get("userType") == "Guest":
                raise RuleViolation("invalid", "Guest users cannot be assigned the owner role.")
            self._apply_owner_flag(team_id, user_id, owner)

    def remove_team_member(self, team_id: str, user_id: str) -> None:
        with self.lock:
            self._check_not_last_owner(team_id, user_id)
            if self.unlink_owner(team_id, user_id):
                self.log_change("group", team_id, links=(("owners", user_id, False),))
            if self.unlink_member(team_id, user_id):
                self.log_change("group", team_id, links=(("members", user_id, False),))

    def _apply_owner_flag(self, team_id: str, user_id: str, owner: bool) -> None:
        if owner and self.link_owner(team_id, user_id):
            self.log_change("group", team_id, links=(("owners", user_id, True),))
        elif not owner and user_id in self.group_owners.get(team_id, {}):
            self._check_not_last_owner(team_id, user_id)
            self.unlink_owner(team_id, user_id)
            self.log_change("group", team_id, links=(("owners", user_id, False),))

    def _check_not_last_owner(self, team_id: str, user_id: str) -> None:
        owners = self.group_owners.get(team_id, {})
        if user_id in owners and len(owners) == 1:
            # The directory's message for the same rule on /groups/{id}/owners (observed; Teams refuses too).
            raise RuleViolation(
                "invalid", "The group must have at least one owner, hence this owner cannot be removed."
            )

    # ------------------------------------------------------------------ app installation writes
    def install_app(self, scope: str, target_id: str, teams_app_id: str) -> None:
        with self.lock:
            installed = (self.user_apps if scope == "user" else self.team_apps).setdefault(target_id, {})
            if teams_app_id in installed:
                raise RuleViolation("conflict", "App is already installed.")
            installed[teams_app_id] = None

    def uninstall_app(self, scope: str, target_id: str, teams_app_id: str) -> None:
        with self.lock:
            installed = (self.user_apps if scope == "user" else self.team_apps).get(target_id, {})
            if installed.pop(teams_app_id, _ABSENT) is _ABSENT:
                raise RuleViolation("not_found", "App installation not found.")


def check_password(password: Any) -> None:
    """Entra's cloud password policy: 8-256 characters and 3 of lower case, upper case, digits, symbols."""
    if not isinstance(password, str) or not password:
        raise RuleViolation("invalid", "Invalid value specified for property 'passwordProfile' of resource 'User'.")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if not 8 <= len(password) <= 256 or classes < 3:
        raise RuleViolation(
            "invalid",
            "The specified password does not comply with password complexity requirements. "
            "Please provide a different password.",
        )


class Directory:
    """Every simulated tenant (the 'cloud'), plus the write journal shared by the Graph and Bot APIs."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._lock = threading.RLock()
        self.journal: list[dict[str, Any]] = []
        self._journal_lock = threading.Lock()

    def add_tenant(self, tenant: Tenant) -> Tenant:
        with self._lock:
            self.tenants[tenant.id] = tenant
        return tenant

    def get_tenant(self, ref: str) -> Tenant | None:
        ref = ref.lower()
        with self._lock:
            if ref in self.tenants:
                return self.tenants[ref]
            for tenant in self.tenants.values():
                if ref == tenant.initial_domain.lower() or ref in _verified_domains(tenant):
                    return tenant
        return None

    def find_app(self, app_id: str) -> tuple[Tenant, AppRegistration] | None:
        with self._lock:
            for tenant in self.tenants.values():
                app = tenant.apps.get(app_id)
                if app is not None:
                    return tenant, app
        return None

    def record_write(
        self,
        *,
        tenant_id: str,
        app_id: str,
        method: str,
        path: str,
        status: int,
        request_id: str,
        client_request_id: str,
        target: str | None,
    ) -> dict[str, Any]:
        """Append one applied write to the journal (called exactly once per successful write, after applying it)."""
        with self._journal_lock:
            entry = {
                "seq": len(self.journal) + 1,
                "time": utcnow().isoformat(),
                "tenant_id": tenant_id,
                "app_id": app_id,
                "method": method,
                "path": path,
                "status": status,
                "request_id": request_id,
                "client_request_id": client_request_id,
                "target": target,
            }
            self.journal.append(entry)
            return entry

    def journal_since(self, seq: int = 0) -> list[dict[str, Any]]:
        with self._journal_lock:
            return [dict(e) for e in self.journal[seq:]]

    def expire_delta_tokens(self, tenant_id: str, mode: str = "syncStateNotFound") -> None:
        """Invalidate every delta/skip token issued so far for the tenant.

        :param mode: ``syncStateNotFound`` (410 Gone with a ``syncStateNotFound`` error) or ``reset410``
            (410 Gone with a ``Location`` header holding the request URL with an empty ``$deltatoken``).
        """
        if mode not in DELTA_EXPIRY_MODES:
            raise ValueError(f"mode must be one of {DELTA_EXPIRY_MODES}, not {mode!r}")
        tenant = self.get_tenant(tenant_id)
        if tenant is None:
            raise KeyError(f"unknown tenant {tenant_id!r}")
        with tenant.lock:
            tenant.delta_expired_modes[tenant.delta_epoch] = mode
            tenant.delta_epoch += 1
            tenant.delta_sessions.clear()


def _verified_domains(tenant: Tenant) -> set[str]:
    domains = getattr(tenant, "verified_domains", None) or [tenant.initial_domain]
    return {d.lower() for d in domains}

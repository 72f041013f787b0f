"""Safeguards that are on by default: protected accounts, privileged role holders, batch limits.

Protected accounts are never changed by an action:

* **configured accounts** (break-glass / emergency access accounts): UPNs or object ids in
  :attr:`Safeguards.protected_accounts`. No run conf can lift this; the account must be removed from the
  configuration first, which is a deliberate, reviewed change.
* **holders of privileged directory roles** (:data:`PROTECTED_ROLES`, by role *template id*, which is the same in
  every tenant and cloud, unlike display names). A run may lift this with ``override_protection: true``; the approval
  request then shows the override in bold, and Graph itself may still refuse (app-only ``User.ReadWrite.All`` cannot
  change sensitive properties of, delete or restore admins unless the app holds Privileged Authentication
  Administrator or Global Administrator).

Which roles, and why. The list is Microsoft's *PRIVILEGED*-labelled built-in roles (Entra "Microsoft Entra built-in
roles" reference, privileged-roles-permissions.md) that can *change* something, plus the administrators of the
workloads these DAGs touch:

* privileged-labelled roles can escalate: manage role assignments, credentials and authentication methods, apps and
  their secrets, Conditional Access, federation/domains or devices; disabling, deleting or reassigning such an
  account is either a takeover step or a lock-out risk;
* Exchange, SharePoint and Teams Administrator are not labelled privileged by Microsoft, but they administer the
  mailboxes, sites and teams of everyone; a runbook acting on them by mistake can leave the workload unmanaged;
* the read-only privileged roles (Global Reader, Security Reader, Attribute Provisioning Reader) are deliberately
  left out: their holders cannot change anything, Entra lets Helpdesk and Password Administrators reset them, and
  protecting them would block routine offboarding of auditors.

Assignments are read from ``GET /roleManagement/directory/roleAssignments?$filter=principalId eq '{id}'`` for the
user and for each role-assignable group the user is a member of (group-based role assignment). PIM *eligible*
assignments (not yet activated) are not visible through that API and are not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from teamsops.actions.errors import SafeguardError
from teamsops.graph import GraphClient, GraphNotFound

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_RECIPIENTS",
    "PROTECTED_ROLES",
    "Safeguards",
    "enforce_protection",
    "privileged_roles_of",
    "protection_of",
    "user_label",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 20
DEFAULT_MAX_RECIPIENTS = 200

# templateId -> display name (Microsoft Entra built-in roles reference).
PROTECTED_ROLES: dict[str, str] = {
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f": "Security Operator",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "c4e39bd9-1100-46d3-8c65-fb160da0071f": "Authentication Administrator",
    "25a516ed-2fa0-40ea-a2d0-12923a21473a": "Authentication Extensibility Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "966707d0-3269-4727-9be2-8c3a10f19b9d": "Password Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "cf1c38e5-3621-4004-a7cb-879624dced7c": "Application Developer",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9": "Conditional Access Administrator",
    "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2": "Hybrid Identity Administrator",
    "be2f45a1-457d-42af-a067-6ec1fa63bc45": "External Identity Provider Administrator",
    "8329153b-31d0-4727-b945-745eb3bc5f31": "Domain Name Administrator",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "7698a772-787b-4ac8-901f-60d6b08affd2": "Cloud Device Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "59d46f88-662b-457b-bceb-5c3809e5908f": "Lifecycle Workflows Administrator",
    "ecb2c6bf-0ab6-418e-bd87-7986f8d63bbe": "Attribute Provisioning Administrator",
    "aaf43236-0c0d-4d5f-883a-6955382ac081": "B2C IEF Keyset Administrator",
    "db506228-d27e-4b7d-95e5-295956d6615f": "Agent ID Administrator",
    "4ba39ca4-527c-499a-b93d-d9b492c50246": "Partner Tier1 Support",
    "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8": "Partner Tier2 Support",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "f28a1f50-f6e7-4571-818b-6a12f2af6b6c": "SharePoint Administrator",
    "69091246-20e8-4a56-aa4d-066075b2a7a8": "Teams Administrator",
}


@dataclass(frozen=True)
class Safeguards:
    """Configurable safeguards (all on by default).

    :param protected_accounts: UPNs or object ids that no action may change (compared case-insensitively).
    :param protected_roles: role template id -> name; holders are refused unless the run overrides.
    :param protect_role_holders: set False to switch the role check off entirely (not recommended).
    :param max_batch: most users one run may change (``users`` of batchable actions).
    :param max_recipients: most users one bot message run may address.
    """

    protected_accounts: frozenset[str] = frozenset()
    protected_roles: Mapping[str, str] = field(default_factory=lambda: dict(PROTECTED_ROLES))
    protect_role_holders: bool = True
    max_batch: int = DEFAULT_MAX_BATCH
    max_recipients: int = DEFAULT_MAX_RECIPIENTS

    def __post_init__(self) -> None:
        object.__setattr__(self, "protected_accounts", frozenset(a.strip().lower() for a in self.protected_accounts))
        object.__setattr__(self, "protected_roles", {k.lower(): v for k, v in dict(self.protected_roles).items()})
        if self.max_batch < 1 or self.max_recipients < 1:
            raise ValueError("max_batch and max_recipients must be at least 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Safeguards:
        """Build from configuration (e.g. an Airflow Variable holding JSON).

        Keys: ``protected_accounts`` (list or comma-separated string), ``extra_protected_roles`` (template id ->
        name, added to the defaults), ``protect_role_holders``, ``max_batch``, ``max_recipients``. Unknown keys are
        refused so a typo cannot silently switch a safeguard off.
        """
        values = dict(values or {})
        known = {"protected_accounts", "extra_protected_roles", "protect_role_holders", "max_batch", "max_recipients"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown safeguard setting(s) {unknown}; known: {sorted(known)}")
        accounts = values.get("protected_accounts") or []
        if isinstance(accounts, str):
            accounts = [a for a in accounts.replace(";", ",").split(",") if a.strip()]
        roles = {**PROTECTED_ROLES, **dict(values.get("extra_protected_roles") or {})}
        return cls(protected_accounts=frozenset(accounts), protected_roles=roles,
                   protect_role_holders=bool(values.get("protect_role_holders", True)),
                   max_batch=int(values.get("max_batch", DEFAULT_MAX_BATCH)),
                   max_recipients=int(values.get("max_recipients", DEFAULT_MAX_RECIPIENTS)))

    def is_configured_protected(self, user: Mapping[str, Any]) -> bool:
        """True when the user's id or UPN is in the configured protected list."""
        refs = {str(user.get("id", "")).lower(), str(user.get("userPrincipalName", "")).lower()}
        return bool(refs & self.protected_accounts)

    def check_batch(self, count: int, *, what: str = "users", limit: int | None = None) -> None:
        """Refuse a batch above the limit (before anything is read)."""
        limit = self.max_batch if limit is None else limit
        if count > limit:
            raise SafeguardError(
                f"refused: {count} {what} in one run is above the configured limit of {limit}",
                ["split the run into smaller batches, or raise the limit in the safeguard settings "
                 "(max_batch / max_recipients) through a reviewed configuration change"])


def privileged_roles_of(client: GraphClient, user_id: str, safeguards: Safeguards) -> list[str]:
    """Names of the protected roles a user holds (directly or through role-assignable groups)."""
    principals = [user_id, *_role_assignable_groups(client, user_id)]
    held: list[str] = []
    for principal in principals:
        for assignment in client.paginate("/roleManagement/directory/roleAssignments",
                                          params={"$filter": f"principalId eq '{principal}'"}):
            name = safeguards.protected_roles.get(str(assignment.get("roleDefinitionId", "")).lower())
            label = name if principal == user_id else f"{name} (through a group)"
            if name and label not in held:
                held.append(label)
    return held


def _role_assignable_groups(client: GraphClient, user_id: str) -> list[str]:
    """Role-assignable groups the user is a direct member of (roles can be assigned to such groups)."""
    try:
        groups = client.paginate(f"/users/{user_id}/memberOf", params={"$select": "id,isAssignableToRole"})
        return [g["id"] for g in groups if g.get("isAssignableToRole") is True and g.get("id")]
    except GraphNotFound:
        return []  # a soft-deleted user has no live memberships


def protection_of(client: GraphClient, user: Mapping[str, Any], safeguards: Safeguards) -> dict[str, Any]:
    """How a user is protected: ``{"configured": bool, "roles": [names]}`` (roles only when the check is on)."""
    roles = privileged_roles_of(client, str(user["id"]), safeguards) if safeguards.protect_role_holders else []
    return {"configured": safeguards.is_configured_protected(user), "roles": roles}


def enforce_protection(client: GraphClient, users: Iterable[Mapping[str, Any]], safeguards: Safeguards,
                       *, override: bool) -> dict[str, dict[str, Any]]:
    """Check every target user; refuse the run when any is protected (listing each one and why).

    :returns: user id -> protection info, for users whose protection was overridden (shown in the plan).
    :raises SafeguardError: a configured protected account, or a role holder without ``override``.
    """
    refused: list[str] = []
    overridden: dict[str, dict[str, Any]] = {}
    for user in users:
        info = protection_of(client, user, safeguards)
        label = user_label(user)
        if info["configured"]:
            refused.append(f"{label} is a configured protected account (break-glass); it is never changed by a run")
        elif info["roles"] and not override:
            refused.append(f"{label} holds {', '.join(info['roles'])}; set override_protection to true to act on "
                           "this account (the approval will show the override)")
        elif info["roles"]:
            overridden[str(user["id"])] = info
    if refused:
        raise SafeguardError("refused: the run targets protected accounts (nothing was changed)", refused)
    return overridden


def user_label(user: Mapping[str, Any]) -> str:
    """``Display Name <upn>`` (or the id) for messages and plans."""
    name, upn = user.get("displayName"), user.get("userPrincipalName")
    if name and upn:
        return f"{name} <{upn}>"
    return str(upn or name or user.get("id"))

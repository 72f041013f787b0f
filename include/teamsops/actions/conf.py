"""The action DAGs' interface: DAG ids, their conf keys as JSON schema, and conf validation.

:data:`ACTIONS` maps every action DAG id to an :class:`ActionSpec`: title, description, whether it is destructive,
and one JSON-schema definition per conf key (``type``, ``title``, ``description``, ``enum``, ``format``, ``pattern``,
``default``). :meth:`ActionSpec.airflow_params` turns them into keyword arguments for ``airflow.sdk.Param`` so the
trigger form is self-explanatory and Airflow refuses bad values before a run starts; :func:`validate_conf` applies the
same schema (jsonschema, the validator Airflow's Params use) plus the rules one key's schema cannot express (``user``
xor ``users``, no unknown keys, at least one offboarding step...). It returns the normalized conf every other module
works from.

Every DAG takes ``reason`` and ``ticket`` (required for the destructive actions), ``dry_run`` (default false) and
``connection`` (default ``msteams_default``). Actions that change existing users also take ``override_protection``:
the explicit, bold-in-the-approval override that lets a run change holders of privileged directory roles.

What app-only access cannot do, said where people look for it (:data:`APP_ONLY_LIMITS`): change a user's password
(this project only sets a temporary password when it creates a user) and send messages as a signed-in user (messages
come from the bot).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from teamsops.actions.errors import ConfError

__all__ = [
    "ACTIONS",
    "APP_ONLY_LIMITS",
    "BATCHABLE",
    "DEFAULT_CONNECTION",
    "GUID_PATTERN",
    "OFFBOARD_STEPS",
    "UPDATABLE_PROPERTIES",
    "USER_REF_PATTERN",
    "ActionSpec",
    "is_guid",
    "validate_conf",
]

DEFAULT_CONNECTION = "msteams_default"
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# An Entra object id or a userPrincipalName (guest UPNs such as a_b.com#EXT#@contoso.onmicrosoft.com included).
USER_REF_PATTERN = (r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                    r"|[^@\s]+@[^@\s]+\.[^@\s]+)$")
# user-post-users.md: the local part of a UPN may use A-Z a-z 0-9 ' . - _ ! # ^ ~ and the domain must be verified.
UPN_PATTERN = r"^[A-Za-z0-9'._!#^~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
# mailNickname: ASCII without spaces and without @ ( ) \ [ ] " ; : < > , (user resource type).
MAIL_NICKNAME_PATTERN = r'^[!#$%&\'*+\-./0-9=?A-Z^_`a-z{|}~]{1,64}$'
CONNECTION_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"

APP_ONLY_LIMITS = (
    "Not possible with app-only (client credentials) access, so no DAG offers it: changing an existing user's "
    "password (that needs the highly privileged User-PasswordProfile.ReadWrite.All or a signed-in admin: reset it in "
    "the Entra admin center > Users > the user > Reset password), and sending a message to a channel or a user as a "
    "signed-in person (that needs delegated authentication; these DAGs send as the bot, which must be installed)."
)

# msteams_update_user may change these properties only (issue 4); value schemas follow the user resource type.
_TEXT = {"type": ["null", "string"], "maxLength": 256}
UPDATABLE_PROPERTIES: dict[str, dict[str, Any]] = {
    "displayName": {"type": "string", "minLength": 1, "maxLength": 256},  # Graph refuses to clear it
    "givenName": {"type": ["null", "string"], "maxLength": 64},
    "surname": {"type": ["null", "string"], "maxLength": 64},
    "jobTitle": {"type": ["null", "string"], "maxLength": 128},
    "department": {"type": ["null", "string"], "maxLength": 64},
    "officeLocation": {"type": ["null", "string"], "maxLength": 128},
    "companyName": {"type": ["null", "string"], "maxLength": 64},
    "employeeId": {"type": ["null", "string"], "maxLength": 16},
    "mobilePhone": {"type": ["null", "string"], "maxLength": 64},
    "businessPhones": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 1},
    "usageLocation": {"type": ["null", "string"], "pattern": "^[A-Za-z]{2}$"},
    "city": {"type": ["null", "string"], "maxLength": 128},
    "country": {"type": ["null", "string"], "maxLength": 128},
}


# ---------------------------------------------------------------------------------------------- parameter builders
def _user(title: str = "User", description: str = "UPN (user@contoso.com) or Entra object id.") -> dict[str, Any]:
    return {"type": "string", "title": title, "description": description, "pattern": USER_REF_PATTERN}


def _optional_user(title: str, description: str) -> dict[str, Any]:
    return {"type": ["null", "string"], "title": title, "description": description, "pattern": USER_REF_PATTERN,
            "default": None}


def _user_or_users() -> dict[str, dict[str, Any]]:
    return {
        "user": {**_optional_user("User", "UPN or object id of one user. Use 'users' instead for a batch.")},
        "users": {"type": ["null", "array"], "title": "Users (batch)", "default": None,
                  "description": "A list of UPNs or object ids, acted on under one approval (instead of 'user'). "
                                 "Batches above the configured limit are refused.",
                  "items": {"type": "string", "pattern": USER_REF_PATTERN}, "minItems": 1},
    }


def _team(description: str = "Team id (the group's object id) or the team's exact display name.") -> dict[str, Any]:
    return {"type": "string", "title": "Team", "description": description, "minLength": 1, "maxLength": 256}


def _new_owner(description: str) -> dict[str, Any]:
    return _optional_user("New owner", description)


def _flag(title: str, description: str, default: bool) -> dict[str, Any]:
    return {"type": "boolean", "title": title, "description": description, "default": default}


def _message() -> dict[str, Any]:
    return {"type": "string", "title": "Message", "minLength": 1, "maxLength": 20000,
            "description": "Plain text sent by the bot (Teams limits a message to about 28 KB). It is sent as the "
                           "bot, never as a person: sending as a signed-in user is not possible with app-only access."}


def _common(destructive: bool, override: bool) -> dict[str, dict[str, Any]]:
    need = "Required for this destructive action." if destructive else "Optional."
    params: dict[str, dict[str, Any]] = {
        "reason": ({"type": "string", "minLength": 3, "maxLength": 1000} if destructive
                   else {"type": ["null", "string"], "maxLength": 1000, "default": None}),
        "ticket": ({"type": "string", "minLength": 1, "maxLength": 100} if destructive
                   else {"type": ["null", "string"], "maxLength": 100, "default": None}),
        "dry_run": _flag("Dry run", "Only plan: read the current state, write the plan to the audit log, and stop "
                                    "before approval. Nothing is changed.", False),
        "connection": {"type": "string", "title": "Connection", "default": DEFAULT_CONNECTION,
                       "pattern": CONNECTION_PATTERN,
                       "description": "Airflow connection id (type msteams) of the tenant. Its access must be "
                                      "read_write: read-only connections are refused."},
    }
    params["reason"].update(title="Reason", description=f"Why this change is made (audit log). {need}")
    params["ticket"].update(title="Ticket", description=f"Change or incident ticket id (audit log). {need}")
    if override:
        params["override_protection"] = _flag(
            "Override protection of privileged accounts",
            "Allow changing users who hold privileged directory roles (Global Administrator, User Administrator...). "
            "Shown in bold in the approval request. Configured protected (break-glass) accounts stay refused.",
            False)
    return params


@dataclass(frozen=True)
class ActionSpec:
    """One action DAG: its id, what it does and its conf keys.

    :ivar params: conf key -> JSON schema (with ``title``, ``description`` and, for optional keys, ``default``).
    :ivar required: keys that must be present (and not null).
    :ivar batchable: the DAG accepts ``users`` (a list) as well as ``user``.
    :ivar permissions: Graph application permissions the action writes with (beyond the sync's read permissions);
        bot messages need none (they use the bot registration).
    """

    dag_id: str
    action: str
    title: str
    description: str
    destructive: bool
    params: dict[str, dict[str, Any]]
    required: tuple[str, ...]
    batchable: bool = False
    permissions: tuple[str, ...] = field(default=())

    def schema(self) -> dict[str, Any]:
        """The whole conf as one JSON schema object (unknown keys refused)."""
        return {"type": "object", "properties": self.params, "required": list(self.required),
                "additionalProperties": False}

    def airflow_params(self) -> dict[str, dict[str, Any]]:
        """``{key: kwargs}`` for ``airflow.sdk.Param(**kwargs)``: ``default`` (absent for required keys) plus the
        JSON schema keywords and ``title`` / ``description``, in the DAG's key order."""
        out: dict[str, dict[str, Any]] = {}
        for key, schema in self.params.items():
            kwargs = dict(schema)
            if key in self.required:
                kwargs.pop("default", None)
            out[key] = kwargs
        return out

    def defaults(self) -> dict[str, Any]:
        return {key: schema["default"] for key, schema in self.params.items() if "default" in schema}


def _spec(dag_id: str, title: str, description: str, *, destructive: bool, params: dict[str, dict[str, Any]],
          required: tuple[str, ...], batchable: bool = False, override: bool = True,
          permissions: tuple[str, ...] = ()) -> ActionSpec:
    common = _common(destructive, override)
    required = required + (("reason", "ticket") if destructive else ())
    return ActionSpec(dag_id, dag_id.removeprefix("msteams_"), title, description, destructive,
                      {**params, **common}, required, batchable, permissions)


_USER_STEPS = "UPN or object id of the user to offboard (or 'users' for a batch)."

ACTIONS: dict[str, ActionSpec] = {s.dag_id: s for s in (
    _spec("msteams_create_user", "Create a user",
          "Create a cloud user with a random temporary password (forceChangePasswordNextSignIn). The password is "
          "never put in the conf, the logs, XCom or the audit log: the bot sends it to the manager; without a "
          "reachable manager an admin must reset it in the Entra admin center.",
          destructive=False, override=False, required=("user_principal_name", "display_name", "mail_nickname"),
          permissions=("User.ReadWrite.All",),
          params={
              "user_principal_name": {"type": "string", "title": "User principal name", "pattern": UPN_PATTERN,
                                      "description": "alias@domain, on a verified domain of the tenant."},
              "display_name": {"type": "string", "title": "Display name", "minLength": 1, "maxLength": 256},
              "mail_nickname": {"type": "string", "title": "Mail nickname", "pattern": MAIL_NICKNAME_PATTERN,
                                "description": "Mail alias (no spaces, no @)."},
              "account_enabled": _flag("Account enabled", "Whether the account can sign in.", True),
              "user_type": {"type": "string", "title": "User type", "enum": ["Member", "Guest"], "default": "Member"},
              "department": {**_TEXT, "title": "Department", "default": None},
              "job_title": {**_TEXT, "title": "Job title", "default": None},
              "usage_location": {"type": ["null", "string"], "title": "Usage location", "pattern": "^[A-Za-z]{2}$",
                                 "default": None,
                                 "description": "Two-letter country code (ISO 3166), needed before licences can "
                                                "be assigned."},
              "manager": _optional_user("Manager", "UPN or object id of the manager. The bot sends them the "
                                                   "temporary password."),
          }),
    _spec("msteams_update_user", "Update user properties",
          "Change profile properties of a user. Passwords cannot be changed here: "
          "reset them in the Entra admin center (app-only access cannot).",
          destructive=False, required=("user", "properties"), permissions=("User.ReadWrite.All",),
          params={
              "user": _user(),
              "properties": {"type": "object", "title": "Properties", "minProperties": 1,
                             "additionalProperties": False, "properties": UPDATABLE_PROPERTIES,
                             "description": "Properties to set (null clears one): "
                                            + ", ".join(UPDATABLE_PROPERTIES) + "."},
          }),
    _spec("msteams_delete_user", "Delete users",
          "Soft-delete users (restorable for 30 days with msteams_restore_user). Their team memberships, manager "
          "and account state are recorded in the audit log for undo.",
          destructive=True, batchable=True, required=(), params=_user_or_users(),
          permissions=("User.ReadWrite.All",)),
    _spec("msteams_enable_user", "Enable users", "Allow users to sign in again (accountEnabled = true).",
          destructive=False, batchable=True, required=(), params=_user_or_users(),
          permissions=("User.ReadWrite.All",)),
    _spec("msteams_disable_user", "Disable users",
          "Block sign-in (accountEnabled = false). Existing sessions stay valid until they expire: revoke "
          "them too (msteams_revoke_sessions, or msteams_offboard_user).",
          destructive=True, batchable=True, required=(), params=_user_or_users(),
          permissions=("User.ReadWrite.All",)),
    _spec("msteams_assign_manager", "Assign a manager", "Set a user's manager.",
          destructive=False, required=("user", "manager"), permissions=("User.ReadWrite.All",),
          params={"user": _user(), "manager": _user("Manager", "UPN or object id of the new manager.")}),
    _spec("msteams_remove_manager", "Remove the manager", "Remove a user's manager.",
          destructive=True, required=("user",), params={"user": _user()}, permissions=("User.ReadWrite.All",)),
    _spec("msteams_change_user_type", "Change the user type", "Turn members into guests or guests into members.",
          destructive=True, batchable=True, required=("user_type",), permissions=("User.ReadWrite.All",),
          params={**_user_or_users(),
                  "user_type": {"type": "string", "title": "User type", "enum": ["Member", "Guest"]}}),
    _spec("msteams_revoke_sessions", "Revoke sign-in sessions",
          "Invalidate refresh tokens and session cookies (revokeSignInSessions); users must sign in again within "
          "a few minutes. Guests' sessions live in their home tenant and are not affected.",
          destructive=True, batchable=True, required=(), params=_user_or_users(),
          permissions=("User.RevokeSessions.All",)),
    _spec("msteams_add_to_team", "Add to a team", "Add a user to a team as a member or an owner.",
          destructive=False, required=("user", "team"), permissions=("TeamMember.ReadWrite.All",),
          params={"user": _user(), "team": _team(),
                  "role": {"type": "string", "title": "Role", "enum": ["member", "owner"], "default": "member",
                           "description": "owner or member (guests can only be members)."}}),
    _spec("msteams_remove_from_team", "Remove from a team",
          "Remove a user from a team. Removing the last owner is refused unless new_owner is given.",
          destructive=True, required=("user", "team"), permissions=("TeamMember.ReadWrite.All",),
          params={"user": _user(), "team": _team(),
                  "new_owner": _new_owner("Needed when the user is the team's last owner: promoted to owner "
                                          "before the user is removed.")}),
    _spec("msteams_remove_from_all_teams", "Remove from all teams",
          "Remove users from every team they belong to. new_owner is promoted in every team where a user is the "
          "last owner.",
          destructive=True, batchable=True, required=(), permissions=("TeamMember.ReadWrite.All",),
          params={**_user_or_users(),
                  "new_owner": _new_owner("Promoted to owner in every team where a user is the last owner.")}),
    _spec("msteams_bot_message_users", "Message users (bot)",
          "Send a 1:1 message from the bot to each user. Users without the bot installed are reported by name as "
          "not reachable; the others still get the message. " + "Messages come from the bot, not from a person.",
          destructive=False, override=False, required=("users", "message"),
          params={"users": {"type": "array", "title": "Users", "minItems": 1,
                            "items": {"type": "string", "pattern": USER_REF_PATTERN},
                            "description": "UPNs or object ids of the recipients."},
                  "message": _message()}),
    _spec("msteams_bot_message_channel", "Post to a channel (bot)",
          "Start a new thread in a team channel as the bot (the bot must be installed in the team).",
          destructive=False, override=False, required=("team", "channel", "message"),
          params={"team": _team(),
                  "channel": {"type": "string", "title": "Channel", "minLength": 1, "maxLength": 256,
                              "description": "Channel id (19:...@thread.tacv2) or exact display name."},
                  "message": _message()}),
    _spec("msteams_offboard_user", "Offboard users",
          "Runbook: revoke sessions, disable, remove from all teams (promoting new_owner where the user is the "
          "last owner), remove the manager, tell the manager by bot, optionally delete. Each step is planned and "
          "audited on its own; a rerun applies only what is left.",
          destructive=True, batchable=True, required=(),
          permissions=("User.ReadWrite.All", "User.RevokeSessions.All", "TeamMember.ReadWrite.All"),
          params={**_user_or_users(),
                  "new_owner": _new_owner("Promoted to owner in every team where the user is the last owner."),
                  "revoke_sessions": _flag("Revoke sessions", "Revoke sign-in sessions.", True),
                  "disable": _flag("Disable", "Block sign-in.", True),
                  "remove_from_all_teams": _flag("Remove from all teams", "Remove from every team.", True),
                  "remove_manager": _flag("Remove manager", "Remove the manager relationship.", True),
                  "notify_manager": _flag("Notify manager", "Tell the manager by bot message.", True),
                  "delete": _flag("Delete", "Soft-delete the user at the end (restorable for 30 days).", False)}),
    _spec("msteams_restore_user", "Restore a deleted user",
          "Restore a soft-deleted user (within 30 days of deletion) and, when asked, re-add the team memberships "
          "recorded in the audit log.",
          destructive=False, required=("user",), permissions=("User.ReadWrite.All", "TeamMember.ReadWrite.All"),
          params={"user": {"type": "string", "title": "Deleted user's object id", "format": "uuid",
                           "pattern": GUID_PATTERN,
                           "description": "The object id: a deleted user's UPN is changed by Entra (prefixed with "
                                          "the id), so it cannot be used."},
                  "restore_memberships": _flag("Restore team memberships",
                                               "Re-add the team memberships (and owner roles) recorded in the audit "
                                               "log when the user was removed or deleted.", False)}),
)}

BATCHABLE = frozenset(dag_id for dag_id, spec in ACTIONS.items() if spec.batchable)
OFFBOARD_STEPS = ("revoke_sessions", "disable", "remove_from_all_teams", "remove_manager", "notify_manager", "delete")


# ---------------------------------------------------------------------------------------------- validation
def validate_conf(dag_id: str, conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a run conf against the DAG's schema and rules; return it normalized with defaults applied.

    Batchable actions always come back with ``users`` (a list, duplicates removed, case-insensitively) and without
    ``user``. Strings are stripped.

    :raises ConfError: listing every problem; nothing has been read or written.
    """
    spec = ACTIONS.get(dag_id)
    if spec is None:
        raise ConfError(f"unknown action DAG {dag_id!r}", [f"known: {', '.join(sorted(ACTIONS))}"])
    raw = {k: _strip(v) for k, v in dict(conf or {}).items()}
    merged = {**spec.defaults(), **raw}
    validator = jsonschema.Draft202012Validator(spec.schema(), format_checker=jsonschema.FormatChecker())
    problems = sorted((_describe(err) for err in validator.iter_errors(merged)), key=str)
    problems += _cross_field_problems(spec, merged)
    if problems:
        raise ConfError(f"invalid conf for {dag_id}: fix these keys and trigger again (nothing was changed)",
                        problems)
    return _normalize(spec, merged)


def _strip(value: Any) -> Any:
    """Strip strings and the strings of a list (pasted UPNs often carry spaces)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [v.strip() if isinstance(v, str) else v for v in value]
    return value


def _describe(err: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        where = f"{path}: " if path else ""
        allowed = ", ".join(err.schema.get("properties", {}))
        return f"{where}unknown key(s) {', '.join(map(repr, extra))}; allowed: {allowed}"
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    if err.validator == "pattern" and isinstance(err.instance, str):
        hint = {USER_REF_PATTERN: "a UPN (user@domain) or an object id (GUID)", UPN_PATTERN: "alias@verified-domain",
                GUID_PATTERN: "an object id (GUID)", MAIL_NICKNAME_PATTERN: "letters, digits and . - _ only"}
        what = hint.get(err.validator_value, f"matching {err.validator_value}")
        return f"{path or 'value'}: {err.instance!r} is not {what}"
    return f"{path or 'conf'}: {err.message}"


def _cross_field_problems(spec: ActionSpec, conf: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if spec.batchable:
        has_user, has_users = conf.get("user") is not None, conf.get("users") is not None
        if has_user == has_users:
            problems.append("give exactly one of 'user' (one UPN or id) and 'users' (a list)")
    if spec.dag_id == "msteams_offboard_user" and not any(conf.get(step) for step in OFFBOARD_STEPS):
        problems.append(f"every offboarding step is switched off ({', '.join(OFFBOARD_STEPS)}): nothing to do")
    for key in ("manager", "new_owner"):
        if isinstance(conf.get(key), str) and _same_ref(conf.get(key), conf.get("user")):
            problems.append(f"'{key}' cannot be the user themselves")
    if spec.dag_id == "msteams_create_user":
        local = str(conf.get("user_principal_name", "")).split("@", 1)[0]
        if local.startswith(".") or ".." in local or local.endswith("."):
            problems.append("user_principal_name: the alias cannot start or end with '.' or contain '..'")
    return problems


def _same_ref(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()


def _normalize(spec: ActionSpec, conf: dict[str, Any]) -> dict[str, Any]:
    out = dict(conf)
    if spec.batchable:
        refs = out.pop("users", None) or [out.get("user")]
        out.pop("user", None)
        out["users"] = _dedupe(refs)
    elif spec.dag_id == "msteams_bot_message_users":
        out["users"] = _dedupe(out["users"])
    if spec.dag_id == "msteams_restore_user":
        out["user"] = out["user"].lower()
    return out


def _dedupe(refs: list[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for ref in refs:
        ref = ref.strip()
        if ref.lower() not in seen:
            seen.add(ref.lower())
            unique.append(ref)
    return unique


def is_guid(value: str) -> bool:
    """True for an object id (GUID)."""
    return bool(re.match(GUID_PATTERN, value))

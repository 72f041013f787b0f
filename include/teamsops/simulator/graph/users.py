"""``/users`` routes: list, count, get, relationships (manager, directReports, memberOf, joinedTeams), the user's
Teams app installations, and the user writes (create, update, delete, manager ``$ref``, revokeSignInSessions).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from teamsops.simulator.graph import perms
from teamsops.simulator.graph.base import (
    DIRECTORY,
    Call,
    FilterRules,
    GraphFailure,
    Listing,
    check_options,
    count_requires_eventual,
    filter_option,
    json_response,
    no_content,
    not_found,
    orderby_option,
    page_response,
    search_option,
    select_context,
    select_option,
    top_option,
)
from teamsops.simulator.graph.schema import (
    USER_DEFAULT,
    USER_FILTERABLE,
    USER_NOT_IN_COLLECTIONS,
    USER_ORDERABLE,
    USER_PROPERTIES,
    USER_REQUIRED_ON_CREATE,
    USER_SEARCHABLE,
    USER_TYPE,
    USER_WRITABLE,
)
from teamsops.simulator.http import Headers, SimResponse
from teamsops.simulator.model import SENSITIVE_USER_PROPERTIES, RuleViolation, is_guid
from teamsops.simulator.odata import ADVANCED_OPERATORS, Filter, is_eventual, parse_expand, project, wants_count

DEFAULT_PAGE = 100  # user-list.md: 100 by default, $top up to 999 (500 with signInActivity)
MAX_PAGE = 999
MAX_PAGE_SIGN_IN_ACTIVITY = 500
USER_FILTER_RULES = FilterRules(USER_PROPERTIES, USER_FILTERABLE, "User", USER_TYPE)


# ------------------------------------------------------------------------------------------------ query options


def user_filter(call: Call) -> Filter | None:
    return filter_option(call, USER_FILTER_RULES)


def user_search(call: Call) -> Callable[[dict[str, Any]], bool] | None:
    return search_option(call, USER_SEARCHABLE)


def user_select(call: Call, collection: bool) -> list[str] | None:
    selected = select_option(call, USER_PROPERTIES, USER_TYPE)
    if collection and selected and USER_NOT_IN_COLLECTIONS & set(selected):
        raise GraphFailure(501, "NotImplemented", "This operation target is not yet supported.")
    return selected


def _needs_sign_in_activity(call: Call, selected: list[str] | None, flt: Filter | None) -> bool:
    uses = bool(selected and "signInActivity" in selected) or bool(
        flt and any(p.lower().startswith("signinactivity") for p in flt.properties)
    )
    if uses and "AuditLog.Read.All" not in call.ctx.roles:
        raise GraphFailure(
            403,
            "Authorization_RequestDenied",
            "Calling principal does not have required MSGraph permissions AuditLog.Read.All",
        )
    return uses


def user_expand(call: Call) -> str | None:
    names = parse_expand(call.query.get("$expand"))
    if not names:
        return None
    if len(names) > 1:
        raise GraphFailure(400, "Request_BadRequest", "Only one relationship can be expanded per request.")
    if names[0].lower() != "manager":
        raise GraphFailure(
            400, "Request_BadRequest", f"Could not find a property named '{names[0]}' on type '{USER_TYPE}'."
        )
    return "manager"


def user_item(
    call: Call, user: dict[str, Any], selected: list[str] | None, expand: str | None = None, typed: bool = False
) -> dict[str, Any]:
    """A user as Graph renders it: the $select projection (or the default set), optional ``@odata.type``."""
    item = project(user, selected or USER_DEFAULT)
    if typed:
        item = {"@odata.type": f"#{USER_TYPE}", **item}
    if expand == "manager":
        manager_id = call.tenant.manager_of.get(user["id"])
        if manager_id in call.tenant.users:
            item["manager"] = {"@odata.type": f"#{USER_TYPE}", **project(call.tenant.users[manager_id], USER_DEFAULT)}
    return item


# ------------------------------------------------------------------------------------------------ reads


def list_users(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$select", "$filter", "$top", "$count", "$orderby", "$expand", "$search"))
    selected, flt = user_select(call, True), user_filter(call)
    maximum = MAX_PAGE_SIGN_IN_ACTIVITY if _needs_sign_in_activity(call, selected, flt) else MAX_PAGE
    page_size = top_option(call, maximum, DEFAULT_PAGE)
    expand = user_expand(call)
    orderby = orderby_option(call, USER_PROPERTIES, USER_TYPE, USER_ORDERABLE)
    count_requires_eventual(call, flt, ADVANCED_OPERATORS, orderby=bool(orderby))
    users = call.tenant.users
    source = _ordered_ids(users, orderby)
    listing = Listing(
        source=source,
        full=users.get,
        render=lambda u: user_item(call, u, selected, expand),
        context=call.context_url(select_context("users", selected)),
        page_size=page_size,
        flt=flt,
        count=wants_count(call.query, call.req.headers),
        search=user_search(call),
    )
    return page_response(call, listing)


def _ordered_ids(users: dict[str, dict[str, Any]], orderby: list[tuple[str, bool]]) -> list[str]:
    ids = list(users)
    for name, descending in reversed(orderby):
        ids.sort(key=lambda uid: (users[uid].get(name) or "").lower(), reverse=descending)
    return ids


def count_users(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$filter", "$search"))
    if not is_eventual(call.req.headers):
        raise GraphFailure(400, "Request_BadRequest", "$count is not currently supported.")
    flt, search = user_filter(call), user_search(call)
    total = sum(
        1 for u in call.tenant.users.values() if (flt is None or flt.matches(u)) and (search is None or search(u))
    )
    return SimResponse(200, str(total), Headers({"Content-Type": "text/plain"}))


def get_user(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$select", "$expand"))
    selected = user_select(call, False)
    _needs_sign_in_activity(call, selected, None)
    user = call.user()
    body = {
        "@odata.context": call.context_url(select_context("users", selected, entity=True)),
        **user_item(call, user, selected, user_expand(call)),
    }
    return json_response(200, body)


def get_manager(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$select",))
    user = call.user()
    manager_id = call.tenant.manager_of.get(user["id"])
    if manager_id not in call.tenant.users:
        raise not_found("manager")
    selected = user_select(call, False)
    body = {
        "@odata.context": call.context_url("directoryObjects/$entity"),
        **user_item(call, call.tenant.users[manager_id], selected, typed=True),
    }
    return json_response(200, body)


def list_direct_reports(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$select", "$filter", "$top"))
    user = call.user()
    selected = user_select(call, True)
    users = call.tenant.users
    listing = Listing(
        source=list(call.tenant.reports_of.get(user["id"], {})),
        full=users.get,
        render=lambda u: user_item(call, u, selected, typed=True),
        context=call.context_url("directoryObjects"),
        page_size=top_option(call, MAX_PAGE, DEFAULT_PAGE),
        flt=user_filter(call),
    )
    return page_response(call, listing)


def list_joined_teams(call: Call) -> SimResponse:
    """Only id, displayName and description are returned (user-list-joinedteams.md); no paging, no OData options."""
    call.require(perms.JOINED_TEAMS)
    user = call.user()
    teams = call.tenant.teams
    value = [
        {"id": tid, "displayName": teams[tid]["displayName"], "description": teams[tid]["description"]}
        for tid in call.tenant.joined_team_ids(user["id"])
    ]
    return json_response(200, {"@odata.context": call.context_url("teams"), "value": value})


# ------------------------------------------------------------------------------------------------ writes


def _check_types(body: dict[str, Any], allowed: dict[str, str]) -> None:
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key not in allowed:
            if key in USER_PROPERTIES:
                raise GraphFailure(400, "Request_BadRequest", f"Property '{key}' is read-only and cannot be set.")
            raise GraphFailure(
                400,
                "BadRequest",
                f"Property '{key}' does not exist on type '{USER_TYPE}'. Make sure to only use property "
                "names that are defined by the type or mark the type as open type.",
            )
        if value is None:
            continue
        kind = allowed[key]
        ok = {
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "obj": isinstance(value, dict),
            "list": isinstance(value, list),
        }[kind]
        if not ok:
            edm = {
                "bool": "Edm.Boolean",
                "str": "Edm.String",
                "obj": "microsoft.graph.passwordProfile",
                "list": "Collection(Edm.String)",
            }[kind]
            raise GraphFailure(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm}'.")
    if "businessPhones" in body and body["businessPhones"] and len(body["businessPhones"]) > 1:
        raise GraphFailure(400, "Request_BadRequest", "Only one number can be set for the businessPhones property.")
    if body.get("usageLocation") and not re.fullmatch(r"[A-Za-z]{2}", body["usageLocation"]):
        raise GraphFailure(
            400, "Request_BadRequest", "Invalid value specified for property 'usageLocation' of resource 'User'."
        )
    if body.get("userType") not in (None, "Member", "Guest"):
        raise GraphFailure(
            400, "Request_BadRequest", "Invalid value specified for property 'userType' of resource 'User'."
        )


def create_user(call: Call) -> SimResponse:
    call.require(perms.USERS_WRITE)
    body = call.body()
    _check_types(body, USER_WRITABLE)
    for name in USER_REQUIRED_ON_CREATE:
        if body.get(name) in (None, ""):
            raise GraphFailure(
                400, "Request_BadRequest", f"Invalid value specified for property '{name}' of resource 'User'."
            )
    props = {k: v for k, v in body.items() if not k.startswith("@odata.")}
    with call.tenant.lock:
        user_id = _new_object_id(call)
        try:
            user = call.tenant.create_user(props, user_id, call.now)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, DIRECTORY) from None
        call.journal(201, user_id)
        item = user_item(call, user, None)
    return json_response(201, {"@odata.context": call.context_url("users/$entity"), **item})


def _new_object_id(call: Call) -> str:
    while True:
        candidate = str(uuid.uuid4())
        if candidate not in call.tenant.users and candidate not in call.tenant.deleted_users:
            return candidate


def update_user(call: Call) -> SimResponse:
    body = call.body()
    changes = {k: v for k, v in body.items() if not k.startswith("@odata.")}
    _require_update_permission(call, changes)
    _check_types(changes, USER_WRITABLE)
    with call.tenant.lock:
        user = call.user()
        _check_sensitive(call, user, changes)
        try:
            call.tenant.update_user(user["id"], changes, call.now)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, DIRECTORY) from None
        call.journal(204, user["id"])
    return no_content()


def _require_update_permission(call: Call, changes: dict[str, Any]) -> None:
    if set(changes) <= {"accountEnabled"}:
        call.require(perms.USERS_ENABLE)
    else:
        call.require(perms.USERS_WRITE)
    if "passwordProfile" in changes:
        call.require(perms.USERS_PASSWORD)


def _check_sensitive(call: Call, user: dict[str, Any], changes: dict[str, Any]) -> None:
    """Sensitive properties of a privileged-role holder need an app whose service principal holds Global
    Administrator or Privileged Authentication Administrator (Entra 'who can perform sensitive actions')."""
    sensitive = SENSITIVE_USER_PROPERTIES & set(changes) and call.tenant.holds_privileged_role(user["id"])
    if sensitive and not call.tenant.app_can_act_on_admins(call.ctx.app_id):
        raise GraphFailure(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def delete_user(call: Call) -> SimResponse:
    call.require(perms.USERS_DELETE)
    with call.tenant.lock:
        user = call.user()
        refuse_admin_target(call, user["id"])
        call.tenant.delete_user(user["id"], call.now)
        call.journal(204, user["id"])
    return no_content()


def refuse_admin_target(call: Call, user_id: str) -> None:
    """App-only callers cannot delete or restore users who hold admin roles (user-delete.md)."""
    if call.tenant.holds_admin_role(user_id) and not call.tenant.app_can_act_on_admins(call.ctx.app_id):
        raise GraphFailure(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


_REF_ID = re.compile(r"(?:users|directoryObjects)(?:/|\(')([^/'()?]+)'?\)?/?$", re.IGNORECASE)


def set_manager(call: Call) -> SimResponse:
    call.require(perms.USERS_WRITE)
    body = call.body()
    reference = body.get("@odata.id")
    match = _REF_ID.search(reference) if isinstance(reference, str) else None
    if match is None:
        raise GraphFailure(
            400,
            "Request_BadRequest",
            'The request body must be {"@odata.id": "https://graph.microsoft.com/v1.0/users/{manager-id}"}.',
        )
    manager_ref = match.group(1)
    with call.tenant.lock:
        user = call.user()
        if not is_guid(manager_ref) and "@" not in manager_ref:
            raise GraphFailure(400, "Request_BadRequest", f"Invalid object identifier '{manager_ref}'.")
        manager = call.tenant.resolve_user(manager_ref)
        if manager is None:
            raise not_found(manager_ref)
        try:
            call.tenant.set_manager(user["id"], manager["id"])
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, DIRECTORY) from None
        call.journal(204, user["id"])
    return no_content()


def remove_manager(call: Call) -> SimResponse:
    call.require(perms.USERS_WRITE)
    with call.tenant.lock:
        user = call.user()
        try:
            call.tenant.remove_manager(user["id"])
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, DIRECTORY) from None
        call.journal(204, user["id"])
    return no_content()


def revoke_sessions(call: Call) -> SimResponse:
    call.require(perms.USERS_REVOKE)
    with call.tenant.lock:
        user = call.user()
        call.tenant.revoke_sessions(user["id"], call.now)
        call.journal(200, user["id"])
    return json_response(200, {"@odata.context": call.context_url("Edm.Boolean"), "value": True})

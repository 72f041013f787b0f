"""Teams workload routes: ``/teams`` (list, get, members and member writes, channels, installed apps) and the
user-scope Teams app installations under ``/users/{id}/teamwork/installedApps``.

Errors here use the Teams codes (``NotFound``, ``Forbidden`` with "Missing role permissions...", ``BadRequest``),
not the directory's ``Request_*`` codes.
"""

from __future__ import annotations

import re
from typing import Any

from teamsops.simulator.graph import perms
from teamsops.simulator.graph.base import (
    TEAMS,
    Call,
    GraphFailure,
    Listing,
    check_options,
    filter_option,
    json_response,
    no_content,
    page_response,
    select_context,
    select_option,
    top_option,
)
from teamsops.simulator.graph.schema import (
    CHANNEL_PROPERTIES,
    MEMBER_PROPERTIES,
    TEAM_LIST_DEFAULT,
    TEAM_PROPERTIES,
)
from teamsops.simulator.http import SimResponse
from teamsops.simulator.model import RuleViolation, opaque_id, parse_opaque_id
from teamsops.simulator.odata import parse_expand, project

MEMBER_TYPE = "#microsoft.graph.aadUserConversationMember"
# GET /teams/{id}/members: team-list-members.md documents no page size. The roster is served from the group's
# membership, so the simulator pages it like group members at their maximum ($top up to 999): a team of more than
# 999 members always needs a second page, and clients must follow @odata.nextLink.
MEMBERS_PAGE = 999
TEAMS_PAGE = 100
_USER_BIND = re.compile(r"users(?:\('([^']+)'\)|/([^/?'()]+))/?$", re.IGNORECASE)
_APP_BIND = re.compile(r"appCatalogs/teamsApps(?:\('([^']+)'\)|/([^/?'()]+))/?$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ helpers


def _select(call: Call, schema: tuple[str, ...], type_name: str) -> list[str] | None:
    return select_option(call, schema, type_name, code="BadRequest")


def _top(call: Call, default: int) -> int:
    """Teams collections clamp an out-of-range ``$top`` to 1..999 instead of refusing it."""
    return top_option(call, 999, default, strict=False)


def member_item(call: Call, team_id: str, user_id: str) -> dict[str, Any]:
    user = call.tenant.users[user_id]
    return {
        "@odata.type": MEMBER_TYPE,
        "id": opaque_id(team_id, user_id),
        "roles": call.tenant.team_roles(team_id, user_id),
        "displayName": user.get("displayName"),
        "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
        "userId": user_id,
        "email": user.get("mail") or user.get("userPrincipalName"),
        "tenantId": call.tenant.id,
    }


def _membership(call: Call, team_id: str) -> str:
    """The user id behind a membership id of this team (404 NotFound otherwise)."""
    parts = parse_opaque_id(call.params["member"])
    if not parts or parts[0] != team_id or parts[1] not in call.tenant.team_member_ids(team_id):
        raise GraphFailure(
            404, "NotFound", f"The membership '{call.params['member']}' was not found in team {team_id}."
        )
    return parts[1]


# ------------------------------------------------------------------------------------------------ teams


def list_teams(call: Call) -> SimResponse:
    """``GET /teams``: id, displayName and description of every team."""
    call.require(perms.TEAMS_READ)
    check_options(call, ("$select", "$filter", "$top"))
    selected = _select(call, TEAM_PROPERTIES, "microsoft.graph.team")
    teams = call.tenant.teams
    listing = Listing(
        source=list(teams),
        full=teams.get,
        render=lambda t: project(t, selected or TEAM_LIST_DEFAULT),
        context=call.context_url(select_context("teams", selected)),
        page_size=_top(call, TEAMS_PAGE),
        flt=filter_option(call),
    )
    return page_response(call, listing)


def get_team(call: Call) -> SimResponse:
    call.require(perms.TEAMS_READ)
    check_options(call, ("$select",))
    team_id = call.team_id()
    team = call.tenant.teams[team_id]
    members = call.tenant.team_member_ids(team_id)
    guests = sum(1 for uid in members if call.tenant.users[uid].get("userType") == "Guest")
    full = {
        **team,
        "summary": {
            "ownersCount": len(call.tenant.group_owners.get(team_id, {})),
            "membersCount": len(members) - guests,
            "guestsCount": guests,
        },
    }
    selected = _select(call, TEAM_PROPERTIES, "microsoft.graph.team")
    item = project(full, selected) if selected else full
    return json_response(
        200, {"@odata.context": call.context_url(select_context("teams", selected, entity=True)), **item}
    )


# ------------------------------------------------------------------------------------------------ members


def list_team_members(call: Call) -> SimResponse:
    call.require(perms.TEAM_MEMBERS_READ)
    check_options(call, ("$select", "$filter", "$top"))
    team_id = call.team_id()
    selected = _select(call, MEMBER_PROPERTIES, "microsoft.graph.conversationMember")

    def render(member: dict[str, Any]) -> dict[str, Any]:
        return {"@odata.type": MEMBER_TYPE, **project(member, selected)} if selected else member

    listing = Listing(
        source=list(call.tenant.team_member_ids(team_id)),
        full=lambda uid: member_item(call, team_id, uid),
        render=render,
        context=call.context_url(f"teams('{team_id}')/members"),
        page_size=_top(call, MEMBERS_PAGE),
        flt=filter_option(call),
        count=True,
    )
    return page_response(call, listing)


def get_team_member(call: Call) -> SimResponse:
    call.require(perms.TEAM_MEMBERS_READ)
    check_options(call, ())
    team_id = call.team_id()
    user_id = _membership(call, team_id)
    body = {
        "@odata.context": call.context_url(f"teams('{team_id}')/members/$entity"),
        **member_item(call, team_id, user_id),
    }
    return json_response(200, body)


def _roles(body: dict[str, Any]) -> bool:
    """True for an owner. ``roles`` may be [] / ["member"] (member), ["owner"]; ``guest`` is implied, not settable."""
    roles = body.get("roles", [])
    if not isinstance(roles, list) or any(not isinstance(r, str) for r in roles):
        raise GraphFailure(
            400, "BadRequest", "The 'roles' property must be an array of strings, e.g. [] or [\"owner\"]."
        )
    lowered = {r.lower() for r in roles}
    if lowered - {"owner", "member", "guest"}:
        raise GraphFailure(
            400,
            "BadRequest",
            f"Invalid role(s) {sorted(lowered - {'owner', 'member', 'guest'})}: "
            'use [] for a member or ["owner"] for an owner.',
        )
    return "owner" in lowered


def _check_member_type(body: dict[str, Any]) -> None:
    if body.get("@odata.type", "").lower() != MEMBER_TYPE.lower():
        raise GraphFailure(
            400,
            "BadRequest",
            f'The request body must have "@odata.type": "{MEMBER_TYPE}" (only Microsoft Entra users '
            "can be added to a team).",
        )


def add_team_member(call: Call) -> SimResponse:
    """``POST /teams/{id}/members``: 201 + the conversationMember. Adding an existing member answers 201 again and
    applies the requested roles (observed Teams behaviour, microsoft-graph-docs#9303)."""
    call.require(perms.TEAM_MEMBERS_WRITE)
    body = call.body()
    _check_member_type(body)
    owner = _roles(body)
    bind = body.get("user@odata.bind")
    match = _USER_BIND.search(bind) if isinstance(bind, str) else None
    if match is None:
        raise GraphFailure(
            400,
            "BadRequest",
            'The request body must bind the user: "user@odata.bind": '
            "\"https://graph.microsoft.com/v1.0/users('{user-id or userPrincipalName}')\".",
        )
    ref = match.group(1) or match.group(2)
    with call.tenant.lock:
        team_id = call.team_id()
        user = call.tenant.resolve_user(ref)
        if user is None:
            raise GraphFailure(404, "NotFound", f"User '{ref}' was not found in the tenant.")
        try:
            call.tenant.add_team_member(team_id, user["id"], owner)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, TEAMS) from None
        call.journal(201, opaque_id(team_id, user["id"]))
        item = member_item(call, team_id, user["id"])
    return json_response(201, {"@odata.context": call.context_url(f"teams('{team_id}')/members/$entity"), **item})


def update_team_member(call: Call) -> SimResponse:
    """``PATCH /teams/{id}/members/{membership-id}`` with ``roles``: 200 + the updated member."""
    call.require(perms.TEAM_MEMBERS_WRITE)
    body = call.body()
    _check_member_type(body)
    owner = _roles(body)
    with call.tenant.lock:
        team_id = call.team_id()
        user_id = _membership(call, team_id)
        try:
            call.tenant.set_team_member_owner(team_id, user_id, owner)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, TEAMS) from None
        call.journal(200, call.params["member"])
        item = member_item(call, team_id, user_id)
    return json_response(200, {"@odata.context": call.context_url(f"teams('{team_id}')/members/$entity"), **item})


def remove_team_member(call: Call) -> SimResponse:
    call.require(perms.TEAM_MEMBERS_WRITE)
    with call.tenant.lock:
        team_id = call.team_id()
        user_id = _membership(call, team_id)
        try:
            call.tenant.remove_team_member(team_id, user_id)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, TEAMS) from None
        call.journal(204, call.params["member"])
    return no_content()


# ------------------------------------------------------------------------------------------------ channels


def _channel_item(call: Call, channel: dict[str, Any]) -> dict[str, Any]:
    """Shared channels read ``unknownFutureValue`` unless the caller opts in to newer enum members (evolvable enums)."""
    if channel["membershipType"] == "shared" and not call.prefer("include-unknown-enum-members"):
        return {**channel, "membershipType": "unknownFutureValue"}
    return channel


def list_channels(call: Call) -> SimResponse:
    call.require(perms.CHANNELS_READ)
    check_options(call, ("$select", "$filter"))
    team_id = call.team_id()
    selected = _select(call, CHANNEL_PROPERTIES, "microsoft.graph.channel")
    listing = Listing(
        source=call.tenant.channels.get(team_id, []),
        full=lambda c: _channel_item(call, c),
        render=lambda c: project(c, selected) if selected else c,
        context=call.context_url(f"teams('{team_id}')/channels"),
        page_size=1000,
        flt=filter_option(call),
    )
    return page_response(call, listing)


def get_channel(call: Call) -> SimResponse:
    call.require(perms.CHANNELS_READ)
    check_options(call, ())
    team_id = call.team_id()
    channel = next((c for c in call.tenant.channels.get(team_id, []) if c["id"] == call.params["channel"]), None)
    if channel is None:
        raise GraphFailure(404, "NotFound", f"Channel '{call.params['channel']}' was not found in team {team_id}.")
    body = {"@odata.context": call.context_url(f"teams('{team_id}')/channels/$entity"), **_channel_item(call, channel)}
    return json_response(200, body)


# ------------------------------------------------------------------------------------------------ installed apps


def _expansions(call: Call) -> set[str]:
    names = {n.lower() for n in parse_expand(call.query.get("$expand"))}
    unknown = names - {"teamsapp", "teamsappdefinition"}
    if unknown:
        raise GraphFailure(
            400,
            "BadRequest",
            f"Could not find a property named '{sorted(unknown)[0]}' on type 'microsoft.graph.teamsAppInstallation'.",
        )
    return names


def _installation(call: Call, target: str, app_id: str) -> dict[str, Any]:
    return {
        "id": opaque_id(target, app_id),
        "teamsApp": call.tenant.catalog[app_id],
        "teamsAppDefinition": call.tenant.app_definitions[app_id],
    }


def _render_installation(full: dict[str, Any], expand: set[str]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": full["id"]}
    if "teamsappdefinition" in expand:
        item["teamsAppDefinition"] = full["teamsAppDefinition"]
    if "teamsapp" in expand:
        item["teamsApp"] = full["teamsApp"]
    return item


def _list_installations(call: Call, scope: str, target: str, context: str) -> SimResponse:
    check_options(call, ("$filter", "$expand"))
    expand, flt = _expansions(call), filter_option(call)
    listing = Listing(
        source=list(call.tenant.installed_app_ids(scope, target)),
        full=lambda a: _installation(call, target, a),
        render=lambda f: _render_installation(f, expand),
        context=context,
        page_size=1000,
        flt=flt,
        count=flt is not None,  # userteamwork-list-installedapps.md: @odata.count comes with $filter
    )
    return page_response(call, listing)


def list_team_apps(call: Call) -> SimResponse:
    call.require(perms.TEAM_APPS_READ)
    team_id = call.team_id()
    return _list_installations(call, "team", team_id, call.context_url(f"teams('{team_id}')/installedApps"))


def list_user_apps(call: Call) -> SimResponse:
    call.require(perms.USER_APPS_READ)
    user = call.user()
    return _list_installations(
        call, "user", user["id"], call.context_url(f"users('{user['id']}')/teamwork/installedApps")
    )


def _user_installation(call: Call) -> tuple[dict[str, Any], str]:
    user = call.user()
    parts = parse_opaque_id(call.params["installation"])
    if not parts or parts[0] != user["id"] or parts[1] not in call.tenant.installed_app_ids("user", user["id"]):
        raise GraphFailure(404, "NotFound", f"The app installation '{call.params['installation']}' was not found.")
    return user, parts[1]


def get_user_app(call: Call) -> SimResponse:
    call.require(perms.USER_APPS_READ)
    check_options(call, ("$expand",))
    user, app_id = _user_installation(call)
    item = _render_installation(_installation(call, user["id"], app_id), _expansions(call))
    context = call.context_url(f"users('{user['id']}')/teamwork/installedApps/$entity")
    return json_response(200, {"@odata.context": context, **item})


def get_user_app_chat(call: Call) -> SimResponse:
    """The 1:1 chat between the user and the app's bot; its id doubles as the Bot Framework conversation id."""
    call.require(perms.USER_APP_CHAT)
    user, app_id = _user_installation(call)
    bot_app_id = call.tenant.app_definitions[app_id].get("azureADAppId")
    if not bot_app_id:
        raise GraphFailure(404, "NotFound", "The installed app has no bot, so there is no chat with it.")
    chat = {
        "@odata.context": call.context_url("chats/$entity"),
        "id": f"19:{user['id']}_{bot_app_id}@unq.gbl.spaces",
        "topic": None,
        "chatType": "oneOnOne",
        "tenantId": call.tenant.id,
        "webUrl": f"https://teams.microsoft.com/l/chat/19%3a{user['id']}_{bot_app_id}%40unq.gbl.spaces/0",
    }
    return json_response(200, chat)


def install_user_app(call: Call) -> SimResponse:
    """``POST /users/{id}/teamwork/installedApps``: 201 with an empty body; 409 when already installed."""
    body = call.body()
    bind = body.get("teamsApp@odata.bind")
    match = _APP_BIND.search(bind) if isinstance(bind, str) else None
    if match is None:
        raise GraphFailure(
            400,
            "BadRequest",
            'The request body must bind the app: "teamsApp@odata.bind": '
            '"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{teams-app-id}".',
        )
    app_id = match.group(1) or match.group(2)
    _require_install_permission(call, app_id)
    with call.tenant.lock:
        user = call.user()
        if app_id not in call.tenant.catalog:
            raise GraphFailure(404, "NotFound", f"The Teams app '{app_id}' was not found in the app catalog.")
        try:
            call.tenant.install_app("user", user["id"], app_id)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, TEAMS) from None
        call.journal(201, opaque_id(user["id"], app_id))
    return SimResponse(201, None)


def _require_install_permission(call: Call, app_id: str) -> None:
    """ReadWriteSelfForUser lets an app install only itself (its own Teams app, whose bot is the caller)."""
    own = call.tenant.app_definitions.get(app_id, {}).get("azureADAppId") == call.ctx.app_id
    allowed = perms.USER_APPS_WRITE + ((perms.USER_APPS_WRITE_SELF,) if own else ())
    call.require(allowed)


def uninstall_user_app(call: Call) -> SimResponse:
    with call.tenant.lock:
        user, app_id = _user_installation(call)
        _require_install_permission(call, app_id)
        call.tenant.uninstall_app("user", user["id"], app_id)
        call.journal(204, call.params["installation"])
    return no_content()

"""The Graph v1.0 route table (like moto's ``urls.py``) and path matching.

Paths are matched segment by segment, case-insensitively for literal segments; ``{name}`` captures a segment.
OData key syntax (``users('id')``) and function parentheses (``delta()``) are normalised first. A path whose
segment Graph would not recognise answers 400 ``BadRequest`` "Resource not found for the segment '...'"; a known
path with another method answers 405; a known resource path the simulator does not serve answers 501.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from teamsops.simulator.graph import delta, directory, groups, teams, users
from teamsops.simulator.graph.base import DIRECTORY, TEAMS, Call, GraphFailure
from teamsops.simulator.http import SimResponse

Handler = Callable[[Call], SimResponse]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]
    handler: Handler
    workload: str = DIRECTORY


def _r(method: str, path: str, handler: Handler, workload: str = DIRECTORY) -> Route:
    return Route(method, tuple(path.strip("/").split("/")), handler, workload)


ROUTES: tuple[Route, ...] = (
    # users
    _r("GET", "users", users.list_users),
    _r("POST", "users", users.create_user),
    _r("GET", "users/$count", users.count_users),
    _r("GET", "users/delta", delta.users_delta),
    _r("GET", "users/{user}", users.get_user),
    _r("PATCH", "users/{user}", users.update_user),
    _r("DELETE", "users/{user}", users.delete_user),
    _r("GET", "users/{user}/manager", users.get_manager),
    _r("PUT", "users/{user}/manager/$ref", users.set_manager),
    _r("DELETE", "users/{user}/manager/$ref", users.remove_manager),
    _r("GET", "users/{user}/directReports", users.list_direct_reports),
    _r("GET", "users/{user}/memberOf", groups.list_member_of),
    _r("POST", "users/{user}/revokeSignInSessions", users.revoke_sessions),
    _r("GET", "users/{user}/joinedTeams", users.list_joined_teams, TEAMS),
    _r("GET", "users/{user}/teamwork/installedApps", teams.list_user_apps, TEAMS),
    _r("POST", "users/{user}/teamwork/installedApps", teams.install_user_app, TEAMS),
    _r("GET", "users/{user}/teamwork/installedApps/{installation}", teams.get_user_app, TEAMS),
    _r("DELETE", "users/{user}/teamwork/installedApps/{installation}", teams.uninstall_user_app, TEAMS),
    _r("GET", "users/{user}/teamwork/installedApps/{installation}/chat", teams.get_user_app_chat, TEAMS),
    # groups
    _r("GET", "groups", groups.list_groups),
    _r("GET", "groups/delta", delta.groups_delta),
    _r("GET", "groups/{group}", groups.get_group),
    _r("GET", "groups/{group}/members", groups.list_members),
    _r("GET", "groups/{group}/members/microsoft.graph.user", groups.list_user_members),
    _r("GET", "groups/{group}/owners", groups.list_owners),
    # teams
    _r("GET", "teams", teams.list_teams, TEAMS),
    _r("GET", "teams/{team}", teams.get_team, TEAMS),
    _r("GET", "teams/{team}/members", teams.list_team_members, TEAMS),
    _r("POST", "teams/{team}/members", teams.add_team_member, TEAMS),
    _r("GET", "teams/{team}/members/{member}", teams.get_team_member, TEAMS),
    _r("PATCH", "teams/{team}/members/{member}", teams.update_team_member, TEAMS),
    _r("DELETE", "teams/{team}/members/{member}", teams.remove_team_member, TEAMS),
    _r("GET", "teams/{team}/channels", teams.list_channels, TEAMS),
    _r("GET", "teams/{team}/channels/{channel}", teams.get_channel, TEAMS),
    _r("GET", "teams/{team}/installedApps", teams.list_team_apps, TEAMS),
    _r("GET", "appCatalogs/teamsApps", directory.list_catalog_apps, TEAMS),
    # directory
    _r("GET", "organization", directory.list_organization),
    _r("GET", "organization/{org}", directory.get_organization),
    _r("GET", "subscribedSkus", directory.list_skus),
    _r("GET", "subscribedSkus/{sku}", directory.get_sku),
    _r("GET", "roleManagement/directory/roleDefinitions", directory.list_role_definitions),
    _r("GET", "roleManagement/directory/roleDefinitions/{role}", directory.get_role_definition),
    _r("GET", "roleManagement/directory/roleAssignments", directory.list_role_assignments),
    _r("GET", "directory/deletedItems/microsoft.graph.user", directory.list_deleted_users),
    _r("GET", "directory/deletedItems/{item}", directory.get_deleted_item),
    _r("DELETE", "directory/deletedItems/{item}", directory.purge_deleted_item),
    _r("POST", "directory/deletedItems/{item}/restore", directory.restore_deleted_item),
)

# Resource names Graph knows (first segments) although the simulator serves nothing under them.
_KNOWN_ROOTS = {
    "me",
    "applications",
    "serviceprincipals",
    "devices",
    "drives",
    "sites",
    "chats",
    "directoryroles",
    "domains",
    "identity",
    "auditlogs",
    "reports",
    "security",
    "solutions",
    "planner",
    "education",
    "communications",
    "admin",
    "contacts",
    "invitations",
    "policies",
    "subscriptions",
    "directoryobjects",
    "places",
    "print",
    "search",
    "storage",
    "external",
    "employeeexperience",
    "agreements",
    "informationprotection",
    "devicemanagement",
    "deviceappmanagement",
    "teamwork",
    "compliance",
    "approleassignments",
    "grouplifecyclepolicies",
    "oauth2permissiongrants",
    "rolemanagement",
    "appcatalogs",
    "directory",
    "organization",
    "subscribedskus",
    "users",
    "groups",
    "teams",
}
# Navigation properties and actions Graph has under the served resources, but the simulator does not serve.
_KNOWN_NAVIGATIONS = {
    "licensedetails",
    "photo",
    "photos",
    "transitivememberof",
    "ownedobjects",
    "owneddevices",
    "registereddevices",
    "calendar",
    "calendars",
    "events",
    "messages",
    "mailfolders",
    "drive",
    "drives",
    "onenote",
    "planner",
    "presence",
    "authentication",
    "extensions",
    "settings",
    "outlook",
    "chats",
    "approleassignments",
    "transitivemembers",
    "team",
    "sites",
    "conversations",
    "threads",
    "tabs",
    "schedule",
    "primarychannel",
    "allchannels",
    "incomingchannels",
    "operations",
    "permissiongrants",
    "tags",
    "template",
    "archive",
    "unarchive",
    "clone",
    "sendactivitynotification",
    "checkmembergroups",
    "getmembergroups",
    "getmemberobjects",
    "assignlicense",
    "changepassword",
    "directoryroles",
    "directoryobjects",
    "administrativeunits",
    "onpremisessynchronization",
    "deviceLocalCredentials".lower(),
    "$value",
    "$ref",
    "$count",
    "delta",
    "upgrade",
    "teamsappdefinition",
    "teamsapp",
    "roleeligibilityschedules",
    "roleassignmentschedules",
    "transitiverolesassignments",
    "entitlementmanagement",
    "employeeexperience",
    "teamwork",
}
_KEY_SEGMENT = re.compile(r"^([^()]+)\('([^']*)'\)$")


def split_path(path: str) -> list[str]:
    """``/v1.0/users('x')/delta()`` -> ``['users', 'x', 'delta']``."""
    segments: list[str] = []
    for segment in path.split("/")[2:]:
        if not segment:
            continue
        key = _KEY_SEGMENT.match(segment)
        if key:
            segments.extend([key.group(1), key.group(2)])
        elif segment.endswith("()"):
            segments.append(segment[:-2])
        else:
            segments.append(segment)
    return segments


def _segment_matches(pattern: str, segment: str) -> bool:
    return pattern.startswith("{") or pattern.lower() == segment.lower()


def _literal_score(route: Route) -> int:
    return sum(1 for p in route.pattern if not p.startswith("{"))


def match(method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
    """The route for a request, with its captured parameters; raises GraphFailure 400 / 405 / 501."""
    if not segments:
        raise GraphFailure(400, "BadRequest", "Invalid request: the URL must name a resource after /v1.0/.")
    candidates = [
        r
        for r in ROUTES
        if len(r.pattern) == len(segments)
        and all(_segment_matches(p, s) for p, s in zip(r.pattern, segments, strict=True))
    ]
    for_method = [r for r in candidates if r.method == method]
    if for_method:
        route = max(for_method, key=_literal_score)  # "users/delta" beats "users/{user}"
        params = {p[1:-1]: s for p, s in zip(route.pattern, segments, strict=True) if p.startswith("{")}
        return route, params
    if candidates:
        raise GraphFailure(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
    raise _unmatched(segments)


def _unmatched(segments: list[str]) -> GraphFailure:
    """400 naming the first segment Graph would not recognise, or 501 for a real Graph path the simulator does not
    serve (so a typo reads like Graph's error, and a missing feature says so)."""
    if segments[0].lower() == "me":  # app-only tokens have no signed-in user
        return GraphFailure(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    if segments[0].lower() not in _KNOWN_ROOTS:
        return GraphFailure(400, "BadRequest", f"Resource not found for the segment '{segments[0]}'.")
    for depth in range(1, len(segments) + 1):
        known = any(
            len(r.pattern) >= depth
            and all(_segment_matches(p, s) for p, s in zip(r.pattern[:depth], segments[:depth], strict=True))
            for r in ROUTES
        )
        if known:
            continue
        segment = segments[depth - 1]
        if depth == 1 or segment.lower() in _KNOWN_NAVIGATIONS:
            return GraphFailure(
                501,
                "NotImplemented",
                f"This operation target is not yet supported: the simulator does not serve "
                f"'/{'/'.join(segments[:depth])}'.",
            )
        return GraphFailure(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    return GraphFailure(501, "NotImplemented", "This operation target is not yet supported.")

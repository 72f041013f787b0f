"""Microsoft Graph application permissions this project needs, what each is for, and which endpoint needs what.

* :data:`SYNC_PERMISSIONS` - read permissions of the sync DAGs (``access="read"``).
* :data:`ACTION_PERMISSIONS` - additional write permissions of the action DAGs (``access="read_write"``).
* :func:`missing_permissions` - names of required permissions a token's ``roles`` do not satisfy. A broader
  permission counts for a narrower one (``User.ReadWrite.All`` satisfies ``User.Read.All``; ``Directory.Read.All``
  satisfies the directory reads), as Graph's permission tables list them for each endpoint.
* :func:`required_permissions` - for a 403, the permissions (any one of them) an endpoint accepts, least privileged
  first, from the endpoint tables in graph-facts §6/§7 (microsoft-graph-docs ``api-reference/v1.0/api/*``).

Not offered by this project (on purpose):

* changing passwords needs ``User-PasswordProfile.ReadWrite.All`` (a highly privileged permission);
* sending messages *as a signed-in user* needs delegated authentication; this project is app-only
  (client credentials) and messages users through the bot instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "ACTION_PERMISSIONS",
    "GRANT_HINT",
    "PERMISSION_PURPOSES",
    "SYNC_PERMISSIONS",
    "missing_permissions",
    "parse_teams_required",
    "required_permissions",
    "satisfied_by",
]

GRANT_HINT = ("Entra admin center > App registrations > <app> > API permissions > Add a permission > Microsoft Graph > "
              "Application permissions, then Grant admin consent")

SYNC_PERMISSIONS: tuple[str, ...] = (
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "TeamMember.Read.All",
    "Channel.ReadBasic.All",
    "Organization.Read.All",
    "TeamsAppInstallation.ReadForUser.All",
    "RoleManagement.Read.Directory",
)

ACTION_PERMISSIONS: tuple[str, ...] = (
    "User.ReadWrite.All",
    "TeamMember.ReadWrite.All",
    "User.RevokeSessions.All",
)

PERMISSION_PURPOSES: dict[str, str] = {
    "User.Read.All": "read users (profiles, licences assigned, manager, account state) and users delta",
    "Group.Read.All": "read groups and teams-enabled groups, groups delta",
    "GroupMember.Read.All": "read group members and owners",
    "TeamMember.Read.All": "read team members and their roles (owner / member / guest)",
    "Channel.ReadBasic.All": "read the channels of each team",
    "Organization.Read.All": "read the organization and its subscribed SKUs (licence inventory)",
    "TeamsAppInstallation.ReadForUser.All": "read the Teams apps installed for each user (is the bot installed?)",
    "RoleManagement.Read.Directory": "read directory role definitions and assignments (who is an admin)",
    "User.ReadWrite.All": "disable / enable users, set managers, restore deleted users",
    "TeamMember.ReadWrite.All": "add and remove team members, change member roles",
    "User.RevokeSessions.All": "revoke a user's sign-in sessions (revokeSignInSessions)",
}

# Broader permissions that Graph accepts wherever the narrower one is accepted (for the endpoints this project uses).
_SATISFIED_BY: dict[str, tuple[str, ...]] = {
    "User.Read.All": ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "Group.Read.All": ("Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "GroupMember.Read.All": ("GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
                             "Directory.Read.All", "Directory.ReadWrite.All"),
    "TeamMember.Read.All": ("TeamMember.ReadWrite.All",),
    "Channel.ReadBasic.All": ("ChannelSettings.Read.All", "ChannelSettings.ReadWrite.All", "Group.Read.All",
                              "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "Organization.Read.All": ("Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "TeamsAppInstallation.ReadForUser.All": ("TeamsAppInstallation.ReadWriteForUser.All",),
    "RoleManagement.Read.Directory": ("RoleManagement.Read.All", "RoleManagement.ReadWrite.Directory",
                                      "Directory.Read.All", "Directory.ReadWrite.All"),
    "User.ReadWrite.All": ("Directory.ReadWrite.All",),
    "TeamMember.ReadWrite.All": (),
    "User.RevokeSessions.All": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
}


def satisfied_by(permission: str) -> tuple[str, ...]:
    """The permission itself and the broader ones that satisfy it."""
    return (permission, *_SATISFIED_BY.get(permission, ()))


def missing_permissions(roles: Iterable[str], access: str) -> list[str]:
    """Required permissions (sync; plus actions when ``access == "read_write"``) that ``roles`` do not satisfy.

    :param roles: the ``roles`` claim of an app-only token (see ``GraphClient.token_roles``).
    :param access: the connection's access mode, ``"read"`` or ``"read_write"``.
    """
    granted = {role.lower() for role in roles}
    needed = SYNC_PERMISSIONS + (ACTION_PERMISSIONS if access == "read_write" else ())
    return [perm for perm in needed if not any(alt.lower() in granted for alt in satisfied_by(perm))]


# (methods, path regex relative to /v1.0, permissions any one of which is accepted, least privileged first).
# Order matters: the first match wins, so specific patterns come before generic ones.
_ID = r"[^/]+"
_ENDPOINTS: tuple[tuple[frozenset[str], re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (frozenset(methods.split()), re.compile(f"^{pattern}$", re.IGNORECASE), perms)
    for methods, pattern, perms in (
        ("POST", rf"/users/{_ID}/revokeSignInSessions", ("User.RevokeSessions.All", "User.ReadWrite.All",
                                                         "Directory.ReadWrite.All")),
        ("GET", rf"/users/{_ID}/joinedTeams", ("Team.ReadBasic.All", "TeamSettings.Read.All", "User.Read.All",
                                              "Directory.Read.All")),
        ("GET", rf"/users/{_ID}/teamwork/installedApps(/.*)?", ("TeamsAppInstallation.ReadForUser.All",
                                                               "TeamsAppInstallation.ReadWriteForUser.All")),
        ("POST PATCH DELETE", rf"/users/{_ID}/teamwork/installedApps(/.*)?",
         ("TeamsAppInstallation.ReadWriteForUser.All",)),
        ("GET", rf"/users/{_ID}/licenseDetails", ("User.Read.All", "Directory.Read.All")),
        ("GET", r"/users(/delta)?|/users/\$count", ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All")),
        ("GET", rf"/users/{_ID}(/(manager|directReports|memberOf|transitiveMemberOf))?(/.*)?",
         ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All")),
        ("PATCH", rf"/users/{_ID}", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
        ("POST PUT PATCH DELETE", r"/users(/.*)?", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
        ("GET", r"/directory/deletedItems(/.*)?", ("User.Read.All", "Directory.Read.All")),
        ("POST", rf"/directory/deletedItems/{_ID}/restore", ("User.ReadWrite.All", "Directory.ReadWrite.All")),
        ("GET", rf"/groups/{_ID}/(members|owners|transitiveMembers)(/.*)?",
         ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")),
        ("GET", r"/groups(/.*)?", ("Group.Read.All", "Directory.Read.All")),
        ("GET", rf"/teams/{_ID}/members(/.*)?", ("TeamMember.Read.All", "TeamMember.ReadWrite.All")),
        ("POST PATCH DELETE", rf"/teams/{_ID}/members(/.*)?", ("TeamMember.ReadWrite.All",)),
        ("GET", rf"/teams/{_ID}/channels(/.*)?", ("Channel.ReadBasic.All", "ChannelSettings.Read.All")),
        ("GET", rf"/teams/{_ID}/installedApps(/.*)?", ("TeamsAppInstallation.ReadForTeam.All",)),
        ("GET", r"/teams(/[^/]+)?", ("Team.ReadBasic.All", "TeamSettings.Read.All")),
        ("GET", r"/subscribedSkus(/.*)?|/organization(/.*)?", ("Organization.Read.All", "Directory.Read.All")),
        ("GET", r"/roleManagement/directory/.*|/directoryRoles(/.*)?|/directoryRoles\(.*",
         ("RoleManagement.Read.Directory", "RoleManagement.Read.All", "Directory.Read.All")),
    )
)

_TEAMS_REQUIRES_RE = re.compile(r"API requires one of '([^']*)'", re.IGNORECASE)


def required_permissions(method: str, path: str) -> tuple[str, ...]:
    """Permissions (any one of them) the endpoint accepts, least privileged first; ``()`` when not known.

    :param path: the path relative to ``/v1.0`` (query string allowed, it is ignored).
    """
    bare = path.split("?", 1)[0].rstrip("/") or "/"
    for methods, pattern, perms in _ENDPOINTS:
        if method.upper() in methods and pattern.match(bare):
            return perms
    return ()


def parse_teams_required(message: str) -> tuple[str, ...]:
    """Parse Teams' 403 text "Missing role permissions on the request. API requires one of 'X, Y'. ..."."""
    match = _TEAMS_REQUIRES_RE.search(message or "")
    if not match:
        return ()
    return tuple(part.strip() for part in match.group(1).split(",") if part.strip())

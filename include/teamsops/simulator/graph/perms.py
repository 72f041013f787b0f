"""Application permissions each Graph route accepts (least privileged first), from the "Permissions" tables of the
v1.0 API pages (graph-facts §6/§7). A token needs any one of them; otherwise the route answers 403.

Legacy broad permissions that Graph still honours for backward compatibility (e.g. ``Group.Read.All`` on team and
channel reads) are included, as on the real service.
"""

from __future__ import annotations

_DIR_READ = ("Directory.Read.All", "Directory.ReadWrite.All")
_GROUP_LEGACY = ("Group.Read.All", "Group.ReadWrite.All", *_DIR_READ)

USERS_READ = ("User.Read.All", "User.ReadWrite.All", *_DIR_READ)
USERS_WRITE = ("User.ReadWrite.All", "Directory.ReadWrite.All")
USERS_ENABLE = ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
# passwordProfile updates (user-update.md): delegated Directory.AccessAsUser.All or, newer, this application role.
USERS_PASSWORD = ("User-PasswordProfile.ReadWrite.All", "Directory.AccessAsUser.All")
# Directory.ReadWrite.All does not allow deleting users (permissions reference); User.DeleteRestore.All is the least.
USERS_DELETE = ("User.DeleteRestore.All", "User.ReadWrite.All")
USERS_REVOKE = ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
USERS_MEMBER_OF = (
    "GroupMember.Read.All",
    "User.Read.All",
    "Group.Read.All",
    "User.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "Group.ReadWrite.All",
    *_DIR_READ,
)
SIGN_IN_ACTIVITY = "AuditLog.Read.All"

GROUPS_READ = ("GroupMember.Read.All", "Group.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All", *_DIR_READ)

TEAMS_READ = ("Team.ReadBasic.All", "TeamSettings.Read.All", "TeamSettings.ReadWrite.All", *_GROUP_LEGACY)
JOINED_TEAMS = (
    "Team.ReadBasic.All",
    "TeamSettings.Read.All",
    "TeamSettings.ReadWrite.All",
    "User.Read.All",
    "User.ReadWrite.All",
    *_DIR_READ,
)
TEAM_MEMBERS_READ = ("TeamMember.Read.All", "TeamMember.ReadWrite.All")
TEAM_MEMBERS_WRITE = ("TeamMember.ReadWrite.All",)
CHANNELS_READ = ("Channel.ReadBasic.All", "ChannelSettings.Read.All", "ChannelSettings.ReadWrite.All", *_GROUP_LEGACY)

USER_APPS_READ = (
    "TeamsAppInstallation.ReadForUser.All",
    "TeamsAppInstallation.ReadWriteSelfForUser.All",
    "TeamsAppInstallation.ReadWriteForUser.All",
)
USER_APPS_WRITE = ("TeamsAppInstallation.ReadWriteForUser.All",)
USER_APPS_WRITE_SELF = "TeamsAppInstallation.ReadWriteSelfForUser.All"  # only for the caller's own Teams app
USER_APP_CHAT = (*USER_APPS_READ, "Chat.ReadBasic.All", "Chat.Read.All", "Chat.ReadWrite.All")
TEAM_APPS_READ = (
    "TeamsAppInstallation.ReadForTeam.All",
    "TeamsAppInstallation.ReadWriteSelfForTeam.All",
    "TeamsAppInstallation.ReadWriteForTeam.All",
    *_GROUP_LEGACY,
)
CATALOG_READ = ("AppCatalog.Read.All", "AppCatalog.ReadWrite.All", *_DIR_READ)

ORGANIZATION_READ = ("Organization.Read.All", "Organization.ReadWrite.All", *_DIR_READ)
ROLES_READ = (
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
    *_DIR_READ,
)

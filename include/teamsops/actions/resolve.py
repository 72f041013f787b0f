"""Resolve the objects a run conf names: users (UPN or object id), teams (id or exact display name), channels,
and soft-deleted users. Every lookup failure becomes a :class:`NotFoundError` / :class:`AmbiguousError` naming what
was not found, with what to do; a batch reports all its unknown users at once.

Lookups use the documented addressing: ``/users/{id | userPrincipalName}`` (percent-encoded, so guest UPNs with
``#EXT#`` work; a UPN starting with ``$`` uses the key syntax ``users('$...')``), ``/teams/{id}``,
``/teams?$filter=displayName eq '...'`` and ``/directory/deletedItems/{id}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from teamsops.actions.conf import is_guid
from teamsops.actions.errors import AmbiguousError, NotFoundError
from teamsops.actions.safeguards import user_label
from teamsops.graph import GraphClient, GraphNotFound

__all__ = [
    "USER_SELECT",
    "find_deleted_user",
    "label",
    "odata_string",
    "resolve_channel",
    "resolve_team",
    "resolve_user",
    "resolve_users",
    "user_path",
]

log = logging.getLogger(__name__)

USER_SELECT = "id,displayName,userPrincipalName,accountEnabled,userType,mail"


def user_path(ref: str) -> str:
    """The Graph path of a user addressed by object id or UPN."""
    if ref.startswith("$"):  # user-get.md: UPNs beginning with $ need the key syntax
        return f"/users('{quote(ref.replace(chr(39), chr(39) * 2), safe='@$')}')"
    return f"/users/{quote(ref, safe='@')}"


def odata_string(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def resolve_user(client: GraphClient, ref: str, *, role: str = "user") -> dict[str, Any]:
    """Look a user up by UPN or object id.

    :param role: how the conf calls this user (``user``, ``manager``, ``new_owner``), for the message.
    :raises NotFoundError: no such user.
    """
    found, missing = _lookup(client, [ref])
    if missing:
        raise NotFoundError(f"{role} {ref!r} was not found in the tenant (nothing was changed)", [_advice(ref)])
    return found[0]


def resolve_users(client: GraphClient, refs: Iterable[str], *, role: str = "user") -> list[dict[str, Any]]:
    """Look up several users; report every unknown one in one error. Duplicates (same object) are dropped."""
    found, missing = _lookup(client, list(refs))
    if missing:
        raise NotFoundError(f"{len(missing)} {role}(s) not found in the tenant (nothing was changed)",
                            [f"{ref!r}: {_advice(ref)}" for ref in missing])
    unique: dict[str, dict[str, Any]] = {}
    for user in found:
        unique.setdefault(user["id"], user)
    return list(unique.values())


def _lookup(client: GraphClient, refs: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    found, missing = [], []
    for ref in refs:
        try:
            found.append(client.get(user_path(ref), params={"$select": USER_SELECT}))
        except GraphNotFound:
            missing.append(ref)
    return found, missing


def _advice(ref: str) -> str:
    if is_guid(ref):
        return ("no user has this object id (a deleted user is in Entra > Deleted users: use msteams_restore_user "
                "with the object id)")
    return "check the spelling of the UPN (a renamed user keeps the object id: use it instead)"


def resolve_team(client: GraphClient, ref: str) -> dict[str, Any]:
    """A team by id (``GET /teams/{id}``) or exact display name (``GET /teams?$filter=displayName eq ...``).

    :raises NotFoundError: no such team (a group id without a team counts as not found).
    :raises AmbiguousError: the name matches several teams; the candidates (id and name) are listed.
    """
    if is_guid(ref):
        try:
            team = client.get(f"/teams/{ref}", params={"$select": "id,displayName,isArchived"})
        except GraphNotFound:
            raise NotFoundError(f"team {ref!r} was not found (nothing was changed)",
                                ["no team has this id; a Microsoft 365 group without a team is not a team"]) from None
        return {"id": team["id"], "displayName": team.get("displayName"), "isArchived": team.get("isArchived")}
    candidates = list(client.paginate("/teams", params={"$filter": f"displayName eq {odata_string(ref)}",
                                                         "$select": "id,displayName"}))
    exact = [t for t in candidates if t.get("displayName") == ref]
    if len(exact) == 1:
        return {"id": exact[0]["id"], "displayName": exact[0]["displayName"]}
    if len(exact) > 1:
        raise AmbiguousError(f"team name {ref!r} matches {len(exact)} teams: use the team id instead",
                             [f"{t['id']}  {t['displayName']}" for t in exact])
    hint = ([f"did you mean {t['displayName']!r} ({t['id']})?" for t in candidates]
            or ["no team has this display name; names must match exactly (or use the team id)"])
    raise NotFoundError(f"team {ref!r} was not found (nothing was changed)", hint)


def resolve_channel(client: GraphClient, team: dict[str, Any], ref: str) -> dict[str, Any]:
    """A channel of a team by id (``19:...``) or exact display name.

    :raises NotFoundError: / :raises AmbiguousError: as for teams.
    """
    channels = list(client.paginate(f"/teams/{team['id']}/channels",
                                    params={"$select": "id,displayName,membershipType"}))
    matches = [c for c in channels if c.get("id") == ref] or [c for c in channels if c.get("displayName") == ref]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AmbiguousError(f"channel name {ref!r} matches {len(matches)} channels in {team['displayName']!r}: "
                             "use the channel id", [f"{c['id']}  {c['displayName']}" for c in matches])
    raise NotFoundError(f"channel {ref!r} was not found in team {team.get('displayName')!r} (nothing was changed)",
                        [f"channels: {', '.join(repr(c.get('displayName')) for c in channels)}"])


def find_deleted_user(client: GraphClient, user_id: str) -> dict[str, Any] | None:
    """A soft-deleted user from ``/directory/deletedItems/{id}`` (None when not there)."""
    try:
        return client.get(f"/directory/deletedItems/{user_id}",
                          params={"$select": USER_SELECT + ",deletedDateTime"})
    except GraphNotFound:
        return None


def label(user: dict[str, Any]) -> str:
    """``Display Name <upn>`` of a resolved user (as plans and messages show it)."""
    return user_label(user)

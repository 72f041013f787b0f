"""Turning Graph JSON into table rows: timestamps, JSON text columns, and the rows of each table.

Every ``*_row`` function returns a dict with exactly the table's columns (see :mod:`teamsops.sync.tables`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["json_text", "parse_timestamp", "team_visibility"]

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(value: Any) -> datetime | None:
    """Graph's ``2021-03-04T10:12:00Z`` / ``...:00.1234567Z`` as an aware UTC datetime (None stays None).

    Graph sends up to 7 fractional digits; Python parses at most 6, so the rest is cut (sub-microsecond)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6], str(value)).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def json_text(value: Any) -> str | None:
    """Nested Graph values as compact JSON text with sorted keys (None stays None)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def team_visibility(group_visibility: str | None) -> str | None:
    """A group's ``Private`` / ``Public`` / ``HiddenMembership`` in the team resource's casing (teamVisibilityType:
    ``private`` / ``public`` / ``hiddenMembership``), so the teams table reads like ``GET /teams/{id}``."""
    if not group_visibility:
        return group_visibility
    return group_visibility[0].lower() + group_visibility[1:]


def organization_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("id"),
        "displayName": item.get("displayName"),
        "verifiedDomains": json_text(item.get("verifiedDomains")),
        "countryLetterCode": item.get("countryLetterCode"),
        "tenantType": item.get("tenantType"),
        "createdDateTime": parse_timestamp(item.get("createdDateTime")),
        "onPremisesSyncEnabled": item.get("onPremisesSyncEnabled"),
        "technicalNotificationMails": json_text(item.get("technicalNotificationMails")),
    }


def sku_row(item: dict[str, Any]) -> dict[str, Any]:
    units = item.get("prepaidUnits") or {}
    return {
        "sku_id": item.get("skuId"),
        "sku_part_number": item.get("skuPartNumber"),
        "consumed_units": item.get("consumedUnits"),
        "enabled_units": units.get("enabled"),
        "suspended_units": units.get("suspended"),
        "warning_units": units.get("warning"),
        "locked_out_units": units.get("lockedOut"),
        "capability_status": item.get("capabilityStatus"),
        "applies_to": item.get("appliesTo"),
        "id": item.get("id"),
    }


def role_definition_row(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item.get(key) for key in ("id", "displayName", "description", "isBuiltIn", "isEnabled", "templateId")}


def role_assignment_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("id"),
        "principal_id": item.get("principalId"),
        "role_definition_id": item.get("roleDefinitionId"),
        "directory_scope_id": item.get("directoryScopeId"),
    }


def member_row(team_id: str, item: dict[str, Any]) -> dict[str, Any] | None:
    """A conversationMember as a team_members row; None for members that are not Entra users."""
    user_id = item.get("userId")
    if not user_id:
        return None
    roles = {str(r).lower() for r in item.get("roles") or []}
    role = "owner" if "owner" in roles else "guest" if "guest" in roles else "member"
    return {"team_id": team_id, "user_id": user_id, "membership_id": item.get("id"), "roles": role}


def channel_row(team_id: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "id": item.get("id"),
        "displayName": item.get("displayName"),
        "description": item.get("description"),
        "membershipType": item.get("membershipType"),
        "createdDateTime": parse_timestamp(item.get("createdDateTime")),
        "email": item.get("email"),
        "webUrl": item.get("webUrl"),
    }


def installed_app_row(user_id: str, item: dict[str, Any]) -> dict[str, Any]:
    app = item.get("teamsApp") or {}
    return {
        "user_id": user_id,
        "installation_id": item.get("id"),
        "teams_app_id": app.get("id"),
        "app_display_name": app.get("displayName"),
        "distribution_method": app.get("distributionMethod"),
        "external_id": app.get("externalId"),
    }

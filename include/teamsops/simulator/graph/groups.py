"""``/groups`` routes: list (incl. the Teams filter ``resourceProvisioningOptions/Any(x:x eq 'Team')``), get,
members (with the ``/microsoft.graph.user`` cast) and owners."""

from __future__ import annotations

from typing import Any

from teamsops.simulator.graph import perms
from teamsops.simulator.graph.base import (
    Call,
    FilterRules,
    GraphFailure,
    Listing,
    check_options,
    count_requires_eventual,
    filter_option,
    json_response,
    not_found,
    orderby_option,
    page_response,
    search_option,
    select_context,
    select_option,
    top_option,
)
from teamsops.simulator.graph.schema import (
    GROUP_DEFAULT,
    GROUP_FILTERABLE,
    GROUP_PROPERTIES,
    GROUP_SEARCHABLE,
    GROUP_TYPE,
    USER_DEFAULT,
)
from teamsops.simulator.graph.users import MAX_PAGE, user_filter, user_search, user_select
from teamsops.simulator.http import SimResponse
from teamsops.simulator.model import is_guid
from teamsops.simulator.odata import ADVANCED_OPERATORS, project, wants_count

DEFAULT_PAGE = 100  # group-list.md / group-list-members.md: 100 by default, $top up to 999
GROUP_FILTER_RULES = FilterRules(GROUP_PROPERTIES, GROUP_FILTERABLE, "Group", GROUP_TYPE)


def group_item(group: dict[str, Any], selected: list[str] | None, typed: bool = False) -> dict[str, Any]:
    item = project(group, selected or GROUP_DEFAULT)
    return {"@odata.type": f"#{GROUP_TYPE}", **item} if typed else item


def _group_select(call: Call) -> list[str] | None:
    return select_option(call, GROUP_PROPERTIES, GROUP_TYPE)


def _top(call: Call) -> int:
    return top_option(call, MAX_PAGE, DEFAULT_PAGE)


def group_of(call: Call) -> dict[str, Any]:
    group_id = call.params["group"]
    if not is_guid(group_id):
        raise GraphFailure(400, "Request_BadRequest", f"Invalid object identifier '{group_id}'.")
    group = call.tenant.groups.get(group_id.lower())
    if group is None:
        raise not_found(group_id)
    return group


def _ordered_group_ids(call: Call) -> list[str]:
    """``$orderby=displayName`` (the only ordering group-list.md supports)."""
    keys = orderby_option(call, GROUP_PROPERTIES, GROUP_TYPE, ("displayName",))
    groups = call.tenant.groups
    ids = list(groups)
    for _, descending in keys:
        ids.sort(key=lambda gid: (groups[gid].get("displayName") or "").lower(), reverse=descending)
    return ids


def list_groups(call: Call) -> SimResponse:
    call.require(perms.GROUPS_READ)
    check_options(call, ("$select", "$filter", "$top", "$count", "$search", "$orderby"))
    selected, flt = _group_select(call), filter_option(call, GROUP_FILTER_RULES)
    count_requires_eventual(call, flt, ADVANCED_OPERATORS, orderby="$orderby" in call.query)
    groups = call.tenant.groups
    listing = Listing(
        source=_ordered_group_ids(call),
        full=groups.get,
        render=lambda g: group_item(g, selected),
        context=call.context_url(select_context("groups", selected)),
        page_size=_top(call),
        flt=flt,
        count=wants_count(call.query, call.req.headers),
        search=search_option(call, GROUP_SEARCHABLE),
    )
    return page_response(call, listing)


def get_group(call: Call) -> SimResponse:
    call.require(perms.GROUPS_READ)
    check_options(call, ("$select",))
    selected = _group_select(call)
    group = group_of(call)
    body = {
        "@odata.context": call.context_url(select_context("groups", selected, entity=True)),
        **group_item(group, selected),
    }
    return json_response(200, body)


def _list_links(call: Call, index: dict[str, dict[str, None]], cast: bool) -> SimResponse:
    call.require(perms.GROUPS_READ)
    check_options(call, ("$select", "$filter", "$top", "$count", "$search"))
    group = group_of(call)
    selected, flt = user_select(call, True), user_filter(call)
    count_requires_eventual(call, flt, ADVANCED_OPERATORS)
    users = call.tenant.users
    names = selected or USER_DEFAULT
    if cast:
        render, context = (lambda u: project(u, names)), call.context_url(select_context("users", selected))
    else:
        render = lambda u: {"@odata.type": "#microsoft.graph.user", **project(u, names)}  # noqa: E731
        context = call.context_url("directoryObjects")
    listing = Listing(
        source=list(index.get(group["id"], {})),
        full=users.get,
        render=render,
        context=context,
        page_size=_top(call),
        flt=flt,
        count=wants_count(call.query, call.req.headers),
        search=user_search(call),
    )
    return page_response(call, listing)


def list_members(call: Call) -> SimResponse:
    return _list_links(call, call.tenant.group_members, cast=False)


def list_user_members(call: Call) -> SimResponse:
    """``/groups/{id}/members/microsoft.graph.user``: the OData cast keeps only users (all members here are)."""
    return _list_links(call, call.tenant.group_members, cast=True)


def list_owners(call: Call) -> SimResponse:
    return _list_links(call, call.tenant.group_owners, cast=False)


def list_member_of(call: Call) -> SimResponse:
    """Groups the user is a direct member of (directory roles and administrative units are not modelled)."""
    call.require(perms.USERS_MEMBER_OF)
    check_options(call, ("$select", "$top"))
    user = call.user()
    selected = _group_select(call)
    groups = call.tenant.groups
    listing = Listing(
        source=list(call.tenant.member_of.get(user["id"], {})),
        full=groups.get,
        render=lambda g: group_item(g, selected, typed=True),
        context=call.context_url("directoryObjects"),
        page_size=_top(call),
    )
    return page_response(call, listing)

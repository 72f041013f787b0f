"""Directory-wide routes: ``/organization``, ``/subscribedSkus``, ``/roleManagement/directory/...``,
``/directory/deletedItems`` (list, get, restore, permanent delete) and ``/appCatalogs/teamsApps``."""

from __future__ import annotations

from typing import Any

from teamsops.simulator.graph import perms
from teamsops.simulator.graph.base import (
    DIRECTORY,
    Call,
    GraphFailure,
    Listing,
    check_options,
    filter_option,
    json_response,
    no_content,
    not_found,
    page_response,
    select_context,
    select_option,
    top_option,
)
from teamsops.simulator.graph.schema import (
    ORGANIZATION_PROPERTIES,
    ROLE_ASSIGNMENT_PROPERTIES,
    ROLE_DEFINITION_PROPERTIES,
    SKU_PROPERTIES,
    USER_DEFAULT,
    USER_PROPERTIES,
    USER_TYPE,
)
from teamsops.simulator.graph.users import DEFAULT_PAGE, MAX_PAGE, refuse_admin_target, user_item, user_select
from teamsops.simulator.http import SimResponse
from teamsops.simulator.model import RuleViolation, iso
from teamsops.simulator.odata import Filter, parse_expand, project


def _filter(call: Call, allowed: set[str] | None = None) -> Filter | None:
    """``$filter``; with ``allowed``, only on those properties (any other is an unsupported query)."""
    flt = filter_option(call)
    if flt is not None and allowed is not None and any(p.split("/")[0] not in allowed for p in flt.properties):
        raise GraphFailure(400, "Request_UnsupportedQuery", "Unsupported Query.")
    return flt


def _top(call: Call) -> int:
    return top_option(call, MAX_PAGE, DEFAULT_PAGE)


# ------------------------------------------------------------------------------------------------ organization, SKUs


def list_organization(call: Call) -> SimResponse:
    call.require(perms.ORGANIZATION_READ)
    check_options(call, ("$select",))
    selected = select_option(call, ORGANIZATION_PROPERTIES, "microsoft.graph.organization")
    org = call.tenant.organization
    item = project(org, selected) if selected else dict(org)
    return json_response(
        200, {"@odata.context": call.context_url(select_context("organization", selected)), "value": [item]}
    )


def get_organization(call: Call) -> SimResponse:
    call.require(perms.ORGANIZATION_READ)
    check_options(call, ("$select",))
    if call.params["org"].lower() != call.tenant.id:
        raise not_found(call.params["org"])
    selected = select_option(call, ORGANIZATION_PROPERTIES, "microsoft.graph.organization")
    org = call.tenant.organization
    item = project(org, selected) if selected else dict(org)
    return json_response(
        200, {"@odata.context": call.context_url(select_context("organization", selected, True)), **item}
    )


def list_skus(call: Call) -> SimResponse:
    """subscribedsku-list.md: only ``$select`` is supported; no paging."""
    call.require(perms.ORGANIZATION_READ)
    check_options(call, ("$select",))
    selected = select_option(call, SKU_PROPERTIES, "microsoft.graph.subscribedSku")
    value = [project(s, selected) if selected else dict(s) for s in call.tenant.skus.values()]
    return json_response(
        200, {"@odata.context": call.context_url(select_context("subscribedSkus", selected)), "value": value}
    )


def get_sku(call: Call) -> SimResponse:
    call.require(perms.ORGANIZATION_READ)
    check_options(call, ("$select",))
    sku = next((s for s in call.tenant.skus.values() if s["id"].lower() == call.params["sku"].lower()), None)
    if sku is None:
        raise not_found(call.params["sku"])
    selected = select_option(call, SKU_PROPERTIES, "microsoft.graph.subscribedSku")
    item = project(sku, selected) if selected else dict(sku)
    return json_response(200, {"@odata.context": call.context_url("subscribedSkus/$entity"), **item})


# ------------------------------------------------------------------------------------------------ roles


def list_role_definitions(call: Call) -> SimResponse:
    call.require(perms.ROLES_READ)
    check_options(call, ("$select", "$filter"))
    selected = select_option(call, ROLE_DEFINITION_PROPERTIES, "microsoft.graph.unifiedRoleDefinition")
    definitions = call.tenant.role_definitions
    listing = Listing(
        source=list(definitions),
        full=definitions.get,
        render=lambda d: project(d, selected) if selected else dict(d),
        context=call.context_url(select_context("roleManagement/directory/roleDefinitions", selected)),
        page_size=1000,
        flt=_filter(call),
    )
    return page_response(call, listing)


def get_role_definition(call: Call) -> SimResponse:
    call.require(perms.ROLES_READ)
    definition = call.tenant.role_definitions.get(call.params["role"].lower())
    if definition is None:
        raise not_found(call.params["role"])
    context = call.context_url("roleManagement/directory/roleDefinitions/$entity")
    return json_response(200, {"@odata.context": context, **definition})


def _principal(call: Call, principal_id: str) -> dict[str, Any] | None:
    tenant = call.tenant
    if principal_id in tenant.users:
        user = tenant.users[principal_id]
        return {
            "@odata.type": f"#{USER_TYPE}",
            **project(user, ("id", "accountEnabled", "displayName", "userPrincipalName", "userType")),
        }
    if principal_id in tenant.service_principals:
        return dict(tenant.service_principals[principal_id])
    if principal_id in tenant.groups:
        return {
            "@odata.type": "#microsoft.graph.group",
            "id": principal_id,
            "displayName": tenant.groups[principal_id]["displayName"],
        }
    return None


def list_role_assignments(call: Call) -> SimResponse:
    """rbacapplication-list-roleassignments.md: ``$filter`` on principalId / roleDefinitionId, ``$expand=principal``
    (and ``roleDefinition``)."""
    call.require(perms.ROLES_READ)
    check_options(call, ("$select", "$filter", "$expand", "$top"))
    expand = {n.lower() for n in parse_expand(call.query.get("$expand"))}
    if expand - {"principal", "roledefinition"}:
        raise GraphFailure(
            400,
            "BadRequest",
            f"Could not find a property named '{sorted(expand)[0]}' on type 'microsoft.graph.unifiedRoleAssignment'.",
        )
    flt = _filter(call, {"principalId", "roleDefinitionId", "directoryScopeId", "appScopeId", "id"})
    selected = select_option(call, ROLE_ASSIGNMENT_PROPERTIES, "microsoft.graph.unifiedRoleAssignment")

    def render(assignment: dict[str, Any]) -> dict[str, Any]:
        item = project(assignment, selected) if selected else dict(assignment)
        if "principal" in expand:
            item["principal"] = _principal(call, assignment["principalId"])
        if "roledefinition" in expand:
            item["roleDefinition"] = call.tenant.role_definitions.get(assignment["roleDefinitionId"])
        return item

    fragment = "roleManagement/directory/roleAssignments" + ("(principal())" if "principal" in expand else "")
    assignments = call.tenant.role_assignments
    listing = Listing(
        source=list(assignments),
        full=assignments.get,
        render=render,
        context=call.context_url(fragment),
        page_size=_top(call),
        flt=flt,
    )
    return page_response(call, listing)


# ------------------------------------------------------------------------------------------------ deleted items


def _deleted_item(call: Call, user_id: str, selected: list[str] | None) -> dict[str, Any]:
    record = call.tenant.deleted_users[user_id]
    full = {**record.user, "deletedDateTime": iso(record.deleted_at)}
    return {"@odata.type": f"#{USER_TYPE}", **project(full, selected or (*USER_DEFAULT, "deletedDateTime"))}


def list_deleted_users(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    check_options(call, ("$select", "$top"))
    selected = user_select(call, True)
    deleted = call.tenant.deleted_users
    listing = Listing(
        source=list(deleted),
        full=lambda uid: {"id": uid} if uid in deleted else None,
        render=lambda ref: _deleted_item(call, ref["id"], selected),
        context=call.context_url("directory/deletedItems/microsoft.graph.user"),
        page_size=_top(call),
    )
    return page_response(call, listing)


def _deleted_user_id(call: Call) -> str:
    item_id = call.params["item"].lower()
    if item_id not in call.tenant.deleted_users:
        raise not_found(call.params["item"])
    return item_id


def get_deleted_item(call: Call) -> SimResponse:
    call.require(perms.USERS_READ)
    selected = select_option(call, (*USER_PROPERTIES, "deletedDateTime"), USER_TYPE)
    item = _deleted_item(call, _deleted_user_id(call), selected)
    return json_response(200, {"@odata.context": call.context_url("directoryObjects/$entity"), **item})


def restore_deleted_item(call: Call) -> SimResponse:
    """directory-deleteditems-restore.md: 200 + the restored directoryObject."""
    call.require(perms.USERS_DELETE)
    with call.tenant.lock:
        user_id = _deleted_user_id(call)
        refuse_admin_target(call, user_id)
        try:
            user = call.tenant.restore_user(user_id)
        except RuleViolation as violation:
            raise GraphFailure.from_rule(violation, DIRECTORY) from None
        call.journal(200, user_id)
        item = user_item(call, user, None, typed=True)
    return json_response(200, {"@odata.context": call.context_url("directoryObjects/$entity"), **item})


def purge_deleted_item(call: Call) -> SimResponse:
    """Permanent delete: afterwards delta reports the user as ``@removed: {"reason": "deleted"}``."""
    call.require(perms.USERS_DELETE)
    with call.tenant.lock:
        user_id = _deleted_user_id(call)
        call.tenant.purge_deleted_user(user_id)
        call.journal(204, user_id)
    return no_content()


# ------------------------------------------------------------------------------------------------ app catalog


def list_catalog_apps(call: Call) -> SimResponse:
    call.require(perms.CATALOG_READ)
    check_options(call, ("$filter", "$expand"))
    expand = {n.lower() for n in parse_expand(call.query.get("$expand"))}
    definitions = call.tenant.app_definitions

    def render(app: dict[str, Any]) -> dict[str, Any]:
        item = dict(app)
        if "appdefinitions" in expand:
            item["appDefinitions"] = [definitions[app["id"]]]
        return item

    catalog = call.tenant.catalog
    listing = Listing(
        source=list(catalog),
        full=catalog.get,
        render=render,
        context=call.context_url("appCatalogs/teamsApps"),
        page_size=1000,
        flt=_filter(call),
    )
    return page_response(call, listing)

"""``plan_run``: who is the tenant, may the app read everything, and does this run build on a published one.

The plan is the first step of every run. It

1. reads the tenant GUID from the access token (``tid``: a connection may name its tenant by domain, the data
   folder is always the GUID);
2. fails fast, before anything is read, when the app lacks an application permission the sync needs - the error
   is a :class:`~teamsops.graph.errors.GraphForbidden` naming the permission and what it is for;
3. reads ``{root}/{tenant}/latest.json`` and the manifest it points to, and decides the mode: ``incremental``
   (build on that run with its stored deltaLinks) or ``full`` (with the reason).

A rerun of a run that was already published (same run id) builds on the run *before* it, exactly like the first
attempt did, so it never reads files it is about to overwrite.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from teamsops.graph.errors import GraphAuthError, GraphForbidden
from teamsops.graph.permissions import GRANT_HINT, PERMISSION_PURPOSES, missing_permissions
from teamsops.sync.errors import SyncError
from teamsops.sync.models import RunPlan
from teamsops.sync.storage import list_parts, manifest_rel, read_json, resolve, run_key_for, tenant_dir
from teamsops.sync.tables import FORMAT_VERSION, TABLES

__all__ = ["check_permissions", "plan_run", "read_latest", "tenant_of"]

log = logging.getLogger(__name__)

DELTA_TABLES = ("users", "teams")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def tenant_of(client: Any) -> str:
    """The tenant GUID of the client's token (``tid``), lower case."""
    tid = client.token_claims().get("tid")
    if not tid:
        raise GraphAuthError(message="the access token has no 'tid' claim, so the tenant GUID is unknown",
                             advice="check that the connection's authority issues app-only v2 tokens")
    return str(tid).lower()


def check_permissions(client: Any) -> None:
    """Raise :class:`GraphForbidden` naming every sync permission the token's ``roles`` do not satisfy."""
    roles = client.token_roles()
    missing = missing_permissions(roles, "read")
    if not missing:
        return
    needed_by = {perm: [t.name for t in TABLES.values() if perm in t.permissions] for perm in missing}
    parts = [f"{perm} ({PERMISSION_PURPOSES.get(perm, 'needed by the sync')}; tables: "
             f"{', '.join(needed_by[perm]) or 'several'})" for perm in missing]
    raise GraphForbidden(
        403, "MissingApplicationPermission",
        f"the app registration lacks the application permission(s) {', '.join(missing)} the sync needs: "
        + "; ".join(parts),
        required_permissions=tuple(missing),
        advice=(f"grant {', '.join(missing)} in {GRANT_HINT}; tokens issued before the consent keep their old roles "
                "for up to an hour"))


def read_latest(root: Any, tenant_id: str) -> dict[str, Any] | None:
    """``{root}/{tenant_id}/latest.json`` (the last published run), or None when nothing was published yet."""
    try:
        return read_json(tenant_dir(root, tenant_id) / "latest.json")
    except ValueError as err:
        raise SyncError(f"{tenant_dir(root, tenant_id) / 'latest.json'} is not valid JSON ({err}); it is only "
                        "written by publish, atomically: restore it from the run manifests under runs/ or delete "
                        "it to force a full sync") from err


def plan_run(client: Any, root: Any, run_id: str, *, full_refresh: bool = False) -> RunPlan:
    """Plan one run of the sync for the client's tenant (see the module docstring).

    :raises GraphForbidden: a permission the sync needs is missing (nothing else was read).
    """
    tenant_id = tenant_of(client)
    check_permissions(client)
    run_key = run_key_for(run_id)
    base, reason = _base_manifest(root, tenant_id, run_id, full_refresh)
    plan = RunPlan(run_id=run_id, run_key=run_key, tenant_id=tenant_id, mode="full", reason=reason,
                   started_at=now_iso(), tenant_url=str(tenant_dir(root, tenant_id)), format_version=FORMAT_VERSION)
    if base is not None:
        manifest, manifest_path = base
        plan.mode = "incremental"
        plan.previous_run_id = manifest["run_id"]
        plan.previous_manifest = manifest_path
        plan.previous_tables = {name: {"relative_path": entry["relative_path"], "rows": entry["rows"],
                                       "extra": entry.get("extra", {})}
                                for name, entry in manifest["tables"].items()}
        plan.delta_links = dict(manifest["delta_links"])
    log.info("sync plan for tenant %s, run %s: %s (%s)", tenant_id, run_id, plan.mode, plan.reason)
    return plan


def _base_manifest(root: Any, tenant_id: str, run_id: str,
                   full_refresh: bool) -> tuple[tuple[dict[str, Any], str] | None, str]:
    """The manifest an incremental run builds on (and its relative path), or None and why the run is full."""
    if full_refresh:
        return None, "full refresh requested"
    try:
        latest = read_latest(root, tenant_id)
    except SyncError as err:
        log.warning("%s", err)
        return None, "latest.json is unreadable"
    if latest is None:
        return None, "first run: nothing published yet for this tenant"
    manifest_path = latest.get("manifest_relative_path") or manifest_rel(run_key_for(latest["run_id"]))
    manifest = _read_manifest(root, tenant_id, manifest_path)
    if manifest is None:
        return None, f"the manifest of the published run {latest['run_id']} is missing ({manifest_path})"
    if manifest.get("run_id") == run_id:
        # The same run was already published (a rerun): build on what the first attempt built on.
        previous = manifest.get("previous") or {}
        if not previous.get("manifest"):
            return None, f"rerun of the published run {run_id}, which was itself a full run"
        manifest_path = previous["manifest"]
        manifest = _read_manifest(root, tenant_id, manifest_path)
        if manifest is None:
            return None, f"rerun of {run_id}: the manifest it built on is missing ({manifest_path})"
    problem = _unusable(root, tenant_id, manifest)
    if problem:
        return None, problem
    return (manifest, manifest_path), f"builds on the published run {manifest['run_id']}"


def _read_manifest(root: Any, tenant_id: str, relative: str) -> dict[str, Any] | None:
    try:
        return read_json(resolve(root, tenant_id, relative))
    except ValueError:
        log.warning("the run manifest %s is not valid JSON", relative)
        return None


def _unusable(root: Any, tenant_id: str, manifest: dict[str, Any]) -> str | None:
    """Why a published run cannot be the base of an incremental run (None when it can)."""
    run = manifest.get("run_id")
    if manifest.get("format") != FORMAT_VERSION:
        return f"the published run {run} has format {manifest.get('format')}, this engine writes {FORMAT_VERSION}"
    links = manifest.get("delta_links") or {}
    absent = [t for t in DELTA_TABLES if not links.get(t)]
    if absent:
        return f"the published run {run} stored no deltaLink for {', '.join(absent)}"
    tables = manifest.get("tables") or {}
    missing = [t for t in TABLES if t not in tables]
    if missing:
        return f"the published run {run} lacks the table(s) {', '.join(missing)}"
    gone = [t for t, entry in tables.items()
            if t in TABLES and entry.get("rows") and not list_parts(resolve(root, tenant_id, entry["relative_path"]))]
    if gone:
        return f"the files of the published run {run} are gone for {', '.join(gone)}"
    return None

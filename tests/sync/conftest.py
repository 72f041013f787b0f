"""Fixtures for the sync engine tests: a small simulator per test, Graph clients over real HTTPS, a storage root, a
runner that plays the orchestrator (plan -> every table in dependency order, every shard -> publish), and the
"truth": each table computed straight from the simulator's state, to compare the published tables with row for row.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest
from upath import UPath

from teamsops.graph import GraphClient, GraphSettings, RateLimiter
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.model import iso, utcnow
from teamsops.simulator.testing import RunningSimulator, run_simulator
from teamsops.sync import TABLE_ORDER, TABLES, RunPlan, SyncConfig, plan_run, publish, run_table, table_frame

JSON_COLUMNS = {("organization", "verifiedDomains"), ("organization", "technicalNotificationMails"),
                ("users", "assignedLicenses"), ("user_licenses", "disabled_plans")}


@pytest.fixture
def tenant_sim() -> Iterator[RunningSimulator]:
    """A simulator of its own (tests change the tenant): 60 users, 8 teams."""
    with run_simulator(spec=TenantSpec(users=60, teams=8, seed=5)) as running:
        yield running


@pytest.fixture
def root(tmp_path: Any) -> UPath:
    """A ``file://`` storage root, as the Airflow side passes it (``str(path)`` is a URL)."""
    return UPath(f"file://{tmp_path}/data")


@pytest.fixture
def make_client() -> Iterator[Callable[..., GraphClient]]:
    """``make_client(sim, **kwargs)``: a GraphClient for the simulator's tenant (no pacing unless a limiter is given;
    closed at teardown)."""
    clients: list[GraphClient] = []

    def build(sim: RunningSimulator, **kwargs: Any) -> GraphClient:
        conn = sim.connection()
        settings = GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                               **conn["extra"]})
        kwargs.setdefault("rate_limiter", RateLimiter.unlimited())
        client = GraphClient(settings, **kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@dataclass
class Run:
    plan: RunPlan
    results: list[Any] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def run_sync(client: GraphClient, root: Any, run_id: str, config: SyncConfig | None = None, *,
             full_refresh: bool = False, publish_it: bool = True) -> Run:
    """Play the orchestrator: plan, every table in dependency order (each shard of fan-out tables), publish."""
    config = config or SyncConfig()
    run = Run(plan_run(client, root, run_id, full_refresh=full_refresh))
    for table in TABLE_ORDER:
        for shard in range(config.shards if TABLES[table].fanout else 1):
            # Through XCom the plan and results travel as dicts: do the same here.
            result = run_table(client, root, run.plan.to_dict(), table, config=config, shard=shard)
            run.results.append(result.to_dict())
    if publish_it:
        run.manifest = publish(root, run.plan.to_dict(), run.results)
    return run


@pytest.fixture
def sync() -> Callable[..., Run]:
    return run_sync


# ---------------------------------------------------------------------------------------------- the truth
def _visibility(value: str | None) -> str | None:
    return value[0].lower() + value[1:] if value else value


def truth(sim: RunningSimulator, table: str) -> list[dict[str, Any]]:
    """The rows a correct sync of ``table`` publishes, computed from the simulator's state (not through Graph)."""
    tenant = sim.tenant
    with tenant.lock:
        users = tenant.snapshot("users")
        managers = {m["user_id"]: m["manager_id"] for m in tenant.snapshot("managers")}
        skus = tenant.snapshot("skus")
        catalog = json.loads(json.dumps(tenant.catalog))
        groups = {g["id"]: g for g in tenant.snapshot("groups")}
        teams = json.loads(json.dumps(tenant.teams, default=str))
        org = json.loads(json.dumps(tenant.organization))
        snapshot = {name: tenant.snapshot(name) for name in
                    ("team_members", "channels", "installed_apps", "role_definitions", "role_assignments")}
    live = {u["id"] for u in users}
    part_numbers = {s["skuId"]: s["skuPartNumber"] for s in skus}
    builders: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "organization": lambda: [{"id": org["id"], "displayName": org.get("displayName"),
                                  "verifiedDomains": org.get("verifiedDomains"),
                                  "countryLetterCode": org.get("countryLetterCode"),
                                  "tenantType": org.get("tenantType"), "createdDateTime": org.get("createdDateTime"),
                                  "onPremisesSyncEnabled": org.get("onPremisesSyncEnabled"),
                                  "technicalNotificationMails": org.get("technicalNotificationMails")}],
        "subscribed_skus": lambda: [
            {"sku_id": s["skuId"], "sku_part_number": s["skuPartNumber"], "consumed_units": s["consumedUnits"],
             "enabled_units": s["prepaidUnits"]["enabled"], "suspended_units": s["prepaidUnits"]["suspended"],
             "warning_units": s["prepaidUnits"]["warning"], "locked_out_units": s["prepaidUnits"]["lockedOut"],
             "capability_status": s["capabilityStatus"], "applies_to": s["appliesTo"], "id": s["id"]} for s in skus],
        "role_definitions": lambda: [{k: d.get(k) for k in TABLES["role_definitions"].columns}
                                     for d in snapshot["role_definitions"]],
        "role_assignments": lambda: [{"id": a["id"], "principal_id": a["principalId"],
                                      "role_definition_id": a["roleDefinitionId"],
                                      "directory_scope_id": a.get("directoryScopeId")}
                                     for a in snapshot["role_assignments"]],
        "users": lambda: [{**{k: u.get(k) for k in TABLES["users"].columns}, "manager_id": managers.get(u["id"])}
                          for u in users],
        "user_licenses": lambda: [{"user_id": u["id"], "sku_id": lic["skuId"],
                                   "sku_part_number": part_numbers.get(lic["skuId"]),
                                   "disabled_plans": lic.get("disabledPlans") or []}
                                  for u in users for lic in u.get("assignedLicenses") or []],
        "teams": lambda: [{"id": tid, "displayName": groups[tid].get("displayName"),
                           "description": groups[tid].get("description"),
                           "visibility": teams[tid].get("visibility") or _visibility(groups[tid].get("visibility")),
                           "createdDateTime": groups[tid].get("createdDateTime"), "mail": groups[tid].get("mail"),
                           "mailNickname": groups[tid].get("mailNickname"),
                           "classification": groups[tid].get("classification")} for tid in teams],
        "team_members": lambda: [{"team_id": m["team_id"], "user_id": m["user_id"],
                                  "membership_id": m["membership_id"], "roles": (m["roles"] or ["member"])[0]}
                                 for m in snapshot["team_members"]],
        "channels": lambda: [{k: c.get(k) for k in TABLES["channels"].columns} for c in snapshot["channels"]],
        "user_installed_apps": lambda: [
            {"user_id": i["target_id"], "installation_id": i["installation_id"], "teams_app_id": i["teams_app_id"],
             "app_display_name": catalog[i["teams_app_id"]]["displayName"],
             "distribution_method": catalog[i["teams_app_id"]]["distributionMethod"],
             "external_id": catalog[i["teams_app_id"]].get("externalId")}
            for i in snapshot["installed_apps"] if i["scope"] == "user" and i["target_id"] in live],
    }
    return builders[table]()


def _canonical(table: str, column: str, value: Any) -> Any:
    """One comparable form per value: timestamps as UTC Timestamps, JSON columns as canonical text, NaN as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if (table, column) in JSON_COLUMNS:
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    if str(TABLES[table].schema.field(column).type).startswith("timestamp"):
        return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value,
                                                                                                     tz="UTC")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def canonical_rows(table: str, rows: list[dict[str, Any]]) -> list[tuple]:
    columns = TABLES[table].columns
    return sorted((tuple(_canonical(table, c, row.get(c)) for c in columns) for row in rows), key=repr)


def frame_rows(table: str, frame: pd.DataFrame) -> list[tuple]:
    return canonical_rows(table, frame.astype(object).where(frame.notna(), None).to_dict("records"))


def assert_same_rows(table: str, got: list[tuple], expected: list[tuple]) -> None:
    if got == expected:
        return
    extra = [r for r in got if r not in expected][:3]
    missing = [r for r in expected if r not in got][:3]
    raise AssertionError(f"{table}: {len(got)} rows published, {len(expected)} expected; "
                         f"unexpected {extra}; missing {missing}")


def assert_matches_tenant(sim: RunningSimulator, root: Any, tenant_id: str,
                          tables: tuple[str, ...] = TABLE_ORDER) -> None:
    """Every published table equals the simulator's state, row for row."""
    for table in tables:
        got = frame_rows(table, table_frame(root, tenant_id, table))
        assert_same_rows(table, got, canonical_rows(table, truth(sim, table)))


@pytest.fixture
def matches_tenant() -> Callable[..., None]:
    return assert_matches_tenant


@pytest.fixture
def published_rows() -> Callable[[Any, str, str], list[tuple]]:
    return lambda root, tenant_id, table: frame_rows(table, table_frame(root, tenant_id, table))


# ---------------------------------------------------------------------------------------------- tenant changes
def create_team(sim: RunningSimulator, name: str, members: list[str], owners: list[str]) -> str:
    """Create a Microsoft 365 group with a team, in process, the way the directory records it: the group, its
    members and owners, the team and its General channel, and ONE 'created' entry in the change log (which is what
    /groups/delta reads). The simulator serves no POST /teams, so this is done on the model, under the lock."""
    tenant = sim.tenant
    group_id = str(uuid.uuid4())
    now = iso(utcnow())
    nick = "".join(ch for ch in name if ch.isalnum()) + group_id[:4]
    group = {"id": group_id, "createdDateTime": now, "description": f"{name} team", "displayName": name,
             "groupTypes": ["Unified"], "mail": f"{nick}@{tenant.verified_domains[0]}", "mailEnabled": True,
             "mailNickname": nick, "proxyAddresses": [], "renewedDateTime": now, "resourceBehaviorOptions": [],
             "resourceProvisioningOptions": ["Team"], "securityEnabled": False, "visibility": "Private"}
    with tenant.lock:
        tenant.groups[group_id] = group
        for user_id in members:
            tenant.link_member(group_id, user_id)
        for user_id in owners:
            tenant.link_member(group_id, user_id)
            tenant.link_owner(group_id, user_id)
        tenant.teams[group_id] = {"id": group_id, "createdDateTime": now, "displayName": name,
                                  "description": group["description"], "visibility": "private",
                                  "tenantId": tenant.id, "isArchived": False}
        tenant.channels[group_id] = [{"id": f"19:{uuid.uuid4().hex}@thread.tacv2", "createdDateTime": now,
                                      "displayName": "General", "description": None, "email": "",
                                      "membershipType": "standard", "tenantId": tenant.id, "isArchived": False,
                                      "webUrl": f"https://teams.microsoft.com/l/channel/x/General?groupId={group_id}"}]
        links = tuple(("members", u, True) for u in tenant.group_members[group_id]) + tuple(
            ("owners", u, True) for u in owners)
        tenant.log_change("group", group_id, frozenset(group), links=links, lifecycle="created")
    return group_id


@pytest.fixture
def new_team() -> Callable[..., str]:
    return create_team

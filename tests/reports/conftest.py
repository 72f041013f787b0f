"""Fixtures for the report tests: one scenario of real syncs against the simulator, with reports built in between,
and the expected report figures computed straight from the simulator's state (never through our own code).

The scenario (module-scoped: the sync and the reports run once, the tests read what they produced):

1. the tenant is prepared in-process before the first sync (a guest with a licence, guests in teams, an ownerless
   team, a user whose name needs HTML escaping), sync 1, report 1 (the baseline);
2. through Graph: one user added, one disabled (the renamed one), one deleted; sync 2 (incremental), report 2;
3. through Graph: another disabled and another deleted; sync 3; the sync's files of runs 1 and 2 are deleted (as
   a sync retention would); report 3 must still compare with run 2;
4. no change; sync 4; report 4 with ``keep_runs=2``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from upath import UPath

from teamsops.actions.safeguards import PROTECTED_ROLES
from teamsops.graph import GraphClient, GraphSettings, RateLimiter
from teamsops.simulator.generator import TenantSpec
from teamsops.simulator.model import utcnow
from teamsops.simulator.testing import RunningSimulator, run_simulator
from teamsops.sync import SyncConfig, sync_tenant

ESCAPE_NAME = 'Zoë <b>"Q&A"</b> O\'Brien'
ADDED_NAME = "Ana & Bo <new>"
RUNS = ("run-1", "run-2", "run-3", "run-4")


def graph_client(sim: RunningSimulator) -> GraphClient:
    conn = sim.connection()
    settings = GraphSettings.from_mapping({"client_id": conn["login"], "client_secret": conn["password"],
                                           **conn["extra"]})  # fmt: skip
    return GraphClient(settings, rate_limiter=RateLimiter.unlimited())


def run_sync(sim: RunningSimulator, root: Any, run_id: str) -> dict[str, Any]:
    """A whole sync as the DAG runs it (plan, every table and shard, publish); returns the manifest."""
    return sync_tenant(lambda share: graph_client(sim), root, run_id, config=SyncConfig(shards=2, workers_per_shard=4))


# ---------------------------------------------------------------------------------------------- the truth
def expected_report(tenant) -> dict[str, Any]:
    """The report's figures for the tenant as it is now, from the simulator's model."""
    users = {u["id"]: u for u in tenant.snapshot("users")}
    skus = tenant.snapshot("skus")
    with tenant.lock:
        catalog = {k: dict(v) for k, v in tenant.catalog.items()}
        team_names = {tid: tenant.groups[tid]["displayName"] for tid in tenant.teams}
    enabled = {uid: u.get("accountEnabled", True) is not False for uid, u in users.items()}
    guest = {uid: u.get("userType") == "Guest" for uid, u in users.items()}
    holders = Counter(lic["skuId"] for u in users.values() for lic in u.get("assignedLicenses") or [])
    utilisation = {s["skuId"]: (s["skuPartNumber"], s["prepaidUnits"]["enabled"], s["consumedUnits"],
                                holders[s["skuId"]]) for s in skus}  # fmt: skip
    waste = {(uid, lic["skuId"], not enabled[uid], guest[uid]) for uid, u in users.items()
             for lic in u.get("assignedLicenses") or [] if not enabled[uid] or guest[uid]}  # fmt: skip
    roles: dict[str, Counter] = {tid: Counter() for tid in tenant.teams}
    for m in tenant.snapshot("team_members"):
        roles[m["team_id"]][(m["roles"] or ["member"])[0]] += 1
    teams = {tid: (team_names[tid], c["owner"], c["member"], c["guest"]) for tid, c in roles.items()}
    team_guests = {(m["team_id"], m["user_id"]) for m in tenant.snapshot("team_members") if m["roles"] == ["guest"]}
    installs = [a for a in tenant.snapshot("installed_apps") if a["scope"] == "user" and a["target_id"] in users]
    apps = {app: (catalog[app]["displayName"], catalog[app]["distributionMethod"] != "store",
                  sum(1 for a in installs if a["teams_app_id"] == app),
                  len({a["target_id"] for a in installs if a["teams_app_id"] == app}))
            for app in {a["teams_app_id"] for a in installs}}  # fmt: skip
    definitions = {d["id"]: d for d in tenant.snapshot("role_definitions")}
    privileged = {(a["roleDefinitionId"], a["principalId"], "user" if a["principalId"] in users else "other")
                  for a in tenant.snapshot("role_assignments")
                  if (definitions[a["roleDefinitionId"]].get("templateId") or a["roleDefinitionId"]) in PROTECTED_ROLES}
    return {
        "users": {uid: (u["userPrincipalName"], u["displayName"], enabled[uid], u.get("userType")) for uid, u in
                  users.items()},
        "utilisation": utilisation, "waste": waste, "teams": teams, "team_guests": team_guests, "apps": apps,
        "privileged": privileged,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- the scenario
@dataclass
class Scenario:
    sim: RunningSimulator
    root: Any
    base: Path
    tenant_id: str = ""
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> build_report's summary
    # What each report wrote, read back right after it was built (retention deletes the early runs later on):
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> table -> DataFrame
    pages: dict[str, Path] = field(default_factory=dict)  # run id -> a copy of its report.html
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> expected_report at sync time
    changed: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # run id -> change -> user ids
    escape_name: str = ESCAPE_NAME  # a member renamed before the first sync
    added_name: str = ADDED_NAME  # the user added before sync 2
    runs: tuple[str, ...] = RUNS
    fallback: dict[str, Any] | None = None  # report 2 built with no report history (from the sync's manifest)
    rebuilt: dict[str, Any] | None = None  # report 4 built a second time


def _prepare(tenant) -> str:
    """Make every section non-empty before the first sync (in-process: the first sync is full); returns the id of
    the member renamed to :data:`ESCAPE_NAME`."""
    now = utcnow()
    with tenant.lock:
        users = list(tenant.users.values())
        guests = [u for u in users if u.get("userType") == "Guest"]
        e3 = next(s for s in tenant.skus.values() if s["skuPartNumber"] == "SPE_E3")
        licensed = {**guests[0], "assignedLicenses": [{"skuId": e3["skuId"], "disabledPlans": []}]}
        tenant.users[licensed["id"]] = licensed
        tenant.adjust_consumed_units(licensed, +1)
        team_ids = sorted(tenant.teams)
        for team_id, guest in zip(team_ids[:2], guests[:3], strict=False):
            tenant.link_member(team_id, guest["id"])
        tenant.link_member(team_ids[0], guests[2]["id"])
        owned = [t for t in team_ids[2:] if tenant.group_owners.get(t)]
        for owner in list(tenant.group_owners[owned[0]]):
            tenant.unlink_owner(owned[0], owner)
        plain = _plain_members(tenant)
        tenant.update_user(plain[0]["id"], {"displayName": ESCAPE_NAME}, now)
        sideloaded = sorted(a for a, app in tenant.catalog.items() if app["distributionMethod"] == "sideloaded")[0]
        for user in plain[1:3]:
            if sideloaded not in tenant.installed_app_ids("user", user["id"]):
                tenant.install_app("user", user["id"], sideloaded)
    return plain[0]["id"]


def _plain_members(tenant) -> list[dict[str, Any]]:
    """Enabled, licensed members without roles or team ownership: safe to rename, disable or delete."""
    admins = {a["principalId"] for a in tenant.role_assignments.values()}
    owners = {u for t in tenant.teams for u in tenant.group_owners.get(t, {})}
    return sorted((u for u in tenant.users.values() if u.get("userType") == "Member" and u.get("accountEnabled")
                   and u.get("assignedLicenses") and u["id"] not in admins | owners
                   and u["displayName"] != ESCAPE_NAME), key=lambda u: u["id"])  # fmt: skip


def _build(scenario: Scenario, run_id: str, **kwargs: Any) -> None:
    from teamsops.reports import build_report

    summary = build_report(scenario.root, scenario.tenant_id, **kwargs)
    scenario.reports[run_id] = summary
    # Read through the URLs latest.json gives (what a reader would do).
    scenario.tables[run_id] = {name: pd.read_parquet(entry["path"]) for name, entry in summary["tables"].items()}
    page = scenario.base / "pages" / f"{run_id}.html"
    page.parent.mkdir(exist_ok=True)
    shutil.copyfile(summary["report"].removeprefix("file://"), page)
    scenario.pages[run_id] = page


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("reports")
    with run_simulator(spec=TenantSpec(users=80, teams=10, seed=23)) as sim:
        s = Scenario(sim=sim, root=UPath(f"file://{base}/data"), base=base)
        tenant = sim.tenant
        renamed = _prepare(tenant)
        s.tenant_id = run_sync(sim, s.root, "run-1")["tenant_id"]
        s.expected["run-1"] = expected_report(tenant)
        _build(s, "run-1")

        domain = tenant.verified_domains[0]
        with graph_client(sim) as writer:
            plain = _plain_members(tenant)
            added = writer.post("/users", json={
                "accountEnabled": True, "displayName": ADDED_NAME, "mailNickname": "ana.bo",
                "userPrincipalName": f"ana.bo@{domain}",
                "passwordProfile": {"password": "Xy7!verylongpass",
                                    "forceChangePasswordNextSignIn": True}})  # fmt: skip
            writer.patch(f"/users/{renamed}", json={"accountEnabled": False})  # its name shows in the page
            writer.delete(f"/users/{plain[1]['id']}")
            s.changed["run-2"] = {"added": {added["id"]}, "disabled": {renamed}, "removed": {plain[1]["id"]}}
        assert run_sync(sim, s.root, "run-2")["mode"] == "incremental"
        s.expected["run-2"] = expected_report(tenant)
        _build(s, "run-2")

        # Report 2 once more on a copy of the data without any report: the sync manifest's previous run is used.
        copy = base / "copy"
        shutil.copytree(base / "data", copy, ignore=shutil.ignore_patterns("reports"))
        from teamsops.reports import build_report

        s.fallback = build_report(UPath(f"file://{copy}"), s.tenant_id)

        with graph_client(sim) as writer:
            plain = _plain_members(tenant)
            writer.patch(f"/users/{plain[0]['id']}", json={"accountEnabled": False})
            writer.delete(f"/users/{plain[1]['id']}")
            s.changed["run-3"] = {"added": set(), "disabled": {plain[0]["id"]}, "removed": {plain[1]["id"]}}
        run_sync(sim, s.root, "run-3")
        s.expected["run-3"] = expected_report(tenant)
        for old in ("run-1", "run-2"):  # what a retention of the sync's own files would do
            shutil.rmtree(base / "data" / s.tenant_id / "users" / f"run_id={old}")
        _build(s, "run-3")

        run_sync(sim, s.root, "run-4")
        s.changed["run-4"] = {"added": set(), "disabled": set(), "removed": set()}
        s.expected["run-4"] = expected_report(tenant)
        _build(s, "run-4", keep_runs=2)
        from teamsops.reports import build_report as again

        s.rebuilt = again(s.root, s.tenant_id, keep_runs=2)
        yield s


# ---------------------------------------------------------------------------------------------- the browser
def chromium_binary() -> str:
    """Debian's ``chromium`` (installed by .ci/run); skip without it locally, fail in CI."""
    import os

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium not found: install Debian's chromium package (.ci/run does) to check the HTML in a browser"
    if os.environ.get("MSTEAMS_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_binary()

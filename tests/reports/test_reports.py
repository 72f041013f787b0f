"""The report tables against the tenant: every number equals what the simulator's state gives, the changes name
exactly the users that were added, disabled and removed, the previous run is known from the report history (and
from the sync's manifest before there is one), retention keeps N runs, and a rebuild is idempotent."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
from upath import UPath

from teamsops.reports import REPORT_TABLES, SCHEMAS, ReportError, ReportSettingsError, build_report
from teamsops.reports.build import keep_runs_from_env, read_history, read_report_latest

RUNS = ("run-1", "run-2", "run-3", "run-4")


def _table(summary: dict, name: str, scenario=None) -> pd.DataFrame:
    """A report table as written (read back right after the build: retention removes early runs later)."""
    if scenario is not None:
        frame = scenario.tables[summary["run_id"]][name]
    else:
        frame = pd.read_parquet(summary["tables"][name]["path"])
    return frame.astype(object).where(frame.notna(), None)


def _metrics(summary: dict, scenario) -> dict[str, int]:
    frame = _table(summary, "metrics", scenario)
    return dict(zip(frame["metric"], frame["value"], strict=True))


# ---------------------------------------------------------------------------------------------- tables vs tenant
@pytest.mark.parametrize("run", ["run-1", "run-2", "run-3"])
def test_every_table_equals_the_tenant(scenario, run):
    summary, expected = scenario.reports[run], scenario.expected[run]
    assert summary["run_id"] == run

    skus = _table(summary, "licence_utilisation", scenario)
    got = {r.sku_id: (r.sku_part_number, r.enabled_units, r.consumed_units, r.assigned_users)
           for r in skus.itertuples()}
    assert got == expected["utilisation"]
    for r in skus.itertuples():
        assert r.available_units == r.enabled_units - r.consumed_units
        assert r.utilisation_pct == (round(100 * r.consumed_units / r.enabled_units, 1) if r.enabled_units else None)

    waste = _table(summary, "licence_waste", scenario)
    assert {(r.user_id, r.sku_id, r.disabled, r.guest) for r in waste.itertuples()} == expected["waste"]
    assert any(r.guest for r in waste.itertuples()) and any(r.disabled for r in waste.itertuples())
    users = expected["users"]
    assert all((r.userPrincipalName, r.displayName) == users[r.user_id][:2] for r in waste.itertuples())

    teams = _table(summary, "team_overview", scenario)
    got = {r.team_id: (r.displayName, r.owners, r.members, r.guests) for r in teams.itertuples()}
    assert got == expected["teams"]
    for r in teams.itertuples():
        assert r.total_members == r.owners + r.members + r.guests
        assert r.ownership == {0: "ownerless", 1: "single-owner"}.get(r.owners, "owned")
    assert {"ownerless", "single-owner"} <= set(teams["ownership"])

    guests = _table(summary, "team_guests", scenario)
    assert {(r.team_id, r.user_id) for r in guests.itertuples()} == expected["team_guests"] != set()

    apps = _table(summary, "app_inventory", scenario)
    got = {r.teams_app_id: (r.app_display_name, r.custom, r.installs, r.users) for r in apps.itertuples()}
    assert got == expected["apps"]
    assert set(apps[apps["custom"]]["distribution_method"]) == {"organization", "sideloaded"}

    roles = _table(summary, "privileged_role_holders", scenario)
    got = {(r.role_definition_id, r.principal_id, "user" if r.principal_type == "user" else "other")
           for r in roles.itertuples()}  # fmt: skip
    assert got == expected["privileged"] != set()
    assert "Privileged Role Administrator" in set(roles["role_name"])

    snapshot = _table(summary, "users_snapshot", scenario)
    assert {r.id: (r.userPrincipalName, r.displayName, r.accountEnabled, r.userType)
            for r in snapshot.itertuples()} == users  # fmt: skip


@pytest.mark.parametrize("run", RUNS)
def test_headline_numbers_are_the_tables_totals(scenario, run):
    summary, expected = scenario.reports[run], scenario.expected[run]
    metrics = _metrics(summary, scenario)
    assert metrics == summary["metrics"] == read_json_metrics(scenario, run)
    users = expected["users"].values()
    waste = expected["waste"]
    teams = expected["teams"].values()
    apps = expected["apps"].values()
    assert metrics["users.total"] == len(expected["users"])
    assert metrics["users.disabled"] == sum(1 for u in users if not u[2])
    assert metrics["users.guests"] == sum(1 for u in users if u[3] == "Guest")
    assert metrics["licences.enabled_units"] == sum(v[1] for v in expected["utilisation"].values())
    assert metrics["licences.consumed_units"] == sum(v[2] for v in expected["utilisation"].values())
    assert metrics["waste.disabled.licences"] == sum(1 for w in waste if w[2])
    assert metrics["waste.disabled.users"] == len({w[0] for w in waste if w[2]})
    assert metrics["waste.guest.licences"] == sum(1 for w in waste if w[3]) >= 1
    assert metrics["waste.total.licences"] == len(waste)
    assert metrics["teams.ownerless"] == sum(1 for t in teams if t[1] == 0) >= 1
    assert metrics["teams.single_owner"] == sum(1 for t in teams if t[1] == 1)
    assert metrics["teams.with_guests"] == sum(1 for t in teams if t[3]) >= 1
    assert metrics["guests.memberships"] == len(expected["team_guests"])
    assert metrics["apps.installs"] == sum(a[2] for a in apps)
    assert metrics["apps.custom"] == sum(1 for a in apps if a[1])
    assert metrics["roles.privileged_assignments"] == len(expected["privileged"])
    assert metrics["roles.privileged_users"] == len({p[1] for p in expected["privileged"] if p[2] == "user"})


def read_json_metrics(scenario, run: str) -> dict[str, int]:
    """The metrics in the page's embedded JSON."""
    html = scenario.pages[run].read_text(encoding="utf-8")
    start = html.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">')
    return json.loads(html[start:html.index("</script>", start)])["metrics"]


# ---------------------------------------------------------------------------------------------- changes
def test_the_first_report_is_the_baseline(scenario):
    summary = scenario.reports["run-1"]
    assert summary["previous_run_id"] is None
    assert summary["metrics"]["changes.baseline"] == 0
    assert _table(summary, "user_changes", scenario).empty


@pytest.mark.parametrize("run", ["run-2", "run-3", "run-4"])
def test_changes_name_exactly_the_users_changed(scenario, run):
    summary = scenario.reports[run]
    assert summary["previous_run_id"] == RUNS[RUNS.index(run) - 1]
    changes = _table(summary, "user_changes", scenario)
    got = {kind: set(changes[changes["change"] == kind]["user_id"]) for kind in ("added", "disabled", "removed")}
    assert got == scenario.changed[run]
    assert set(changes["change"]) <= {"added", "disabled", "removed"}
    for kind, ids in got.items():
        assert summary["metrics"][f"changes.{kind}"] == len(ids)
    if run == "run-2":
        assert changes[changes["change"] == "added"]["displayName"].tolist() == [scenario.added_name]
        removed = changes[changes["change"] == "removed"].iloc[0]
        assert removed["userPrincipalName"] == scenario.expected["run-1"]["users"][removed["user_id"]][0]


def test_report_history_survives_the_sync_deleting_its_old_files(scenario):
    """Report 3 compares with run 2 although the sync's users files of runs 1 and 2 are gone."""
    tenant_dir = scenario.base / "data" / scenario.tenant_id
    assert not (tenant_dir / "users" / "run_id=run-2").exists()
    assert scenario.reports["run-3"]["previous_run_id"] == "run-2"


def test_without_history_the_sync_manifest_names_the_previous_run(scenario):
    fallback, report = scenario.fallback, scenario.reports["run-2"]
    assert fallback["previous_run_id"] == "run-1"
    assert fallback["metrics"] == report["metrics"]
    for name in REPORT_TABLES:
        pd.testing.assert_frame_equal(_table(fallback, name), _table(report, name, scenario), obj=name)


# ---------------------------------------------------------------------------------------------- layout, retention
def test_layout_latest_and_retention(scenario):
    reports = scenario.base / "data" / scenario.tenant_id / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["history.json", "latest.json", "run_id=run-3",
                                                         "run_id=run-4"]  # fmt: skip
    assert [r["run_id"] for r in read_history(scenario.root, scenario.tenant_id)] == ["run-3", "run-4"]
    latest = read_report_latest(scenario.root, scenario.tenant_id)
    assert latest["run_id"] == "run-4" and latest["kept_runs"] == ["run-3", "run-4"]
    assert latest["report"] == f"file://{reports}/run_id=run-4/report.html"
    for name in REPORT_TABLES:
        entry = latest["tables"][name]
        assert entry["path"] == f"file://{reports}/run_id=run-4/{name}.parquet"
        frame = pd.read_parquet(entry["path"])
        assert len(frame) == entry["rows"] and list(frame.columns) == SCHEMAS[name].names, name
    assert scenario.reports["run-4"]["deleted_runs"] == ["run-1", "run-2"]


def test_rebuilding_a_report_overwrites_it(scenario):
    first, again = scenario.reports["run-4"], scenario.rebuilt
    assert again["run_id"] == "run-4" and again["previous_run_id"] == "run-3"
    assert again["metrics"] == first["metrics"] and again["deleted_runs"] == []
    assert [r["run_id"] for r in read_history(scenario.root, scenario.tenant_id)] == ["run-3", "run-4"]


def test_history_is_rebuilt_from_the_runs_when_the_index_is_lost(scenario, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(scenario.base / "data", copy)
    (copy / scenario.tenant_id / "reports" / "history.json").unlink()
    assert [r["run_id"] for r in read_history(UPath(f"file://{copy}"), scenario.tenant_id)] == ["run-3", "run-4"]


def test_names_are_kept_exactly(scenario):
    """A display name with markup and non-ASCII letters survives Parquet intact (the HTML test checks the page)."""
    snapshot = _table(scenario.reports["run-2"], "users_snapshot", scenario)
    assert {scenario.escape_name, scenario.added_name} <= set(snapshot["displayName"])


# ---------------------------------------------------------------------------------------------- errors
def test_nothing_published_says_to_run_the_sync(tmp_path):
    with pytest.raises(ReportError, match=r"nothing has been published for tenant .* run the msteams_sync DAG"):
        build_report(UPath(f"file://{tmp_path}"), "00000000-0000-0000-0000-000000000001")


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_keep_runs_setting_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("MSTEAMS_REPORT_KEEP_RUNS", value)
    with pytest.raises(ReportSettingsError, match=rf"^MSTEAMS_REPORT_KEEP_RUNS='{value}' is invalid"):
        keep_runs_from_env()


def test_keep_runs_defaults_to_30(monkeypatch):
    monkeypatch.delenv("MSTEAMS_REPORT_KEEP_RUNS", raising=False)
    assert keep_runs_from_env() == 30
    monkeypatch.setenv("MSTEAMS_REPORT_KEEP_RUNS", "5")
    assert keep_runs_from_env() == 5


def test_counter_sanity_of_the_scenario(scenario):
    """The scenario exercises what it claims: licences on a guest and on disabled users, guests in teams."""
    waste = scenario.expected["run-2"]["waste"]
    assert Counter((w[2], w[3]) for w in waste)[(False, True)] >= 1
    assert Counter((w[2], w[3]) for w in waste)[(True, False)] >= 2

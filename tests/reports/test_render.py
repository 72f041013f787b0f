"""The page for edge cases the scenario does not reach: a tenant with nothing in it, and lists longer than the page
shows (the page says so and points at the Parquet file; the headline numbers still count every row)."""

from __future__ import annotations

import json
import re

import pandas as pd

from teamsops.reports.compute import compute_all
from teamsops.reports.render import render_report
from teamsops.sync import TABLES


def test_an_empty_tenant_renders_with_zeroes_and_empty_charts():
    frames = {name: spec.schema.empty_table().to_pandas() for name, spec in TABLES.items()}
    tables = compute_all(frames, None)
    page = render_report(tables, {"tenant_id": "t", "run_id": "r"}, {})
    assert all(v == 0 for v in tables["metrics"]["value"])
    # The five charts drawn from lists say so (matplotlib keeps drawn text as an SVG comment next to its paths).
    assert page.count("<svg") == 7 and page.count("nothing to show") == 5
    assert re.findall(r'data-table="licence_waste" data-rows="(\d+)"', page) == ["0"]
    assert '<p class="note" data-previous-run="">No previous run' in page


def test_long_lists_are_cut_in_the_page_but_not_in_the_numbers(scenario):
    tables = scenario.tables["run-2"]
    sources = {name: f"file:///lake/{name}.parquet" for name in tables}
    page = render_report(tables, {"tenant_id": "t", "run_id": "run-2"}, sources, max_rows=2)
    apps = tables["app_inventory"]
    assert len(apps) > 2
    table = re.search(r'<table data-table="app_inventory" data-rows="(\d+)".*?</table>(<p[^>]*>.*?</p>)?', page)
    assert int(table.group(1)) == len(apps)
    assert table.group(0).count("<tr data-row") == 2
    assert f"Showing the first 2 of {len(apps)} rows; every row is in file:///lake/app_inventory.parquet" in page
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page).group(1))
    assert data["row_counts"]["app_inventory"] == len(apps) and len(data["tables"]["app_inventory"]) == 2
    metrics = dict(zip(tables["metrics"]["metric"], tables["metrics"]["value"], strict=True))
    assert f'data-metric="apps.installs" data-value="{metrics["apps.installs"]}"' in page
    assert metrics["apps.installs"] == int(pd.Series(apps["installs"]).sum())

"""The HTML report in a real headless browser (Debian's chromium): after rendering, the DOM holds every headline
number and every table row exactly as the Parquet tables have them, the embedded JSON agrees, every chart is an
inline SVG that the browser lays out with a real size, names are escaped (markup in a name stays text), and the page
needs nothing from the network."""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

CHARTS = {"licence_utilisation", "licence_waste", "team_ownership", "guests_by_team", "app_installs",
          "privileged_roles", "user_changes"}  # fmt: skip
# Tables in the page -> (Parquet table, filter) ; the two team lists are views of team_overview.
PAGE_TABLES = {"licence_utilisation": "licence_utilisation", "licence_waste": "licence_waste",
               "ownerless_teams": "team_overview", "teams_with_guests": "team_overview", "team_guests": "team_guests",
               "app_inventory": "app_inventory", "privileged_role_holders": "privileged_role_holders",
               "user_changes": "user_changes"}  # fmt: skip


class Dom(HTMLParser):
    """What the tests need from the rendered DOM: metrics, tables (cells as data-value and text), charts, JSON."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.metrics: dict[str, list[tuple[str, str]]] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.charts: dict[str, dict[str, Any]] = {}
        self.json_text = ""
        self.external: list[str] = []
        self.tags: list[str] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._text: list[str] | None = None
        self._cell: tuple[str, str] | None = None
        self._table: str | None = None
        self._chart: str | None = None
        self._in_json = False
        self._metric: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        for key in ("src", "href"):
            if key in a and re.match(r"^(https?:)?//", a[key]):
                self.external.append(a[key])
        if "data-metric" in a:
            self._metric = a["data-metric"]
            self.metrics.setdefault(self._metric, []).append((a["data-value"], ""))
            self._text = []
        if tag == "table" and "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table] = {"rows": int(a.get("data-rows", -1)), "cells": []}
        if tag == "tr" and "data-row" in a and self._table:
            self.tables[self._table]["cells"].append({})
        if tag == "td" and "data-col" in a and self._table:
            self._cell = (a["data-col"], a["data-value"])
            self._text = []
        if tag == "figure" and "data-chart" in a:
            self._chart = a["data-chart"]
            self.charts[self._chart] = {"series": json.loads(a["data-series"]), "svg": 0, "shapes": 0,
                                        "width": float(a.get("data-rendered-width", "nan")),
                                        "height": float(a.get("data-rendered-height", "nan"))}
        if self._chart and tag == "svg":
            self.charts[self._chart]["svg"] += 1
        if self._chart and tag in ("path", "use", "rect"):
            self.charts[self._chart]["shapes"] += 1
        if tag == "script" and a.get("id") == "report-data":
            self._in_json = True
        self._stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell and self._table:
            self.tables[self._table]["cells"][-1][self._cell[0]] = (self._cell[1], "".join(self._text or []))
            self._cell, self._text = None, None
        if self._metric and tag in ("span", "td"):
            value, _ = self.metrics[self._metric][-1]
            self.metrics[self._metric][-1] = (value, "".join(self._text or []))
            self._metric, self._text = None, None
        if tag == "table":
            self._table = None
        if tag == "figure":
            self._chart = None
        if tag == "script":
            self._in_json = False

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)
        if self._in_json:
            self.json_text += data


def dump_dom(chromium: str, page: Path) -> str:
    """The DOM after the browser loaded and laid out ``page`` (a throw-away profile; no network needed)."""
    with tempfile.TemporaryDirectory(prefix="teamsops-chromium-") as profile:
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions", "--no-first-run",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


# A probe added to a COPY of the page (the report itself carries no script): the browser writes each chart's laid
# out size into its figure, where --dump-dom shows it.
_PROBE = """<script>
for (const f of document.querySelectorAll('figure[data-chart]')) {
  const box = f.querySelector('svg').getBoundingClientRect();
  f.dataset.renderedWidth = box.width; f.dataset.renderedHeight = box.height;
}</script>"""


@pytest.fixture(scope="module")
def rendered(scenario, chromium, tmp_path_factory) -> tuple[Dom, Dom, Any]:
    """Report 2 (it has changes of every kind) as chromium rendered it, plain and with the size probe."""
    page = scenario.pages["run-2"]
    probed = tmp_path_factory.mktemp("probe") / "report.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    plain, sized = Dom(), Dom()
    plain.feed(dump_dom(chromium, page))
    sized.feed(dump_dom(chromium, probed))
    return plain, sized, scenario


def _value(value: Any) -> str:
    """A Parquet value as the page's data-value attribute must hold it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _expected_rows(scenario, page_table: str) -> list[dict[str, str]]:
    frame = scenario.tables["run-2"][PAGE_TABLES[page_table]]
    if page_table == "ownerless_teams":
        frame = frame[frame["ownership"].isin(["ownerless", "single-owner"])]
    if page_table == "teams_with_guests":
        frame = frame[frame["guests"] > 0]
    frame = frame.astype(object).where(frame.notna(), None)
    return [{c: _value(v) for c, v in row.items()} for row in frame.to_dict("records")]


def test_every_headline_number_is_in_the_dom(rendered):
    dom, _, scenario = rendered
    metrics = scenario.tables["run-2"]["metrics"]
    expected = dict(zip(metrics["metric"], metrics["value"], strict=True))
    assert set(dom.metrics) == set(expected)
    for name, shown in dom.metrics.items():
        for value, text in shown:
            assert int(value) == expected[name], name
            assert int(text.replace(",", "")) == expected[name], f"{name}: the page shows {text!r}"
    assert int(dom.metrics["changes.added"][0][0]) == 1


def test_every_table_row_is_in_the_dom(rendered):
    dom, _, scenario = rendered
    assert set(PAGE_TABLES) <= set(dom.tables)
    for name in PAGE_TABLES:
        expected = _expected_rows(scenario, name)
        table = dom.tables[name]
        assert table["rows"] == len(expected), name
        got = [{c: value for c, (value, _) in row.items()} for row in table["cells"]]
        assert sorted(got, key=repr) == sorted(expected, key=repr), name
        assert expected, f"{name} is empty in the scenario: the check would prove nothing"


def test_the_embedded_json_matches_the_tables(rendered):
    dom, _, scenario = rendered
    data = json.loads(dom.json_text)
    assert data["meta"]["run_id"] == "run-2" and data["meta"]["previous_run_id"] == "run-1"
    for name, frame in scenario.tables["run-2"].items():
        if name == "users_snapshot":
            continue
        clean = frame.astype(object).where(frame.notna(), None)
        records = json.loads(clean.to_json(orient="records"))
        assert data["tables"][name] == records, name


def test_every_chart_is_an_inline_svg_with_a_rendered_size(rendered):
    plain, sized, scenario = rendered
    assert set(plain.charts) == CHARTS
    for name, chart in plain.charts.items():
        assert chart["svg"] == 1 and chart["shapes"] > 10, f"{name}: {chart}"
        assert sized.charts[name]["width"] > 200 and sized.charts[name]["height"] > 50, f"{name}: not laid out"
    skus = scenario.tables["run-2"]["licence_utilisation"]
    series = plain.charts["licence_utilisation"]["series"]
    assert series["labels"] == list(skus["sku_part_number"])
    assert series["series"] == {"enabled": list(skus["enabled_units"]), "consumed": list(skus["consumed_units"])}
    changes = plain.charts["user_changes"]["series"]["series"]["users"]
    assert changes == [1, 1, 1]


def test_names_with_markup_stay_text(rendered):
    dom, _, scenario = rendered
    names = [text for row in dom.tables["user_changes"]["cells"] for col, (_, text) in row.items()
             if col == "displayName"]  # fmt: skip
    assert scenario.added_name in names and scenario.escape_name in names
    # The renamed member's <b> must not have become an element anywhere outside the charts' own markup.
    assert "b" not in dom.tags
    changes = json.loads(dom.json_text)["tables"]["user_changes"]
    assert scenario.escape_name in {row["displayName"] for row in changes}


def test_the_page_is_self_contained(rendered):
    dom, _, scenario = rendered
    assert dom.external == []
    source = scenario.pages["run-2"].read_text(encoding="utf-8")
    assert "<script src" not in source and "<link" not in source and "@import" not in source
    assert "<script>" not in source, "the report must not run code"
    assert not re.search(r"https?://(?!www\.w3\.org/)", source), "the page references a network address"

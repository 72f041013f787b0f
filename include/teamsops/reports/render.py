"""One self-contained HTML report: inline CSS, inline SVG charts, no script, no font, no network.

Everything a reader sees is also machine-readable, so tests (and scripts) can check the page against the tables:

* every headline number: ``<span data-metric="waste.guest.licences" data-value="3">3</span>``;
* every table: ``<table data-table="licence_utilisation" data-rows="12">`` with one ``<tr data-row>`` per row and
  ``<td data-col="consumed_units" data-value="40">`` per cell (``data-value`` is the raw value, ``""`` for none);
* every chart: ``<figure data-chart="licence_utilisation" data-series='{...}'>`` holding the inline ``<svg>``;
* all of it at once: ``<script type="application/json" id="report-data">`` (data, not code: browsers do not run it;
  tables cut at ``max_rows`` like the page, ``row_counts`` gives every table's full size).

Long lists are cut at ``max_rows`` rows in the page (``data-rows`` still gives the full count, and the page says
which Parquet file holds every row); headline numbers are always computed over all rows.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from teamsops.reports.charts import bar_chart

__all__ = ["DEFAULT_MAX_ROWS", "render_report"]

DEFAULT_MAX_ROWS = 1000

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
header{background:#1a365d;color:#fff;padding:1.2rem 2rem}header h1{margin:0 0 .3rem;font-size:1.5rem}
header p{margin:.1rem 0;opacity:.9;font-size:.9rem}nav{padding:.6rem 2rem;background:#e2e8f0;font-size:.9rem}
nav a{margin-right:1rem;color:#2a4365}main{padding:1rem 2rem 3rem}section{margin:1.5rem 0}
h2{border-bottom:2px solid #cbd5e0;padding-bottom:.2rem}.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:.6rem .9rem;min-width:11rem}
.card .value{display:block;font-size:1.5rem;font-weight:600}.card .label{font-size:.8rem;color:#4a5568}
table{border-collapse:collapse;background:#fff;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #e2e8f0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#edf2f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flag td{background:#fff5f5}figure{margin:.5rem 0;background:#fff;border:1px solid #e2e8f0;padding:.5rem;
max-width:820px}figure svg{width:100%;height:auto}.note{color:#4a5568;font-size:.85rem}
"""

# (section id, heading, explanation, [(table, caption, columns to show)])
_SECTIONS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("licences", "Licence utilisation",
     "Per subscribed SKU: licences bought (enabled units) against licences assigned (consumed units).",
     (("licence_utilisation", "Licences per SKU"),)),
    ("waste", "Licence waste",
     "Licences assigned to disabled accounts or to guests: candidates to reclaim.",
     (("licence_waste", "Licences on disabled accounts and guests"),)),
    ("ownership", "Team ownership",
     "Teams without an owner cannot be managed by their members; teams with a single owner lose theirs with one "
     "departure.", (("ownerless_teams", "Ownerless and single-owner teams"),)),
    ("guests", "Guests in teams", "Teams that include guests, and which guests are in which team.",
     (("teams_with_guests", "Teams with guests"), ("team_guests", "Guests by team"))),
    ("apps", "App inventory",
     "Teams apps installed by users (personal scope). Custom apps (distribution method organization or sideloaded, "
     "i.e. not from the Teams store) are flagged.", (("app_inventory", "Installs per app"),)),
    ("roles", "Privileged role holders",
     "Assignments of the directory roles the offboarding safeguards protect.",
     (("privileged_role_holders", "Privileged role assignments"),)),
    ("changes", "Changes since the previous run", "Users added, disabled and removed since the previous report.",
     (("user_changes", "User changes"),)),
)  # fmt: skip

_CARDS = ("users.total", "users.disabled", "users.guests", "licences.enabled_units", "licences.consumed_units",
          "waste.total.licences", "teams.total", "teams.ownerless", "teams.single_owner", "teams.with_guests",
          "apps.custom", "roles.privileged_users", "changes.added", "changes.disabled", "changes.removed")


def _value(value: Any) -> Any:
    """A cell as JSON data: None for missing, plain int / float / bool / str otherwise."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _attr_value(value: Any) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _table(name: str, caption: str, frame: pd.DataFrame, source: str, max_rows: int,
           flag: str | None = None) -> str:  # fmt: skip
    esc = html.escape
    rows = _records(frame)
    shown = rows[:max_rows]
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = []
    for row in shown:
        cells = "".join(
            f'<td data-col="{esc(c)}" data-value="{esc(_attr_value(v))}"'
            f'{" class=num" if isinstance(v, int | float) and not isinstance(v, bool) else ""}>{esc(_text(v))}</td>'
            for c, v in row.items())
        flagged = ' class="flag"' if flag and row.get(flag) else ""
        body.append(f"<tr data-row{flagged}>{cells}</tr>")
    note = ""
    if len(rows) > len(shown):
        note = (f'<p class="note" data-truncated="{esc(name)}">Showing the first {len(shown):,} of {len(rows):,} '
                f"rows; every row is in {esc(source)}.</p>")
    if not rows:
        body.append(f'<tr><td colspan="{max(len(frame.columns), 1)}" class="note">none</td></tr>')
    return (f'<table data-table="{esc(name)}" data-rows="{len(rows)}" data-source="{esc(source)}">'
            f"<caption>{esc(caption)} ({len(rows):,})</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def _figure(chart_id: str, labels: Sequence[Any], series: dict[str, Sequence[Any]], title: str,
            xlabel: str) -> str:  # fmt: skip
    data = {"labels": [str(x) for x in labels], "series": {k: [_value(v) for v in vs] for k, vs in series.items()}}
    svg = bar_chart(chart_id, data["labels"], data["series"], title=title, xlabel=xlabel)
    return (f'<figure data-chart="{html.escape(chart_id)}" data-series="{html.escape(json.dumps(data))}">{svg}'
            f"<figcaption class=note>{html.escape(title)}</figcaption></figure>")


def _charts(tables: dict[str, pd.DataFrame], metrics: dict[str, int]) -> dict[str, str]:
    skus, waste, teams = tables["licence_utilisation"], tables["licence_waste"], tables["team_overview"]
    apps = tables["app_inventory"]
    by_sku = (waste.assign(disabled=waste["disabled"].astype(bool), guest=waste["guest"].astype(bool))
              .groupby("sku_part_number")[["disabled", "guest"]].sum().sort_index())  # fmt: skip
    per_role = tables["privileged_role_holders"].groupby("role_name")["principal_id"].count().sort_index()
    with_guests = teams[teams["guests"] > 0].sort_values(["guests", "displayName"], ascending=[False, True])
    return {
        "licences": _figure("licence_utilisation", list(skus["sku_part_number"]),
                            {"enabled": list(skus["enabled_units"]), "consumed": list(skus["consumed_units"])},
                            "Licences per SKU: enabled vs consumed", "licences"),
        "waste": _figure("licence_waste", list(by_sku.index),
                         {"on disabled accounts": [int(v) for v in by_sku["disabled"]],
                          "on guests": [int(v) for v in by_sku["guest"]]},
                         "Licences on disabled accounts and guests, per SKU", "licences"),
        "ownership": _figure("team_ownership", ["ownerless", "single owner", "two or more owners"],
                             {"teams": [metrics["teams.ownerless"], metrics["teams.single_owner"],
                                        metrics["teams.total"] - metrics["teams.ownerless"]
                                        - metrics["teams.single_owner"]]},
                             "Teams by number of owners", "teams"),
        "guests": _figure("guests_by_team", list(with_guests["displayName"]), {"guests": list(with_guests["guests"])},
                          "Guests per team (teams with the most guests first)", "guests"),
        "apps": _figure("app_installs", [f"{n}{' (custom)' if c else ''}" for n, c in
                                         zip(apps["app_display_name"], apps["custom"].astype(bool), strict=True)],
                        {"installs": list(apps["installs"])}, "Installs per app (custom apps marked)", "installs"),
        "roles": _figure("privileged_roles", list(per_role.index), {"assignments": [int(v) for v in per_role]},
                         "Privileged role assignments per role", "assignments"),
        "changes": _figure("user_changes", ["added", "disabled", "removed"],
                           {"users": [metrics["changes.added"], metrics["changes.disabled"],
                                      metrics["changes.removed"]]},
                           "Users changed since the previous run", "users"),
    }


def render_report(tables: dict[str, pd.DataFrame], meta: dict[str, Any], sources: dict[str, str], *,
                  max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """The report page.

    :param tables: the report tables (:func:`teamsops.reports.compute.compute_all`).
    :param meta: tenant_id, organization, run_id, finished_at, mode, built_at, previous_run_id.
    :param sources: table name -> where its Parquet file is (shown when a list is cut).
    """
    esc = html.escape
    metrics = {m: int(v) for m, v in zip(tables["metrics"]["metric"], tables["metrics"]["value"], strict=True)}
    labels = dict(zip(tables["metrics"]["metric"], tables["metrics"]["label"], strict=True))
    teams = tables["team_overview"]
    shown = {
        **tables,
        "ownerless_teams": teams[teams["ownership"].isin(["ownerless", "single-owner"])]
        .sort_values(["owners", "displayName"]),
        "teams_with_guests": teams[teams["guests"] > 0].sort_values(["guests", "displayName"],
                                                                    ascending=[False, True]),
    }
    source_of = {**sources, "ownerless_teams": sources.get("team_overview", ""),
                 "teams_with_guests": sources.get("team_overview", "")}
    charts = _charts(tables, metrics)
    cards = "".join(f'<div class="card"><span class="value" data-metric="{esc(m)}" data-value="{metrics[m]}">'
                    f'{metrics[m]:,}</span><span class="label">{esc(labels[m])}</span></div>' for m in _CARDS)
    all_metrics = "".join(f'<tr><td>{esc(labels[m])}</td><td class="num" data-metric="{esc(m)}" '
                          f'data-value="{v}">{v:,}</td></tr>' for m, v in metrics.items())
    sections = []
    for section_id, heading, text, parts in _SECTIONS:
        baseline = ""
        if section_id == "changes":
            previous = meta.get("previous_run_id")
            baseline = (f'<p class="note" data-previous-run="{esc(previous)}">Compared with sync run '
                        f"{esc(previous)}.</p>" if previous else
                        '<p class="note" data-previous-run="">No previous run to compare with yet: this run is the '
                        "baseline.</p>")
        flags = {"app_inventory": "custom", "licence_waste": "disabled"}
        body = "".join(_table(name, caption, shown[name], source_of.get(name, ""), max_rows, flags.get(name))
                       for name, caption in parts)
        sections.append(f'<section id="{section_id}"><h2>{esc(heading)}</h2><p class="note">{esc(text)}</p>'
                        f"{baseline}{charts[section_id]}{body}</section>")
    listed = {name: frame for name, frame in tables.items() if name != "users_snapshot"}
    data = {"meta": meta, "metrics": metrics, "max_rows": max_rows,
            "row_counts": {name: len(frame) for name, frame in listed.items()},
            "tables": {name: _records(frame.head(max_rows)) for name, frame in listed.items()}}
    payload = json.dumps(data, sort_keys=True, default=str)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = f"Microsoft 365 report: {meta.get('organization') or meta['tenant_id']}"
    nav = "".join(f'<a href="#{s[0]}">{esc(s[1])}</a>' for s in (("summary", "Summary"), *_SECTIONS))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f'<body data-tenant-id="{esc(meta["tenant_id"])}" data-run-id="{esc(meta["run_id"])}">'
        f"<header><h1>{esc(title)}</h1><p>Tenant {esc(meta['tenant_id'])} · sync run {esc(meta['run_id'])} "
        f"({esc(str(meta.get('mode') or ''))}, finished {esc(str(meta.get('finished_at') or ''))})</p>"
        f"<p>Report built {esc(str(meta.get('built_at') or ''))}</p></header><nav>{nav}</nav><main>"
        f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div>'
        f'<details><summary>All figures</summary><table data-table="metrics-all"><tbody>{all_metrics}</tbody>'
        f"</table></details></section>{''.join(sections)}</main>"
        f'<script type="application/json" id="report-data">{payload}</script></body></html>'
    )

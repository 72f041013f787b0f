"""Charts as inline SVG (matplotlib, Agg): the report stays one self-contained file that renders offline.

Text is drawn as paths (matplotlib's default ``svg.fonttype = "path"``) with matplotlib's bundled DejaVu Sans, so the
charts look the same on a machine without fonts and in any browser. The SVG ids are prefixed per chart, because
several SVGs inline in one page would otherwise repeat ids (glyphs, clip paths) and resolve each other's references.
Output is deterministic (fixed hash salt, no date), so rebuilding a report from the same data gives the same file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

__all__ = ["bar_chart"]

_COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#c53030")
_ID = re.compile(r'id="([^"]+)"')
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_MAX_BARS = 25


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "teamsops-report", "font.family": "DejaVu Sans",
                         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})  # fmt: skip
    return plt


def bar_chart(chart_id: str, labels: Sequence[str], series: dict[str, Sequence[float]], *, title: str,
              xlabel: str = "", max_bars: int = _MAX_BARS) -> str:
    """A horizontal (grouped) bar chart as an inline ``<svg>`` element.

    :param labels: one per bar group (the first ``max_bars`` are drawn; the tables hold every row).
    :param series: name -> one value per label; several series are drawn side by side.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    labels = [str(label) for label in labels][:max_bars]
    count = max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.32 * count * max(1, len(series) * 0.7)))
    try:
        height = 0.8 / max(len(series), 1)
        for index, (name, values) in enumerate(series.items()):
            positions = [i + (index - (len(series) - 1) / 2) * height for i in range(len(labels))]
            ax.barh(positions, list(values)[: len(labels)], height=height, label=name,
                    color=_COLOURS[index % len(_COLOURS)])
        ax.set_yticks(range(len(labels)), labels)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts of licences, teams, users
        ax.invert_yaxis()
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        if not labels:
            ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        if len(series) > 1:
            ax.legend(loc="lower right", frameon=False)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    return _inline(buffer.getvalue(), chart_id)


def _inline(svg: str, chart_id: str) -> str:
    """The ``<svg>`` element alone (no XML prolog, DOCTYPE or RDF metadata), its ids and references prefixed with
    ``chart_id``."""
    svg = _METADATA.sub("", svg[svg.index("<svg"):])  # RDF about the drawing tool: noise in a report
    prefix = f"{chart_id}-"
    svg = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = svg.replace('href="#', f'href="#{prefix}').replace("url(#", f"url(#{prefix}")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{chart_id}" ', 1)

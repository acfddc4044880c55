"""The HTML pages: the report (``report.html``) and the busyness map, each opening with the
header (``geo_busyness.report_header``) and embedding plotly.js once (no CDN: they open offline)."""

from __future__ import annotations

import html
import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from geo_busyness.report_header import HEADER_CSS, header_html

from .outputs import with_caption

_PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1rem auto;
max-width:90rem;color:#222;line-height:1.4;padding:0 1rem}
h2{font-size:1.15rem;margin:1.5rem 0 .3rem;border-bottom:1px solid #ddd}
.gb-pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.gb-note{font-size:.92rem;color:#444;max-width:60rem}
"""
_BAR_COLOUR = "#1f77b4"
_CONFIG = {"displaylogo": False, "responsive": True}

#: What SHAP and permutation importance measure, and why their rankings differ.
WHY_THEY_DIFFER = (
    "SHAP is the explanation: how much each feature moved the learned model's prediction, on"
    " average over the sampled test rows. Permutation importance, beside it, is how much the"
    " test-window loss (Poisson deviance) grows when a feature is shuffled: a feature the model"
    " leans on can cost little when shuffled if another feature carries the same information,"
    " so the two rankings differ."
)

#: Report sections: (heading, figure names, side by side, note above the figures).
SECTIONS = (
    (
        "Forecast against actuals",
        ("forecast_timeline_figure", "predicted_vs_actual_figure"),
        False,
        "",
    ),
    (
        "Errors: model beside the baseline",
        ("error_by_hour_figure", "error_by_cell_figure"),
        True,
        "",
    ),
    ("Explanation", ("shap_importance", "feature_importance_figure"), True, WHY_THEY_DIFFER),
    ("Demand shape in the train window", ("busyness_by_hour_of_week_figure",), False, ""),
)


def shap_importance_figure(shap_summary: dict[str, Any], caption: str | None = None) -> go.Figure:
    """Mean |SHAP value| per feature (largest on top), from ``shap_summary``; for a statistical
    baseline, its statement in the title and no bars."""
    features = shap_summary.get("features") or []
    if "features" not in shap_summary:
        raise ValueError(
            f"shap_summary lacks 'features': expected the explain_test_window node's summary"
            f" (keys found: {sorted(shap_summary)})"
        )
    ordered = sorted(features, key=lambda row: row["mean_abs_contribution"])
    figure = go.Figure(
        go.Bar(
            x=[row["mean_abs_contribution"] for row in ordered],
            y=[row["feature"] for row in ordered],
            orientation="h",
            marker_color=_BAR_COLOUR,
            name="mean |SHAP|",
        )
    )
    title = "SHAP: mean contribution to the prediction, test window"
    if not ordered:
        title = "SHAP: " + str(shap_summary.get("statement", "no learned feature contributions"))
    return figure.update_layout(
        title=with_caption(title, caption),
        xaxis_title=f"mean |SHAP value| ({shap_summary.get('scale') or 'no learned model'})",
        height=max(350, 40 * len(ordered) + 120),
    )


def report_page(context: dict[str, Any], shap_summary: dict[str, Any], **figures: go.Figure) -> str:
    """``report.html``: the header, then every figure in its section (``SECTIONS``), the SHAP
    figure beside the permutation importance with why they differ."""
    caption = None  # the header says it once; the figures keep theirs in their JSON files
    drawn = {**figures, "shap_importance": shap_importance_figure(shap_summary, caption)}
    missing = [name for name in _names() if name not in drawn]
    if missing:
        raise ValueError(f"report_page lacks figures {missing}: expected {list(_names())}")
    parts, first = [], True
    for heading, names, paired, note in SECTIONS:
        if "shap_importance" in names and not shap_summary.get("features"):
            parts.append(_statement_section(heading, shap_summary))
            continue
        blocks = []
        for name in names:
            blocks.append(f'<div id="{name}">{_figure_div(drawn[name], first)}</div>')
            first = False
        body = f'<div class="gb-pair">{"".join(blocks)}</div>' if paired else "".join(blocks)
        text = f'<p class="gb-note">{html.escape(note)}</p>' if note else ""
        parts.append(f"<section><h2>{html.escape(heading)}</h2>{text}{body}</section>")
    return _page("geo-busyness report", context, "geo-busyness: test-window report", parts)


def map_page(context: dict[str, Any], figure: go.Figure) -> str:
    """The busyness map's page: the header, then the map (plotly.js inline; the hexagons'
    GeoJSON written once and shared by every map trace, see ``map_script``)."""
    return _page(
        "geo-busyness map",
        context,
        "geo-busyness: busyness map",
        [
            '<p class="gb-note">Street tiles come from OpenStreetMap when this page is online;'
            " offline the hexagons draw on a blank background. Drag the slider to change the"
            " hour; the colour scale is logarithmic (many quiet cells, a few busy ones) and clipped"
            " at the 99th percentile; hover a cell for its value.</p>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            f'<div id="{MAP_DIV}" style="height:680px;width:100%"></div>',
            f'<script type="text/javascript">{map_script(figure)}</script>',
        ],
    )


#: The map's element id on its page.
MAP_DIV = "busyness-map"


def map_spec(figure: go.Figure) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The figure as plotly JSON with the GeoJSON taken out of its traces, and that GeoJSON
    (None if no trace has one). Every trace must share the same one."""
    spec = json.loads(pio.to_json(figure, validate=False))
    shapes = [trace.pop("geojson") for trace in spec["data"] if "geojson" in trace]
    if any(shape != shapes[0] for shape in shapes[1:]):
        raise ValueError("map_page expects every map trace to share one GeoJSON")
    return spec, (shapes[0] if shapes else None)


def map_script(figure: go.Figure) -> str:
    """The script drawing the map: the GeoJSON once, put back into each map trace in the
    browser, then the figure, then its frames (the slider's hours; nothing auto-plays)."""
    spec, geojson = map_spec(figure)
    compact = {"separators": (",", ":")}
    frames = spec.pop("frames", [])
    return (
        f"(function(){{var geo={json.dumps(geojson, **compact)};"
        f"var fig={json.dumps(spec, **compact)};var frames={json.dumps(frames, **compact)};"
        'fig.data.forEach(function(t){if(t.type==="choroplethmap"){t.geojson=geo;}});'
        f'Plotly.newPlot("{MAP_DIV}",fig.data,fig.layout,{json.dumps(_CONFIG)})'
        f'.then(function(){{return Plotly.addFrames("{MAP_DIV}",frames);}});}})();'
    )


def _statement_section(heading: str, shap_summary: dict[str, Any]) -> str:
    """The explanation section of a statistical baseline: why there is nothing to draw."""
    statement = shap_summary.get("statement") or "The chosen forecaster has no learned features."
    return (
        f"<section><h2>{html.escape(heading)}</h2>"
        f'<p class="gb-note">{html.escape(statement)}</p></section>'
    )


def _names() -> tuple[str, ...]:
    return tuple(name for _, names, _, _ in SECTIONS for name in names)


def _figure_div(figure: go.Figure, with_plotlyjs: bool, height: str = "520px") -> str:
    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=with_plotlyjs,
        default_height=height,
        config=_CONFIG,
        auto_play=False,
    )


def _page(title: str, context: dict[str, Any], heading: str, parts: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{HEADER_CSS}{_PAGE_CSS}</style></head>"
        f"<body>{header_html(context, heading)}\n" + "\n".join(parts) + "\n</body></html>\n"
    )

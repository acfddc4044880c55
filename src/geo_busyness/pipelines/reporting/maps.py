"""H3 hexagons as plain plotly polygons on lon/lat axes: no map tiles, no topojson, no network.

Plotly's geo and map traces fetch their base layers from a CDN, so an HTML file that uses them is
blank offline. Filled ``scatter`` polygons on cartesian axes draw the same hexagons anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

#: Colour scale of every busyness map (sequential; light = quiet).
BUSYNESS_COLORSCALE = "YlOrRd"


def hexagon_outline(cell: str) -> tuple[list[float], list[float]]:
    """Closed outline (longitudes, latitudes) of one H3 cell given by its hexadecimal name."""
    boundary = h3.cell_to_boundary(cell)
    lats = [lat for lat, _ in boundary]
    lons = [lon for _, lon in boundary]
    return lons + lons[:1], lats + lats[:1]


def hexagon_traces(
    cells: Sequence[str],
    values: np.ndarray,
    *,
    value_label: str,
    cmin: float,
    cmax: float,
    colorscale: str = BUSYNESS_COLORSCALE,
    hover_extra: Sequence[str] | None = None,
    show_scale: bool = True,
) -> list[go.Scatter]:
    """One filled polygon trace per cell, coloured by its value, plus one marker trace at the
    cell centres that carries the colour bar and the hover text (fills hover poorly)."""
    values = np.asarray(values, dtype=float)
    if len(cells) != len(values):
        raise ValueError(f"{len(cells)} cells but {len(values)} values: expected one per cell")
    span = cmax - cmin if cmax > cmin else 1.0
    colours = sample_colorscale(colorscale, list(np.clip((values - cmin) / span, 0.0, 1.0)))
    traces: list[go.Scatter] = []
    centres_lon, centres_lat = [], []
    for cell, colour in zip(cells, colours, strict=True):  # one polygon per distinct cell
        lons, lats = hexagon_outline(cell)
        traces.append(
            go.Scatter(
                x=lons,
                y=lats,
                mode="lines",
                fill="toself",
                fillcolor=colour,
                line={"color": "rgba(255,255,255,0.9)", "width": 0.6},
                hoverinfo="skip",
                showlegend=False,
                name=cell,
            )
        )
        lat, lon = h3.cell_to_latlng(cell)
        centres_lat.append(lat)
        centres_lon.append(lon)
    extra = list(hover_extra) if hover_extra is not None else [""] * len(cells)
    traces.append(
        go.Scatter(
            x=centres_lon,
            y=centres_lat,
            mode="markers",
            marker={
                "size": 8,
                "opacity": 0,
                "color": values,
                "cmin": cmin,
                "cmax": cmax,
                "colorscale": colorscale,
                "showscale": show_scale,
                "colorbar": {"title": {"text": value_label}},
            },
            text=[
                f"{cell}<br>{value_label}: {value:.2f}{more}"
                for cell, value, more in zip(cells, values, extra, strict=True)
            ],
            hoverinfo="text",
            showlegend=False,
            name=value_label,
        )
    )
    return traces


def equal_aspect(figure: go.Figure, latitudes: np.ndarray, axis_suffixes: Sequence[str]) -> None:
    """Lon on x, lat on y, with one km the same length on both axes (at the mean latitude)."""
    ratio = 1.0 / max(np.cos(np.radians(float(np.mean(latitudes)))), 1e-6)
    for suffix in axis_suffixes:
        figure.layout[f"xaxis{suffix}"].update(title_text="longitude", showgrid=False)
        figure.layout[f"yaxis{suffix}"].update(
            title_text="latitude",
            showgrid=False,
            scaleanchor=f"x{suffix}",
            scaleratio=ratio,
        )


def polygon_traces(figure: go.Figure) -> list[go.Scatter]:
    """The hexagon polygons of a figure drawn by ``hexagon_traces``."""
    return [trace for trace in figure.data if getattr(trace, "fill", None) == "toself"]

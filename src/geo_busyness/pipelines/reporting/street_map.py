"""The busyness map on real streets: H3 hexagons as MapLibre ``choroplethmap`` traces over
OpenStreetMap tiles, with an hour slider.

The tiles are fetched by the reader's browser; without network the hexagons still draw on a
blank background: the style is plotly.js's built-in ``white-bg`` and the street tiles a raster
layer below the traces (with the ``open-street-map`` style itself, headless Chromium offline
drew no hexagons at zoom 8-11, only at 13). The file stays small for thousands of cells: the
geometry is one compact GeoJSON (rounded coordinates, written once per page by
``page.map_page``) and each hour's frame carries values only.
"""

from __future__ import annotations

from collections.abc import Sequence

import h3
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from .maps import BUSYNESS_COLORSCALE

#: Colour-scale limits: quantiles of the values over every hour and panel, so one busy cell
#: does not wash out the rest.
_CLIP = (0.0, 0.99)
#: Coordinate decimals in the GeoJSON: 5 is about 1 m, far below a resolution-7..9 hexagon.
COORDINATE_DECIMALS = 5
#: Basemap: plotly.js's built-in blank style (nothing fetched) and OpenStreetMap's raster tiles
#: as a layer below the hexagons (carto's styles are fetched as JSON first: offline, no map).
MAP_STYLE = "white-bg"
STREET_TILES = {
    "sourcetype": "raster",
    "source": ["https://tile.openstreetmap.org/{z}/{x}/{y}.png"],
    "sourceattribution": "© OpenStreetMap contributors",
    "below": "traces",
}
_MAP_HEIGHT = 640
#: The part of one map the cells fill (px): a map is about 600 x 370 px in a 1,400 px page.
_MAP_PIXELS = (480, 300)


def cells_geojson(cells: Sequence[str], decimals: int = COORDINATE_DECIMALS) -> dict:
    """A FeatureCollection of the cells' hexagons, each feature's ``id`` its cell name.

    One loop over distinct cells: h3 has no vectorised boundary call (a city has thousands of
    cells, not millions of rows)."""
    features = []
    for cell in cells:
        ring = np.round(np.asarray(h3.cell_to_boundary(cell))[:, ::-1], decimals)  # lon, lat
        closed = np.vstack([ring, ring[:1]]).tolist()
        features.append({"type": "Feature", "id": cell, "geometry": _polygon(closed)})
    return {"type": "FeatureCollection", "features": features}


def _polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def robust_range(values: np.ndarray, quantiles: tuple[float, float] = (0.02, 0.98)) -> tuple:
    """Colour-scale limits clipped at the given quantiles, so one busy cell does not wash out
    the rest; never an empty range (a flat map gets [low, low + 1])."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(q) for q in np.quantile(finite, quantiles))
    if high <= low:
        high = float(finite.max()) if finite.max() > low else low + 1.0
    return low, high


def map_view(cells: Sequence[str]) -> tuple[dict[str, float], float]:
    """Centre (of the cells' bounding box) and zoom that fit the cells into one of two
    side-by-side maps of about ``_MAP_PIXELS`` (web mercator: at zoom z, 512 * 2**z px span 360
    degrees of longitude; a degree of latitude is 1 / cos(latitude) times longer)."""
    centres = np.asarray([h3.cell_to_latlng(cell) for cell in cells])
    lat, lon = centres[:, 0], centres[:, 1]
    middle = (lat.min() + lat.max()) / 2
    width, height = _MAP_PIXELS
    stretch = 1.0 / max(np.cos(np.radians(middle)), 0.1)
    pixels_per_degree = min(
        width / max(float(np.ptp(lon)), 1e-3), height / max(float(np.ptp(lat)) * stretch, 1e-3)
    )
    zoom = float(np.clip(np.log2(pixels_per_degree * 360.0 / 512.0), 2.0, 15.0))
    return {"lat": float(middle), "lon": float((lon.min() + lon.max()) / 2)}, round(zoom, 2)


def log_colorscale(zmax: float, steps: int = 12) -> list[list]:
    """``BUSYNESS_COLORSCALE`` laid out so that the colour follows log1p(value) on 0..``zmax``:
    counts are skewed (many quiet cells, a few busy ones), and the values stay plain in the
    file and the hover (no second, transformed copy per frame)."""
    shares = np.linspace(0.0, 1.0, steps)
    positions = np.clip(np.expm1(shares * np.log1p(zmax)) / zmax, 0.0, 1.0)
    positions[-1] = 1.0  # plotly wants the ends exact
    colours = sample_colorscale(BUSYNESS_COLORSCALE, list(shares))
    return [[float(position), colour] for position, colour in zip(positions, colours, strict=True)]


def hourly_values(
    frame: pd.DataFrame, cells: Sequence[str], hours: Sequence[pd.Timestamp], column: str
) -> np.ndarray:
    """``column`` as an hours x cells array (cells absent in an hour: 0, as in a dense panel)."""
    table = frame.pivot_table(index="hour", columns="h3_cell", values=column, aggfunc="sum")
    return table.reindex(index=list(hours), columns=list(cells)).fillna(0.0).to_numpy(float)


def street_map_figure(
    cells: Sequence[str],
    hours: Sequence[pd.Timestamp],
    panels: dict[str, np.ndarray],
    *,
    labels: Sequence[str],
    active: int,
    title: str,
    value_label: str = "events",
    decimals: int = 2,
) -> go.Figure:
    """One map per panel (e.g. actual, predicted), side by side on one colour scale from 0 to
    the values' 99th percentile over every hour and panel, its colours following log1p of the
    value (``log_colorscale``). A slider over ``hours`` (``labels`` name them; ``active`` is
    shown first).

    ``panels`` maps a panel title to an hours x cells array of values."""
    if len(labels) != len(hours):
        raise ValueError(f"{len(hours)} hours but {len(labels)} slider labels: expected one each")
    for name, values in panels.items():
        if values.shape != (len(hours), len(cells)):
            raise ValueError(
                f"map panel '{name}' has shape {values.shape}: expected (hours, cells) ="
                f" ({len(hours)}, {len(cells)})"
            )
    geojson = cells_geojson(cells)
    rounded = {name: np.round(values, decimals) for name, values in panels.items()}
    _, zmax = robust_range(np.concatenate([values.ravel() for values in rounded.values()]), _CLIP)
    zmax = max(zmax, 1.0)
    centre, zoom = map_view(cells)
    width = 1.0 / len(panels)
    traces, layout = [], {}
    for index, (name, values) in enumerate(rounded.items()):
        subplot = "map" if index == 0 else f"map{index + 1}"
        traces.append(
            go.Choroplethmap(
                geojson=geojson,
                locations=list(cells),
                z=values[active],
                zmin=0.0,
                zmax=zmax,
                colorscale=log_colorscale(zmax),
                marker={"opacity": 0.7, "line": {"width": 0.4, "color": "white"}},
                showscale=index == len(panels) - 1,
                colorbar={
                    "title": {"text": f"{value_label}<br>(log colours;<br>darkest >= {zmax:.3g})"}
                },
                hovertemplate=f"%{{location}}<br>{name}: %{{z}} {value_label}<extra></extra>",
                subplot=subplot,
                name=name,
            )
        )
        layout[subplot] = {
            "style": MAP_STYLE,
            "layers": [STREET_TILES],
            "center": centre,
            "zoom": zoom,
            "domain": {"x": [index * width + 0.01, (index + 1) * width - 0.01], "y": [0, 0.93]},
        }
    frames = [
        go.Frame(
            name=label,
            data=[go.Choroplethmap(z=values[step]) for values in rounded.values()],
            traces=list(range(len(panels))),
        )
        for step, label in enumerate(labels)
    ]
    figure = go.Figure(data=traces, frames=frames)
    figure.update_layout(
        **layout,
        title=title,
        height=_MAP_HEIGHT,
        margin={"l": 10, "r": 10, "t": 90, "b": 90},
        annotations=[
            {
                "text": f"<b>{name}</b>",
                "x": (index + 0.5) * width,
                "y": 0.965,
                "xref": "paper",
                "yref": "paper",
                "showarrow": False,
            }
            for index, name in enumerate(panels)
        ],
        sliders=[_slider(labels, active)],
    )
    return figure


def _slider(labels: Sequence[str], active: int) -> dict:
    """A slider whose steps show one frame each, drawn at once (map traces need a redraw)."""
    animate = {
        "mode": "immediate",
        "frame": {"duration": 0, "redraw": True},
        "transition": {"duration": 0},
    }
    return {
        "active": active,
        "currentvalue": {"prefix": "hour: "},
        "pad": {"t": 20},
        "x": 0.03,
        "len": 0.94,
        "y": 0,
        "yanchor": "top",
        "steps": [
            {"label": label, "method": "animate", "args": [[label], animate]} for label in labels
        ],
    }

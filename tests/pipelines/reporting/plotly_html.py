"""Read back what plotly wrote into an HTML file: the figures and the external sources."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import plotly.graph_objects as go

_NEW_PLOT = "Plotly.newPlot("


class _Sources(HTMLParser):
    """Collects every script/link/img/iframe source and the inline script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("src", "href"):
            if tag in ("script", "link", "img", "iframe") and values.get(key):
                self.sources.append(values[key])
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def parse_html(text: str) -> _Sources:
    """Parse an HTML page (raises on nothing: HTMLParser is lenient, so callers check content)."""
    parser = _Sources()
    parser.feed(text)
    parser.close()
    return parser


def figures_in(text: str) -> list[go.Figure]:
    """Every figure a ``Plotly.newPlot(id, data, layout, config)`` call in the page draws."""
    decoder = json.JSONDecoder()
    figures = []
    for script in parse_html(text).scripts:
        if not script.lstrip().startswith("window.PLOTLYENV"):  # skip the plotly.js bundle
            continue
        start = script.find(_NEW_PLOT)
        while start != -1:
            position = script.index(",", start) + 1  # skip the div id argument
            data, position = decoder.raw_decode(script, _skip_space(script, position))
            position = script.index(",", position) + 1
            layout, position = decoder.raw_decode(script, _skip_space(script, position))
            figures.append(go.Figure({"data": data, "layout": layout}))
            start = script.find(_NEW_PLOT, position)
    return figures


def _skip_space(text: str, position: int) -> int:
    while text[position].isspace():
        position += 1
    return position


def map_in(text: str) -> tuple[dict, dict, list]:
    """The GeoJSON, the figure and the frames of a busyness map page (``page.map_script``)."""
    decoder = json.JSONDecoder()
    (script,) = [s for s in parse_html(text).scripts if "var geo=" in s]
    found = []
    for name in ("geo", "fig", "frames"):
        start = script.index(f"var {name}=") + len(f"var {name}=")
        found.append(decoder.raw_decode(script, start)[0])
    return found[0], found[1], found[2]

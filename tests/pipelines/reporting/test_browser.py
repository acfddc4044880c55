"""The busyness map and the report page in a real headless browser, offline: the map draws its
hexagons (not a blank page) under the header. Skips only when chromium is missing and
REQUIRE_CHROMIUM is not set (CI sets it), like test_kedro_viz."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from geo_busyness.pipelines.reporting.page import map_page
from geo_busyness.pipelines.reporting.screenshots import chromium_binary, compact_png, screenshot
from geo_busyness.pipelines.reporting.street_map import street_map_figure
from geo_busyness.report_header import report_context
from tests.pipelines.reporting.reports import REPORT, WINDOWS

pytestmark = pytest.mark.slow  # a browser process: ~10 s


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    if chromium_binary() is None:
        message = (
            "CHROMIUM IS NOT INSTALLED: the map's browser check did not run. "
            "`.ci/run` installs it with apt-get; install Debian's `chromium` to run it here."
        )
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)


def _orange(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the busyness scale's middle (orange over a light background): the hexagons."""
    red, green, blue = (pixels[..., channel] for channel in range(3))
    return (red > 0.85) & (green > 0.45) & (green < 0.9) & (blue < 0.7) & (red - blue > 0.3)


@pytest.fixture(scope="module")
def map_picture(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """A 2,000-cell map page, drawn by chromium without network."""
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(50.45, -104.6, 9), 26))[:2000]
    hours = pd.date_range("2026-03-02", periods=3, freq="h", tz="UTC")
    values = np.full((3, len(cells)), 2.3)  # log1p(2.3) is half of log1p(10): orange
    values[:, ::2] = 0.0
    values[:, ::3] = 10.0
    figure = street_map_figure(
        cells,
        hours,
        {"actual": values, "predicted": values},
        labels=["a", "b", "c"],
        active=1,
        title="map",
    )
    folder = tmp_path_factory.mktemp("browser")
    page = folder / "busyness_map.html"
    page.write_text(map_page(report_context(REPORT, WINDOWS, "America/Regina"), figure))
    picture = screenshot(page, folder / "map.png", window=(1200, 1100))
    return image.imread(str(picture))[..., :3]


def test_the_map_draws_its_hexagons_offline(map_picture: np.ndarray) -> None:
    height = map_picture.shape[0]
    header, maps = map_picture[: height // 4], map_picture[height // 3 :]
    assert _orange(maps).mean() > 0.02, "no hexagons drawn: the map is blank"
    assert _orange(header).mean() < 0.001  # the header above is text, not map
    left, right = np.array_split(maps, 2, axis=1)
    assert _orange(left).mean() > 0.01 and _orange(right).mean() > 0.01  # actual, predicted


def test_a_screenshot_is_made_small_enough_for_the_docs(map_picture, tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    image.imsave(str(path), np.tile(map_picture, (2, 1, 1)))
    assert compact_png(path, max_bytes=150_000) <= 150_000

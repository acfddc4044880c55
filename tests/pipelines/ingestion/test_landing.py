"""A synthetic week dropped into a project's landing folder (data_generation/landing.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geo_busyness.pipelines.data_generation.landing import land_synthetic_batch
from geo_busyness.pipelines.data_generation.nodes import generate_recent_events
from geo_busyness.testing import make_project_copy
from tests.pipelines.ingestion.batches import tiny_parameters, tiny_week
from tests.pipelines.memory import TINY_GENERATION

TINY = {"data_generation": TINY_GENERATION}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project_copy(tmp_path_factory.mktemp("landing") / "project")


def test_a_week_lands_whole_under_its_batch_name(project: Path) -> None:
    path = land_synthetic_batch(project, 2, overrides=TINY)
    assert path == project / "data" / "01_raw" / "landing" / "synthetic_week_02.csv"
    assert [p.name for p in path.parent.iterdir()] == ["synthetic_week_02.csv"]  # nothing staged
    landed = pd.read_csv(path)
    assert len(landed) == len(tiny_week(2))
    times = pd.to_datetime(landed["courier_location_timestamp"], errors="coerce", format="ISO8601")
    start = pd.Timestamp(tiny_parameters()["data_generation"]["start"]) + pd.Timedelta(weeks=4 + 2)
    inside = times.between(start, start + pd.Timedelta(weeks=1), inclusive="left")
    assert inside.mean() > 0.98  # the rest: faults (unparsable or future times)


def test_week_0_is_the_generators_recent_week_and_weeks_share_no_order() -> None:
    params = tiny_parameters()
    recent, _ = generate_recent_events(
        params["data_generation"], params["data_processing"]["source_timezone"]
    )
    pd.testing.assert_frame_equal(tiny_week(0), recent)
    orders = [set(tiny_week(week)["order_number"]) for week in range(3)]
    assert not (orders[0] & orders[1]) and not (orders[1] & orders[2])


def test_a_scale_raises_the_weeks_demand() -> None:
    assert len(tiny_week(1, 1.5)) > 1.3 * len(tiny_week(1))


def test_a_negative_week_is_refused(project: Path) -> None:
    with pytest.raises(ValueError, match="week_index must be 0 or more"):
        land_synthetic_batch(project, -1, overrides=TINY)

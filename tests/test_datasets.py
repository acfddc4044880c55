"""geo_busyness.datasets: a failed save never leaves a truncated file where the last good one was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro.io import DatasetError, Version

from geo_busyness.datasets import (
    CachedDataset,
    CSVDataset,
    JSONDataset,
    ParquetDataset,
    PickleDataset,
    PlotlyHTMLDataset,
    PlotlyJSONDataset,
    TextDataset,
)


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this on purpose")


@pytest.mark.parametrize(
    ("dataset_type", "good", "bad"),
    [
        (ParquetDataset, pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [{"x": 1}, 3.5]})),
        (JSONDataset, {"rows": 3}, {"rows": object()}),
        (PickleDataset, {"model": [1, 2]}, {"model": Unpicklable()}),
        # The reporting datasets open the file before they write: a bad figure or text would
        # leave it empty. (kedro-viz previews the JSON figures; the HTML goes to MLflow.)
        (PlotlyJSONDataset, go.Figure(go.Bar(y=[1, 2])), object()),
        (PlotlyHTMLDataset, go.Figure(go.Bar(y=[1, 2])), object()),
        (TextDataset, "<p>report</p>", object()),
    ],
)
def test_failed_save_keeps_the_previous_file(tmp_path: Path, dataset_type, good, bad) -> None:
    path = tmp_path / "layer" / "output.bin"
    dataset = dataset_type(filepath=str(path))
    dataset.save(good)
    before = path.read_bytes()

    with pytest.raises(DatasetError):
        dataset.save(bad)

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["output.bin"], (
        "a partial file was left"
    )


def test_round_trips_and_versions_like_kedro_datasets(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    csv = CSVDataset(filepath=str(tmp_path / "t.csv"), save_args={"index": False})
    csv.save(frame)
    pd.testing.assert_frame_equal(csv.load(), frame, check_dtype=False)

    versioned = JSONDataset(filepath=str(tmp_path / "report.json"), version=Version(None, None))
    versioned.save({"run": 1})
    with pytest.raises(DatasetError):
        versioned.save({"run": object()})
    assert versioned.load() == {"run": 1}
    assert len(list((tmp_path / "report.json").iterdir())) == 1


def test_cached_dataset_keeps_what_it_saved_and_describes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "clean_events.parquet"
    cached = CachedDataset(
        dataset={"type": "geo_busyness.datasets.ParquetDataset", "filepath": str(path)}
    )
    frame = pd.DataFrame({"source_row": range(8), "courier_lat": [50.4] * 8})
    cached.save(frame)
    assert cached.load() is not frame  # copy_mode defaults to a copy; the catalog sets assign
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert str(cached._describe()["filepath"]) == str(path)  # kedro-viz shows this path
    assert cached.preview(nrows=3)["data"] == frame.head(3).to_numpy().tolist()

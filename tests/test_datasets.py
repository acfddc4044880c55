"""geo_busyness.datasets: a failed save never leaves a truncated file where the last good one was,
and the next save removes what a killed one left."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest
from kedro.io import DatasetError, Version

from geo_busyness.datasets import (
    CachedDataset,
    CSVDataset,
    JSONDataset,
    OptionalCSVDataset,
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


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_save_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    """Issue #23 item 7: a save killed mid-write (kill -9) leaves a staged ``*.partial`` file;
    the next save of that dataset removes it, and leaves saves still running alone."""
    path = tmp_path / "clean_events.parquet"
    host = socket.gethostname()
    dead = tmp_path / f"clean_events.parquet.{'a' * 32}.{_dead_pid()}@{host}.partial"
    old = tmp_path / f"clean_events.parquet.{'b' * 32}.partial"  # named before the pid was
    running = tmp_path / f"clean_events.parquet.{'c' * 32}.{os.getpid()}@{host}.partial"
    elsewhere = tmp_path / f"clean_events.parquet.{'d' * 32}.1@another-host.partial"
    for staged in (dead, old, running, elsewhere):
        staged.write_bytes(b"PAR1 truncated")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))

    ParquetDataset(filepath=str(path)).save(pd.DataFrame({"a": [1]}))

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["clean_events.parquet", running.name, elsewhere.name]
    )


def test_a_versioned_save_removes_a_killed_saves_version_folder(tmp_path: Path) -> None:
    root = tmp_path / "report.json"
    killed = root / "2026-01-01T00.00.00.000Z"
    killed.mkdir(parents=True)
    (killed / f"report.json.{'e' * 32}.{_dead_pid()}@{socket.gethostname()}.partial").write_text(
        "{"
    )
    dataset = JSONDataset(filepath=str(root), version=Version(None, None))
    dataset.save({"run": 2})
    assert not killed.exists()
    assert dataset.load() == {"run": 2}


# ---------------------------------------------------------------- optional inputs
def test_no_file_loads_as_none(tmp_path: Path) -> None:
    dataset = OptionalCSVDataset(filepath=str(tmp_path / "absent.csv"))
    assert dataset.load() is None
    assert not dataset.exists()


def test_a_zero_byte_file_loads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert OptionalCSVDataset(filepath=str(path)).load() is None


def test_a_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("courier_location_timestamp,courier_lat,courier_lon\n")
    table = OptionalCSVDataset(filepath=str(path)).load()
    assert table.empty and list(table.columns) == [
        "courier_location_timestamp",
        "courier_lat",
        "courier_lon",
    ]


def test_a_file_loads_and_saves_as_the_csv_dataset(tmp_path: Path) -> None:
    dataset = OptionalCSVDataset(filepath=str(tmp_path / "rows.csv"), save_args={"index": False})
    dataset.save(pd.DataFrame({"a": [1, 2]}))
    assert dataset.load()["a"].tolist() == [1, 2]

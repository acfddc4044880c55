"""Feature-engineering nodes on the processed sample: no leakage from later windows, dense panels."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.event_summary import SUMMARY_COLUMNS, summarise_events
from geo_busyness.model.features import (
    BusynessFeatures,
    cell_feature_params,
    reference_feature_params,
)
from geo_busyness.pipelines.feature_engineering.nodes import (
    build_count_history,
    build_panels,
    count_events_per_cell_hour,
    define_time_windows,
    fit_busyness_features,
    fit_reference_features,
    window_and_summarise_events,
)
from geo_busyness.pipelines.feature_engineering.pipeline import create_pipeline

PARAMS = {
    "h3_resolution": 7,
    "validation_days": 5,
    "test_days": 5,
    "end": None,
    "n_clusters": 5,
    "random_state": 42,
}


def run_nodes(events: pd.DataFrame, params: dict) -> dict:
    """The feature_engineering nodes in order, as the pipeline wires them."""
    windows, counts, train, _ = window_and_summarise_events(events, params)
    features = fit_busyness_features(train, params)
    train_panel, _, test_panel, report = build_panels(counts, features, windows)
    return {
        "windows": windows,
        "features": features,
        "counts": counts,
        "history": build_count_history(counts, features, windows, "America/Regina"),
        "train_panel": train_panel,
        "test_panel": test_panel,
        "report": report,
    }


@pytest.fixture(scope="module")
def clean_events(processed_project: Path) -> pd.DataFrame:
    return pd.read_parquet(processed_project / "data" / "03_primary" / "clean_events.parquet")


@pytest.fixture(scope="module")
def original(clean_events) -> dict:
    return run_nodes(clean_events, PARAMS)


def fitted_state(features: BusynessFeatures) -> dict:
    """Every fitted attribute (trailing underscore) of the transformer."""
    return {name: value for name, value in vars(features).items() if name.endswith("_")}


def assert_same_state(left: BusynessFeatures, right: BusynessFeatures) -> None:
    a, b = fitted_state(left), fitted_state(right)
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], np.ndarray):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        elif isinstance(a[name], pd.Series):
            pd.testing.assert_series_equal(a[name], b[name], obj=name)
        elif name == "kmeans_":
            np.testing.assert_array_equal(a[name].cluster_centers_, b[name].cluster_centers_)
        else:
            assert a[name] == b[name], name


def test_test_window_events_do_not_leak_into_train_features(clean_events, original):
    """Moving, dropping and duplicating test-window events changes nothing fitted or in train."""
    test_start = pd.Timestamp(original["windows"]["test_start"])
    in_test = clean_events["courier_location_timestamp"] >= test_start
    assert in_test.sum() > 1000
    test_rows = clean_events[in_test]
    moved = test_rows.assign(courier_lat=test_rows["courier_lat"] + 0.05)  # a few cells north
    changed = pd.concat(
        [clean_events[~in_test], moved.iloc[::2], moved.iloc[::3], test_rows.tail(1)],
        ignore_index=True,
    )
    modified = run_nodes(changed, PARAMS)

    assert modified["windows"] == original["windows"]
    assert_same_state(modified["features"], original["features"])
    pd.testing.assert_frame_equal(modified["train_panel"], original["train_panel"])
    # The count history is the same up to the test window (the forecaster reads a row's
    # features from the hours before its origin only), and differs inside it.
    before = int(
        (test_start - pd.Timestamp(original["windows"]["train_start"])) / pd.Timedelta("1h")
    )
    history, changed_history = original["history"], modified["history"]
    np.testing.assert_array_equal(changed_history.counts[:, :before], history.counts[:, :before])
    assert not np.array_equal(changed_history.counts[:, before:], history.counts[:, before:])
    # The change is real: the test panel saw it, and events moved to unseen cells are reported.
    assert not modified["test_panel"]["busyness"].equals(original["test_panel"]["busyness"])
    assert modified["report"]["windows"]["test"]["events_in_unseen_cells"] > 0


def test_panels_are_dense_with_zero_rows(original, clean_events):
    features, report = original["features"], original["report"]
    for name in ("train", "test"):
        panel = original[f"{name}_panel"]
        hours = pd.date_range(
            original["windows"][f"{name}_start"],
            original["windows"][f"{name}_end"],
            freq="h",
            inclusive="left",
        )
        assert len(panel) == len(features.cells_) * len(hours)
        assert not panel.duplicated(["cell", "hour"]).any()
        assert set(panel["cell"]) == set(features.cells_)
        assert panel["hour"].nunique() == len(hours)
        assert (panel["busyness"] == 0).any()
        assert 0 < report["windows"][name]["zero_rows_fraction"] < 1
        window = report["windows"][name]
        assert window["events_in_panel"] + window["events_in_unseen_cells"] == window["events"]
    # Every train event is in a train cell, so the train panel holds them all.
    assert original["train_panel"]["busyness"].sum() == report["windows"]["train"]["events"]
    assert report["windows"]["train"]["events_in_unseen_cells"] == 0
    total = sum(report["windows"][name]["events"] for name in ("train", "validation", "test"))
    assert total == len(clean_events)


def test_the_count_history_is_every_train_cell_in_every_hour_to_the_test_end(original):
    history, windows, counts = original["history"], original["windows"], original["counts"]
    start, end = pd.Timestamp(windows["train_start"]), pd.Timestamp(windows["test_end"])
    hours = int((end - start) / pd.Timedelta("1h"))
    np.testing.assert_array_equal(history.cells, original["features"].cells_)
    assert history.counts.shape == (len(history.cells), hours)
    assert history.start_ns == start.value and history.end_ns == end.value
    assert history.timezone == "America/Regina"
    known = counts[np.isin(counts["cell"], history.cells)]
    assert history.counts.sum() == known["busyness"].sum()
    # One cell-hour read back from its row and column.
    row = known.iloc[len(known) // 2]
    i = np.searchsorted(history.cells, np.uint64(row["cell"]))
    j = int((row["hour"] - start) / pd.Timedelta("1h"))
    assert history.counts[i, j] == row["busyness"]


def test_counts_are_labelled_with_their_window_and_none_outside(clean_events):
    windows = define_time_windows(clean_events, PARAMS)
    early = pd.Timestamp(windows["validation_start"])
    inside = clean_events[clean_events["courier_location_timestamp"] < early]
    # An end before the data's end leaves later events outside every window.
    cut = define_time_windows(inside, PARAMS)
    counts = count_events_per_cell_hour(clean_events, cut, PARAMS["h3_resolution"])
    for name in ("train", "validation", "test"):
        start, end = pd.Timestamp(cut[f"{name}_start"]), pd.Timestamp(cut[f"{name}_end"])
        in_window = (counts["hour"] >= start) & (counts["hour"] < end)
        assert (counts.loc[in_window, "window"] == name).all()
    after = counts["hour"] >= pd.Timestamp(cut["test_end"])
    assert after.any() and counts.loc[after, "window"].isna().all()
    assert list(counts["window"].cat.categories) == ["train", "validation", "test"]


def test_the_fused_node_gives_what_the_separate_steps_give(clean_events):
    windows, counts, train, everything = window_and_summarise_events(clean_events, PARAMS)
    assert windows == define_time_windows(clean_events, PARAMS)
    pd.testing.assert_frame_equal(
        counts, count_events_per_cell_hour(clean_events, windows, PARAMS["h3_resolution"])
    )
    # The summaries fit what BusynessFeatures.fit fits on the events themselves.
    start, end = pd.Timestamp(windows["train_start"]), pd.Timestamp(windows["train_end"])
    times = clean_events["courier_location_timestamp"]
    train_events = clean_events[(times >= start) & (times < end)]
    assert_same_state(
        fit_busyness_features(train, PARAMS),
        BusynessFeatures(**cell_feature_params(PARAMS)).fit(
            train_events, window_start=start, window_end=end
        ),
    )
    assert_same_state(
        fit_reference_features(everything, PARAMS),
        BusynessFeatures(**reference_feature_params(PARAMS)).fit(clean_events),
    )


@pytest.mark.parametrize("venues", [True, False], ids=["with restaurants", "without"])
def test_the_train_summary_is_the_summary_of_the_train_events_alone(clean_events, venues):
    """The node computes cells, hours and distances once for all events and takes the train
    window's share of them: exactly what summarising a copy of the train events gives."""
    restaurant = ["restaurant_lat", "restaurant_lon", "restaurant_id"]
    events = clean_events if venues else clean_events.drop(columns=restaurant)
    windows, _, train, everything = window_and_summarise_events(events, PARAMS)
    events = events[[col for col in SUMMARY_COLUMNS if col in events.columns]]
    start, end = pd.Timestamp(windows["train_start"]), pd.Timestamp(windows["train_end"])
    hours = events["courier_location_timestamp"].dt.floor("h")
    alone = events[(hours >= start) & (hours < end)].reset_index(drop=True)
    assert 0 < len(alone) < len(events)
    features = BusynessFeatures(**cell_feature_params(PARAMS))
    summarise = partial(
        summarise_events,
        resolution=features.resolution,
        max_anchor_points=features.max_anchor_points,
        seed=features.random_state,
    )
    for got, expected in (
        (train, summarise(alone, window=(start, end))),
        (everything, summarise(events, window=(everything.start, everything.end))),
    ):
        pd.testing.assert_frame_equal(got.partials, expected.partials, check_exact=True)
        pd.testing.assert_frame_equal(got.counts, expected.counts, check_exact=True)
        np.testing.assert_array_equal(got.event_points, expected.event_points)
        assert got.columns == expected.columns
    assert (len(train.event_points) == 0) == venues  # anchors only without restaurants


def test_the_node_that_reads_clean_events_leaves_it_unchanged(clean_events):
    """clean_events stays in memory for the whole run (a CachedDataset, no copies): a node that
    changed it in place would change what every later node in that run reads."""
    events = clean_events.copy(deep=True)
    window_and_summarise_events(events, PARAMS)
    pd.testing.assert_frame_equal(events, clean_events)


#: Three weeks of hourly events, enough for 5-day validation and test windows before an end.
HOURLY_EVENTS = pd.DataFrame(
    {
        "courier_location_timestamp": pd.date_range(
            "2026-01-01T00:30:00Z", "2026-01-21T23:30:00Z", freq="h"
        )
    }
)


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        ("2026-01-15 00:00", "2026-01-15T06:00:00+00:00"),  # naive: the source's local time
        ("2026-01-15T00:00:00Z", "2026-01-15T00:00:00+00:00"),
        ("2026-01-15T00:00:00-03:00", "2026-01-15T03:00:00+00:00"),
        (None, "2026-01-22T00:00:00+00:00"),  # the hour after the last event
    ],
)
def test_the_end_parameter_is_naive_in_the_source_timezone_aware_converted(end, expected):
    windows = define_time_windows(HOURLY_EVENTS, PARAMS | {"end": end}, "America/Regina")
    assert windows["test_end"] == expected
    assert pd.Timestamp(windows["test_start"]) == pd.Timestamp(expected) - pd.Timedelta(days=5)


def test_an_unparsable_end_names_the_parameter_and_the_value():
    with pytest.raises(ValueError, match="feature_engineering.end must be .*'mid-January'"):
        define_time_windows(HOURLY_EVENTS, PARAMS | {"end": "mid-January"}, "America/Regina")


def test_the_pipeline_gives_the_windows_the_source_timezone():
    (node,) = create_pipeline().only_nodes("window_and_summarise_events").nodes
    assert "params:data_processing.source_timezone" in node.inputs

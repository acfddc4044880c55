"""Monitoring nodes on the serving tests' small forecaster: its cells, the recent counts it is
told, and day-ahead forecasts made before each recent hour."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.geo import cell_ids, h3_cells
from geo_busyness.model.history import CountHistory
from geo_busyness.model.predict import predict_cell_hours
from geo_busyness.pipelines.monitoring.nodes import (
    KNOWN_CELL,
    UNSEEN_BUCKET,
    day_ahead_answers,
    describe_events,
    evaluate_recent_performance,
    extend_monitored_model,
    score_recent_cell_hours,
    score_reference_forecasts,
)
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    PREDICTION,
    TARGET,
)
from tests.serving.model_fixture import END, START, TIMEZONE, fit_model, synthetic_events

HOUR_TD = pd.Timedelta(hours=1)
VERSION = {
    "model_name": "geo-busyness",
    "version": "1",
    "tags": {
        "window_train_start": START.isoformat(),
        "window_train_end": (END - pd.Timedelta(days=14)).isoformat(),
        "window_test_start": (END - pd.Timedelta(days=7)).isoformat(),
        "window_test_end": END.isoformat(),
        "test_mae": "0.5",
        "test_r2": "0.3",
    },
}
PARAMS = {"thresholds": {"mae_increase": 1.0, "r2_drop": 0.15}}


def recent_week(start: pd.Timestamp = END) -> pd.DataFrame:
    """A week of the fixture's city (same venues) from ``start``, at the history's rate."""
    week = synthetic_events(2000, seed=0, weeks=1)
    return week.assign(**{EVENT_TIME: week[EVENT_TIME] + (start - START)})


def truncated(model, position: int):
    """The model knowing only its first ``position`` hours (its origin there)."""
    short = copy.copy(model)
    history = model.history_
    short.history_ = CountHistory(
        history.cells, history.start_ns, history.counts[:, :position], history.timezone
    )
    short._derived = None
    return short


@pytest.fixture(scope="module")
def extended():
    model = fit_model()
    recent = recent_week()
    forecaster, summary = extend_monitored_model(model, synthetic_events(), recent)
    return model, recent, forecaster, summary


def test_events_are_described_against_the_forecasters_cells():
    model = fit_model()
    events = synthetic_events(300, seed=0)
    described = describe_events(events, model)
    cells = h3_cells(events[EVENT_LAT], events[EVENT_LON], model.resolution)
    known = np.isin(cells, model.history_.cells)
    assert known.all()  # the same venues
    assert (described[CELL] != UNSEEN_BUCKET).all()
    far = events.assign(**{EVENT_LAT: events[EVENT_LAT] + 1.0})
    assert (describe_events(far, model)[CELL] == UNSEEN_BUCKET).all()


def test_the_recent_counts_extend_the_model_to_the_windows_end(extended):
    model, recent, forecaster, summary = extended
    assert model.origin == END  # the artifact is untouched
    end = recent[EVENT_TIME].max().floor("h") + HOUR_TD
    assert forecaster.origin == end
    assert summary["gap_hours"] == 0 and summary["gap_hours_without_events"] == 0
    assert forecaster.history_.counts[:, model.history_.hours :].sum() == len(recent)


def test_a_gap_is_filled_from_the_history_when_it_has_the_events():
    model = fit_model()
    gap_start = END
    recent = recent_week(END + pd.Timedelta(days=2))
    bridge = recent_week(END)
    bridge = bridge[bridge[EVENT_TIME] < gap_start + pd.Timedelta(days=2)]
    history = pd.concat([synthetic_events(), bridge], ignore_index=True)
    forecaster, summary = extend_monitored_model(model, history, recent)
    assert summary["gap_hours"] == 48
    assert summary["gap_events_from_history"] == len(bridge)
    assert summary["gap_hours_without_events"] < 48
    known = model.history_.hours
    assert forecaster.history_.counts[:, known : known + 48].sum() == len(bridge)
    # without the bridge the gap is empty, and said so
    _, empty = extend_monitored_model(model, synthetic_events(), recent)
    assert (empty["gap_events_from_history"], empty["gap_hours_without_events"]) == (0, 48)


def test_day_ahead_forecasts_use_only_the_counts_before_their_midnight(extended):
    model, _, forecaster, _ = extended
    cells = model.history_.cells
    hours = pd.date_range(END, periods=72, freq="h")
    grid_cells, grid_hours = np.tile(cells, len(hours)), pd.Series(hours.repeat(len(cells)))
    answers = day_ahead_answers(forecaster, grid_cells, grid_hours)
    local = pd.DatetimeIndex(grid_hours).tz_convert(TIMEZONE)
    first_midnight = hours[hours.tz_convert(TIMEZONE).hour == 0][0]
    after = pd.DatetimeIndex(grid_hours) >= first_midnight
    assert (answers[HORIZON][after] == local.hour[after] + 1).all()
    before = ~after  # the partial first day: from the window's first hour
    assert (answers[HORIZON][before] == np.asarray((grid_hours[before] - END) // HOUR_TD) + 1).all()
    # each day's forecast is the one a model knowing only the hours before its midnight gives
    for midnight in hours[hours.tz_convert(TIMEZONE).hour == 0]:
        position = int(forecaster.history_.positions(np.array([midnight.value]))[0])
        day = after & (pd.DatetimeIndex(grid_hours) >= midnight)
        day &= pd.DatetimeIndex(grid_hours) < midnight + pd.Timedelta(hours=24)
        expected = predict_cell_hours(
            truncated(forecaster, position), grid_cells[day], grid_hours[day]
        )
        np.testing.assert_allclose(answers[PREDICTION][day], expected[PREDICTION], rtol=1e-12)
        np.testing.assert_array_equal(answers["p50"][day], expected["p50"])


def test_hours_the_model_does_not_know_are_refused():
    model = fit_model()
    with pytest.raises(ValueError, match="extend it"):
        day_ahead_answers(model, model.history_.cells[:1], pd.Series([END]))


def test_recent_performance_scores_the_day_ahead_p50_like_the_test_tags(extended):
    _, recent, forecaster, summary = extended
    panel = score_recent_cell_hours(recent, forecaster)
    assert panel[KNOWN_CELL].all()
    assert panel[HORIZON].between(1, 24).all()
    performance = evaluate_recent_performance(panel, VERSION, PARAMS, summary)
    y = panel[TARGET].to_numpy()
    assert performance["recent"]["mae"] == pytest.approx(np.mean(np.abs(y - panel["p50"])))
    assert performance["origin"] == summary
    assert "day-ahead" in performance["forecast"]
    assert performance["rows"] == len(panel) == forecaster.history_.cells.size * 168


def test_the_prediction_reference_is_the_test_windows_day_ahead(extended):
    model = extended[0]
    reference = score_reference_forecasts(model, VERSION)
    assert pd.DatetimeIndex(reference[HOUR]).min() == END - pd.Timedelta(days=7)
    assert pd.DatetimeIndex(reference[HOUR]).max() == END - HOUR_TD
    assert reference[HORIZON].between(1, 24).all()
    assert reference[TARGET].sum() == model.history_.counts[:, -168:].sum()
    cells = cell_ids(reference[H3_CELL])
    assert set(cells) == set(model.history_.cells)

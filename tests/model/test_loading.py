"""The loaded model's own parameters against the run's (no MLflow: stand-in models)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.model.loading import parameter_mismatches
from geo_busyness.registry import check_model_parameters

RESOLUTION = "feature_engineering.h3_resolution"
TIMEZONE = "data_processing.source_timezone"
VERSION = {"model_name": "geo-busyness", "version": "3", "chosen_by": "alias champion"}


def model_with(**attributes: Any) -> SimpleNamespace:
    """A stand-in for the forecaster: only its ``resolution`` and ``timezone`` are read."""
    return SimpleNamespace(**attributes)


def forecaster_with(resolution: int, timezone: str) -> BusynessForecaster:
    """A real (unfitted) forecaster holding a count history and per-cell statistics."""
    model = BusynessForecaster()
    model.history_ = CountHistory(np.zeros(0, np.uint64), 0, np.zeros((0, 0), np.float32), timezone)
    model.cell_features_ = SimpleNamespace(resolution=resolution)
    return model


def test_the_forecaster_and_its_pyfunc_wrapper_give_their_own_values():
    model = forecaster_with(7, "America/Regina")
    run = {RESOLUTION: 8, TIMEZONE: "UTC"}
    expected = [(RESOLUTION, 7, 8), (TIMEZONE, "America/Regina", "UTC")]
    for loaded in (model, SimpleNamespace(get_raw_model=lambda: model)):
        found = parameter_mismatches(loaded, run)
        assert [(m["parameter"], m["model_value"], m["run_value"]) for m in found] == expected
    assert parameter_mismatches(model, {RESOLUTION: 7, TIMEZONE: "America/Regina"}) == []


def test_a_model_with_the_run_parameters_has_no_mismatch():
    model = model_with(resolution=7, timezone="America/Regina")
    assert parameter_mismatches(model, {RESOLUTION: 7, TIMEZONE: "America/Regina"}) == []


def test_each_differing_parameter_is_one_entry_with_both_values():
    model = model_with(resolution=7, timezone="America/Regina")
    mismatches = parameter_mismatches(model, {RESOLUTION: 8, TIMEZONE: "America/New_York"})
    assert mismatches == [
        {
            "parameter": RESOLUTION,
            "model_attribute": "resolution",
            "model_value": 7,
            "run_value": 8,
        },
        {
            "parameter": TIMEZONE,
            "model_attribute": "timezone",
            "model_value": "America/Regina",
            "run_value": "America/New_York",
        },
    ]


@pytest.mark.parametrize(
    ("model", "run"),
    [
        (model_with(resolution=7), {RESOLUTION: 7, TIMEZONE: "America/New_York"}),  # no timezone
        (model_with(resolution=7, timezone="UTC"), {RESOLUTION: 7}),  # the run gives none
    ],
)
def test_a_parameter_one_side_lacks_is_not_compared(model, run):
    assert parameter_mismatches(model, run) == []


def test_the_node_warns_naming_both_values_and_returns_the_entries(caplog):
    with caplog.at_level(logging.WARNING, logger="geo_busyness.registry"):
        mismatches = check_model_parameters(model_with(resolution=7), VERSION, 8, "UTC")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert mismatches[0]["message"] == message
    for text in ("geo-busyness version 3", "resolution=7", RESOLUTION, "is 8"):
        assert text in message


def test_the_node_is_silent_when_the_parameters_agree(caplog):
    with caplog.at_level(logging.WARNING, logger="geo_busyness.registry"):
        assert check_model_parameters(model_with(resolution=7), VERSION, 7, "UTC") == []
    assert not caplog.records

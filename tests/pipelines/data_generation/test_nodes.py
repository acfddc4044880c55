"""The synthetic courier-ping generator: reproducible, reference-shaped, realistic, honestly dirty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from geo_busyness.model.geo import haversine_km
from geo_busyness.pipelines.data_generation.nodes import FAULT_TO_REASON, generate_events

PARAMS_FILE = (
    Path(__file__).resolve().parents[3] / "conf" / "base" / "parameters_data_generation.yml"
)
#: The reference (courier) schema, in its order.
REFERENCE_COLUMNS = [
    "courier_id",
    "order_number",
    "courier_location_timestamp",
    "courier_lat",
    "courier_lon",
    "order_created_timestamp",
    "restaurant_lat",
    "restaurant_lon",
]
SHRINK = {
    "n_events": 20_000,
    "weeks": 2,
    "n_restaurants": 40,
    "n_couriers": 50,
    "dirty_fraction": 0.03,
}


def small_params(**overrides: Any) -> dict[str, Any]:
    """The project's generation parameters, shrunk to a sample that takes a fraction of a second."""
    params = yaml.safe_load(PARAMS_FILE.read_text())["data_generation"]
    return {**params, **SHRINK, **overrides}


@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    return generate_events(small_params())


@pytest.fixture(scope="module")
def clean_rows(generated) -> pd.DataFrame:
    """The generated rows no fault was injected into, with parsed (naive, local) timestamps."""
    raw, labels, _ = generated
    clean = raw.drop(index=labels["source_row"])
    return clean.assign(
        ping=pd.to_datetime(clean["courier_location_timestamp"], format="ISO8601"),
        created=pd.to_datetime(clean["order_created_timestamp"], format="ISO8601"),
    )


def test_same_seed_same_frames(generated):
    raw, labels, summary = generated
    raw2, labels2, summary2 = generate_events(small_params())
    pd.testing.assert_frame_equal(raw, raw2)
    pd.testing.assert_frame_equal(labels, labels2)
    assert summary == summary2


def test_another_seed_other_frames(generated):
    raw, labels, summary = generated
    raw2, labels2, summary2 = generate_events(small_params(seed=7))
    assert summary2["seed"] == 7
    assert len(raw2) != len(raw) or not raw2.equals(raw)
    # not merely a shuffle or an offset: the positions differ too
    common = min(len(raw), len(raw2))
    assert not np.allclose(raw["courier_lat"].iloc[:common], raw2["courier_lat"].iloc[:common])
    assert set(labels2["source_row"]) != set(labels["source_row"])


def test_raw_columns_are_exactly_the_reference_schema(generated):
    raw, labels, _ = generated
    assert list(raw.columns) == REFERENCE_COLUMNS
    assert list(labels.columns) == ["source_row", "fault"]
    # timestamps leave the generator as text, as in a raw export
    assert raw["courier_location_timestamp"].dropna().map(type).eq(str).all()
    assert pd.api.types.is_float_dtype(raw["courier_lat"])


def test_size_is_near_the_requested_number_of_events(generated):
    raw, _, summary = generated
    assert summary["rows"] == len(raw)
    assert 0.9 * SHRINK["n_events"] < summary["clean_rows"] < 1.1 * SHRINK["n_events"]


def test_summary_counts_the_injected_faults(generated):
    raw, labels, summary = generated
    assert summary["injected"] == labels["fault"].value_counts().to_dict()
    assert set(summary["injected"]) == set(small_params()["dirty_mix"])
    assert all(n > 0 for n in summary["injected"].values())
    assert summary["expected_reasons"] == {
        kind: FAULT_TO_REASON[kind] for kind in summary["injected"]
    }
    assert summary["clean_rows"] == len(raw) - len(labels)
    # one label per spoiled row, each a real row of the output
    assert labels["source_row"].is_unique
    assert labels["source_row"].between(0, len(raw) - 1).all()


def test_dirty_fraction_is_as_configured(generated):
    raw, labels, summary = generated
    originals = len(raw) - summary["injected"]["duplicate_order"]
    assert len(labels) / originals == pytest.approx(SHRINK["dirty_fraction"], abs=1e-4)
    # and a different setting gives a different share
    raw10, labels10, _ = generate_events(small_params(dirty_fraction=0.10, n_events=5_000))
    assert 0.09 < len(labels10) / len(raw10) < 0.11


def test_injected_faults_are_really_there(generated):
    raw, labels, _ = generated
    by_kind = labels.groupby("fault")["source_row"].apply(list)
    out_of_range = raw.loc[by_kind["coordinates_out_of_range"]]
    assert (out_of_range["courier_lat"].abs() > 90).all()
    swapped = raw.loc[by_kind["swapped_coordinates"]]
    assert (swapped["courier_lat"] < -90).all()  # Regina's longitude in the latitude column
    missing = raw.loc[by_kind["missing_value"]]
    assert missing.isna().any(axis=1).all()
    garbage = raw.loc[by_kind["unparsable_timestamp"], "courier_location_timestamp"]
    assert pd.to_datetime(garbage, format="ISO8601", errors="coerce").isna().all()
    early = raw.loc[by_kind["ping_before_order_creation"]]
    assert (
        pd.to_datetime(early["courier_location_timestamp"])
        < pd.to_datetime(early["order_created_timestamp"])
    ).all()
    future = pd.to_datetime(raw.loc[by_kind["future_timestamp"], "courier_location_timestamp"])
    assert (future > pd.Timestamp("2090-01-01")).all()
    # a duplicate repeats an earlier, unspoiled order
    repeated = raw.loc[by_kind["duplicate_order"], "order_number"]
    unspoiled = raw.drop(index=labels["source_row"])
    assert repeated.isin(unspoiled["order_number"]).all()
    original_row = pd.Series(unspoiled.index, index=unspoiled["order_number"])
    assert (repeated.index > original_row[repeated].to_numpy()).all()  # the copy comes later


def test_clean_rows_are_unique_orders(clean_rows):
    assert clean_rows["order_number"].is_unique
    assert clean_rows.notna().all().all()


def test_ping_is_5_to_40_minutes_after_order_creation(clean_rows):
    delay_min = (clean_rows["ping"] - clean_rows["created"]).dt.total_seconds() / 60
    assert delay_min.min() >= 5
    assert delay_min.max() <= 40
    # spread over the range, not stuck at one value
    assert delay_min.quantile(0.1) < 10
    assert delay_min.quantile(0.9) > 35


def test_ping_is_within_100_m_of_the_restaurant(clean_rows):
    metres = 1000 * haversine_km(
        clean_rows["courier_lat"],
        clean_rows["courier_lon"],
        clean_rows["restaurant_lat"],
        clean_rows["restaurant_lon"],
    )
    assert metres.max() < 100
    assert np.median(metres) > 5  # jittered, not pinned on the restaurant


def test_events_are_in_the_configured_city_and_window(clean_rows):
    city = small_params()["city"]
    assert clean_rows["restaurant_lat"].between(city["lat_min"], city["lat_max"]).all()
    assert clean_rows["restaurant_lon"].between(city["lon_min"], city["lon_max"]).all()
    start = pd.Timestamp(small_params()["start"])
    assert clean_rows["created"].min() >= start
    assert clean_rows["created"].max() < start + pd.Timedelta(weeks=SHRINK["weeks"])


def test_demand_has_lunch_and_dinner_peaks(clean_rows):
    by_hour = clean_rows["ping"].dt.hour.value_counts().reindex(range(24), fill_value=0)
    night = by_hour[3] + by_hour[4]
    assert night > 0
    for peak_hour in (12, 18, 19):
        assert by_hour[peak_hour] > 3 * night, (peak_hour, by_hour.to_dict())


def test_weekends_differ_from_weekdays(clean_rows):
    ping = clean_rows["ping"]
    weekend = ping.dt.day_of_week >= 5
    per_day = ping.groupby(ping.dt.normalize()).size()
    weekend_days = per_day.index.day_of_week >= 5
    assert per_day[weekend_days].mean() > 1.2 * per_day[~weekend_days].mean()
    # and the daily rhythm differs: share of each hour-of-day, weekend vs weekday
    shares = pd.DataFrame(
        {
            "weekend": ping[weekend].dt.hour.value_counts(normalize=True),
            "weekday": ping[~weekend].dt.hour.value_counts(normalize=True),
        }
    ).fillna(0)
    total_variation = (shares["weekend"] - shares["weekday"]).abs().sum() / 2
    assert total_variation > 0.05


def test_unknown_fault_kind_is_refused_by_name():
    mix = {**small_params()["dirty_mix"], "teleported_courier": 1}
    with pytest.raises(ValueError, match="teleported_courier"):
        generate_events(small_params(dirty_mix=mix))

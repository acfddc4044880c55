"""The recent window: right after the history, the same city, its shifts, its query rows."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.geo import haversine_km
from geo_busyness.pipelines.data_generation.nodes import generate_events, generate_recent_events
from tests.pipelines.data_generation.test_nodes import REFERENCE_COLUMNS, SHRINK, small_params

TIMEZONE = "America/Regina"  # UTC-6 all year
SHIFT = {
    "new_district": {"share": 0.15, "n_restaurants": 10},
    "evening_demand_factor": 2.0,
    "swapped_coordinates_share": 0.05,
}


def recent(**overrides: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_recent_events(small_params(**overrides), TIMEZONE)


def valid_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows that parse and have coordinates in range, with parsed local timestamps."""
    rows = raw.assign(
        ping=pd.to_datetime(raw["courier_location_timestamp"], format="ISO8601", errors="coerce"),
        created=pd.to_datetime(raw["order_created_timestamp"], format="ISO8601", errors="coerce"),
    ).dropna()
    rows = rows[rows["courier_lat"].abs().le(90) & rows["ping"].lt("2090-01-01")]
    return rows.drop_duplicates("order_number")


def venues(frame: pd.DataFrame) -> set[tuple[float, float]]:
    return set(zip(frame["restaurant_lat"].round(6), frame["restaurant_lon"].round(6), strict=True))


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return valid_rows(generate_events(small_params())[0])


@pytest.fixture(scope="module")
def plain() -> tuple[pd.DataFrame, pd.DataFrame]:
    return recent()


@pytest.fixture(scope="module")
def shifted() -> tuple[pd.DataFrame, pd.DataFrame]:
    return recent(shift=SHIFT)


def test_recent_week_follows_the_history_in_the_same_city(plain, history):
    raw, _ = plain
    assert list(raw.columns) == REFERENCE_COLUMNS
    rows = valid_rows(raw)
    history_end = pd.Timestamp(small_params()["start"]) + pd.Timedelta(weeks=SHRINK["weeks"])
    assert rows["created"].min() >= history_end
    assert rows["created"].max() < history_end + pd.Timedelta(weeks=1)
    assert venues(rows) <= venues(history)  # no shift: only the history's restaurants
    assert set(rows["courier_id"]) <= set(range(1000, 1000 + SHRINK["n_couriers"]))
    # order numbers continue after the history's
    assert rows["order_number"].min() > history["order_number"].max()
    # a week's worth of the history's demand (with its trend and shocks)
    weekly = len(history) / SHRINK["weeks"]
    assert 0.7 * weekly < len(rows) < 1.5 * weekly


def test_recent_week_is_as_dirty_as_the_history(plain):
    raw, _ = plain
    dirty = 1 - len(valid_rows(raw)) / len(raw)
    assert dirty == pytest.approx(SHRINK["dirty_fraction"], abs=0.01)


def test_same_seed_same_recent_week_and_history_untouched_by_shifts(plain):
    raw, queries = plain
    raw2, queries2 = recent()
    pd.testing.assert_frame_equal(raw, raw2)
    pd.testing.assert_frame_equal(queries, queries2)
    base, _, _ = generate_events(small_params())
    with_shift, _, _ = generate_events(small_params(shift=SHIFT, recent_weeks=2))
    pd.testing.assert_frame_equal(base, with_shift)


def test_new_district_opens_where_the_history_has_no_restaurant(shifted, history):
    rows = valid_rows(shifted[0])
    new = venues(rows) - venues(history)
    assert 5 <= len(new) <= SHIFT["new_district"]["n_restaurants"]
    new_lat, new_lon = np.array(sorted(new)).T
    old_lat, old_lon = np.array(sorted(venues(history))).T
    nearest_km = haversine_km(new_lat[:, None], new_lon[:, None], old_lat, old_lon).min(axis=1)
    assert np.median(nearest_km) > 1.5
    at_new = pd.Series(
        list(zip(rows["restaurant_lat"].round(6), rows["restaurant_lon"].round(6), strict=True))
    ).isin(new)
    # 15% of the demand before the evening factor; the factor moves it a little
    assert 0.10 < at_new.mean() < 0.22


def test_evening_demand_factor_doubles_the_evening_only(plain, shifted):
    def per_hour(raw: pd.DataFrame) -> pd.Series:
        rows = valid_rows(raw)
        return rows["created"].dt.hour.value_counts().reindex(range(24), fill_value=0)

    doubled = recent(shift={"evening_demand_factor": 2.0})[0]
    base, evening = per_hour(plain[0]), per_hour(doubled)
    in_evening = (np.arange(24) >= 17) & (np.arange(24) < 22)  # the default evening_hours
    ratio_evening = evening[in_evening].sum() / base[in_evening].sum()
    ratio_other = evening[~in_evening].sum() / base[~in_evening].sum()
    assert ratio_evening == pytest.approx(2.0, rel=0.1)
    assert ratio_other == pytest.approx(1.0, rel=0.1)


def test_level_factor_scales_every_hour_of_the_recent_week(plain):
    """level_factor 1.2: 20% more orders in every part of the day, the same places."""

    def per_part_of_day(raw: pd.DataFrame) -> pd.Series:
        hours = valid_rows(raw)["created"].dt.hour
        return hours.groupby(hours // 6).size()  # night, morning, afternoon, evening

    raised = recent(shift={"level_factor": 1.2})[0]
    ratio = per_part_of_day(raised) / per_part_of_day(plain[0])
    assert len(valid_rows(raised)) / len(valid_rows(plain[0])) == pytest.approx(1.2, abs=0.04)
    assert ratio.to_numpy() == pytest.approx(np.full(4, 1.2), abs=0.1)
    assert venues(valid_rows(raised)) == venues(valid_rows(plain[0]))
    lowered = recent(shift={"level_factor": 0.8})[0]
    assert len(valid_rows(lowered)) / len(valid_rows(plain[0])) == pytest.approx(0.8, abs=0.04)


def test_swapped_coordinates_share(shifted):
    raw = shifted[0]
    # Regina's longitude (about -104.6) lands in the latitude column
    swapped = raw["courier_lat"].lt(-100) & raw["courier_lon"].between(50, 51)
    assert swapped.mean() == pytest.approx(0.05, abs=0.006)


def test_queries_are_utc_points_of_the_recent_week(plain):
    raw, queries = plain
    assert list(queries.columns) == ["courier_location_timestamp", "courier_lat", "courier_lon"]
    assert len(queries) == small_params()["n_queries"]
    assert queries["courier_location_timestamp"].str.endswith("Z").all()
    times = pd.to_datetime(queries["courier_location_timestamp"], utc=True)
    local = valid_rows(raw)["ping"]
    # the same instants as the raw week's naive local pings, six hours later in UTC
    assert times.min() >= local.min().tz_localize("UTC") + pd.Timedelta(hours=6)
    assert times.max() <= local.max().tz_localize("UTC") + pd.Timedelta(hours=6)
    city = small_params()["city"]
    assert queries["courier_lat"].between(city["lat_min"] - 0.01, city["lat_max"] + 0.01).all()
    assert queries["courier_lon"].between(city["lon_min"] - 0.01, city["lon_max"] + 0.01).all()


def test_a_log_line_per_generated_week(caplog):
    with caplog.at_level(logging.INFO, logger="geo_busyness.pipelines.data_generation"):
        generate_events(small_params())
        recent(recent_weeks=2)
    lines = [record.getMessage() for record in caplog.records]
    assert sum(line.startswith("history week ") for line in lines) == SHRINK["weeks"]
    assert sum(line.startswith("recent week ") for line in lines) == 2
    assert any(line.startswith("history week 2/2 from ") for line in lines)


def test_bad_shift_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="swapped_coordinates_share"):
        recent(shift={"swapped_coordinates_share": 1.5})
    with pytest.raises(ValueError, match="new_district.share"):
        recent(shift={"new_district": {"share": 1.0}})
    with pytest.raises(ValueError, match="level_factor"):
        recent(shift={"level_factor": 0.0})

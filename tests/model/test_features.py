"""BusynessFeatures and predict_busyness on a small hand-made city (no Kedro run)."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from geo_busyness.model.cell_hours import (
    count_cell_hours,
)
from geo_busyness.model.features import BusynessFeatures
from geo_busyness.model.geo import h3_cells, venue_id
from geo_busyness.model.predict import cell_hour_queries

START = pd.Timestamp("2026-01-05T00:00:00Z")  # a Monday
END = START + pd.Timedelta(weeks=2)
#: Three restaurants in three different res-7 cells, and a point in a fourth cell with none.
VENUES = np.array([[50.4479, -104.6177], [50.4300, -104.5600], [50.4900, -104.6600]])
FAR_POINT = (50.3000, -104.9000)
DAY = pd.Timedelta(days=1)


def hand_made_events() -> pd.DataFrame:
    """Events at each restaurant: venue i has i + 1 orders in every hour from 11:00 to 13:59 UTC."""
    hours = pd.date_range(START, END, freq="h", inclusive="left")
    lunch = hours[(hours.hour >= 11) & (hours.hour < 14)]
    rows = []
    for i, (lat, lon) in enumerate(VENUES):
        for hour in lunch:
            for k in range(i + 1):
                rows.append(
                    (hour + pd.Timedelta(minutes=5 + 10 * k), lat + 1e-4 * k, lon, lat, lon)
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "courier_location_timestamp",
            "courier_lat",
            "courier_lon",
            "restaurant_lat",
            "restaurant_lon",
        ],
    )
    frame["restaurant_id"] = venue_id(frame["restaurant_lat"], frame["restaurant_lon"])
    return frame


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return hand_made_events()


@pytest.fixture(scope="module")
def fitted(events) -> BusynessFeatures:
    return BusynessFeatures(n_clusters=2, horizon_hours=24, lags_hours=(24, 168)).fit(
        events, window_start=START, window_end=END
    )


def queries_at(lat: float, lon: float, *times: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "courier_location_timestamp": pd.to_datetime(list(times), utc=True),
            "courier_lat": lat,
            "courier_lon": lon,
        }
    )


def test_counts_per_cell_hour(events):
    counts = count_cell_hours(events, 7)
    assert list(counts.columns) == ["cell", "hour", "busyness"]
    assert counts["busyness"].sum() == len(events)
    assert sorted(counts["busyness"].unique()) == [1, 2, 3]
    assert counts["hour"].dt.hour.between(11, 13).all()


def test_fitted_statistics_are_the_train_cells(fitted, events):
    assert len(fitted.cells_) == 3
    assert fitted.anchor_source_ == "restaurants"
    assert len(fitted.anchors_) == 3
    np.testing.assert_array_equal(fitted.cell_restaurants_, [1, 1, 1])
    # Venue 2 (3 orders an hour) at 12:00 on a Monday: 3 events in each of the two Mondays.
    monday_noon = 12
    code = int(np.searchsorted(fitted.cells_, h3_cells(VENUES[2:, 0], VENUES[2:, 1], 7)[0]))
    assert fitted.profile_[code, monday_noon] == 3.0
    assert fitted.profile_[code, monday_noon + 6] == 0.0  # 18:00: nothing happened


def test_feature_columns_follow_the_horizon_rule(events):
    day_ahead = BusynessFeatures(horizon_hours=24, lags_hours=(24, 168)).fit(events)
    week_ahead = BusynessFeatures(horizon_hours=168, lags_hours=(24, 168)).fit(events)
    assert list(day_ahead.get_feature_names_out()[-2:]) == ["lag_24h", "lag_168h"]
    assert "lag_24h" not in week_ahead.get_feature_names_out()
    assert week_ahead.get_feature_names_out()[-1] == "lag_168h"
    fewer = BusynessFeatures(exclude_features=("date_day_number",)).fit(events)
    assert "date_day_number" not in fewer.get_feature_names_out()
    with pytest.raises(ValueError, match="unknown feature"):
        BusynessFeatures(exclude_features=("nope",)).fit(events)


def test_lags_are_counts_zero_or_unknown(fitted):
    lat, lon = VENUES[1]
    rows = queries_at(
        lat,
        lon,
        "2026-01-13T12:30",  # 24 h and 168 h earlier are inside the train window: 2 orders each
        "2026-01-13T03:00",  # known hours with no orders
        "2026-01-19T12:00",  # one hour-day after the window: 24 h and 168 h back are known
        "2026-01-20T12:00",  # 24 h back (the 19th) is after the known history: NaN
        "2026-01-05T12:00",  # before the history starts: NaN
    )
    out = fitted.transform(rows)
    np.testing.assert_array_equal(out["lag_24h"], [2, 0, 2, np.nan, np.nan])
    np.testing.assert_array_equal(out["lag_168h"], [2, 0, 2, 2, np.nan])


def test_with_history_extends_lags_without_refitting(fitted, events):
    later = events.assign(
        courier_location_timestamp=events["courier_location_timestamp"] + pd.Timedelta(weeks=2)
    )
    extended = fitted.with_history(later, END + pd.Timedelta(days=1))
    lat, lon = VENUES[1]
    rows = queries_at(lat, lon, "2026-01-20T12:00")
    assert np.isnan(fitted.transform(rows)["lag_24h"].iloc[0])  # the original is untouched
    assert extended.transform(rows)["lag_24h"].iloc[0] == 2
    np.testing.assert_array_equal(extended.profile_, fitted.profile_)
    assert extended.history_end_ == END + pd.Timedelta(days=1)


def test_unseen_cells_get_defined_values(fitted):
    out = fitted.transform(queries_at(*FAR_POINT, "2026-01-06T12:00"))
    row = out.iloc[0]
    assert row["h3_index"] == -1
    assert row["restaurants_per_index"] == 0
    assert row["cell_hour_of_week_mean"] == 0
    assert np.isnan(row["dist_to_restaurant"])
    assert row["avg_Hdist_to_restaurants"] > 10  # far from all three restaurants
    assert row["Five_Clusters_embedding"] in (0, 1)


def test_timestamps_naive_aware_and_text_mean_the_same_utc_hour(fitted):
    lat, lon = VENUES[0]
    aware = queries_at(lat, lon, "2026-01-13T12:30")
    naive = aware.assign(
        courier_location_timestamp=aware["courier_location_timestamp"].dt.tz_localize(None)
    )
    text = aware.assign(courier_location_timestamp=["2026-01-13T06:30:00-06:00"])
    expected = fitted.transform(aware)
    pd.testing.assert_frame_equal(fitted.transform(naive), expected)
    pd.testing.assert_frame_equal(fitted.transform(text), expected)
    assert expected["date_hour_number"].iloc[0] == 12
    assert expected["day_of_week"].iloc[0] == 1
    assert expected["is_weekend"].iloc[0] == 0
    assert expected["date_day_number"].iloc[0] == 8


def test_fit_does_not_depend_on_row_order(fitted, events):
    shuffled = events.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = BusynessFeatures(n_clusters=2, horizon_hours=24, lags_hours=(24, 168)).fit(
        shuffled, window_start=START, window_end=END
    )
    np.testing.assert_array_equal(again.kmeans_.cluster_centers_, fitted.kmeans_.cluster_centers_)
    rows = cell_hour_queries(fitted.cells_, pd.Series([START + pd.Timedelta(hours=200)] * 3))
    pd.testing.assert_frame_equal(again.transform(rows), fitted.transform(rows))


def test_sources_without_restaurants_fall_back_to_event_locations(events):
    rideshare = events.assign(restaurant_lat=np.nan, restaurant_lon=np.nan, restaurant_id=pd.NA)
    rideshare["restaurant_id"] = rideshare["restaurant_id"].astype("Int64")
    fitted = BusynessFeatures(n_clusters=2, max_anchor_points=50).fit(rideshare)
    assert fitted.anchor_source_ == "events"
    assert len(fitted.anchors_) == 50
    assert len(fitted.kmeans_.cluster_centers_) == 2
    out = fitted.transform(queries_at(*VENUES[0], "2026-01-06T12:00"))
    assert np.isfinite(out["avg_Hdist_to_restaurants"].iloc[0])
    assert np.isfinite(out["Five_Clusters_embedding"].iloc[0])


#: The features a source without restaurants cannot give.
RESTAURANT_FEATURES = {"dist_to_restaurant", "Hdist_to_restaurant", "restaurants_per_index"}


def ride_table(events: pd.DataFrame) -> pd.DataFrame:
    """The events as a ride-pickup source gives them: a time and a point, nothing else."""
    return events[["courier_location_timestamp", "courier_lat", "courier_lon"]]


@pytest.mark.parametrize("restaurant_columns", ["all null", "absent"])
def test_a_ride_table_leaves_out_the_restaurant_features_with_one_log_line(
    events, restaurant_columns, caplog
):
    rides = ride_table(events)
    if restaurant_columns == "all null":
        rides = rides.assign(restaurant_lat=np.nan, restaurant_lon=np.nan, restaurant_id=pd.NA)
    with caplog.at_level(logging.INFO, logger="geo_busyness.model.features"):
        fitted = BusynessFeatures(n_clusters=2, horizon_hours=24).fit(
            rides, window_start=START, window_end=END
        )
    assert set(fitted.unavailable_features_) == RESTAURANT_FEATURES
    assert "restaurant_lat" in fitted.unavailable_features_["dist_to_restaurant"]
    assert "restaurant_id" in fitted.unavailable_features_["restaurants_per_index"]
    assert RESTAURANT_FEATURES.isdisjoint(fitted.get_feature_names_out())
    assert {"avg_Hdist_to_restaurants", "Five_Clusters_embedding"} <= set(fitted.feature_names_)
    (record,) = [r for r in caplog.records if "left out" in r.getMessage()]
    assert record.levelno == logging.INFO
    for name in [*RESTAURANT_FEATURES, "restaurant_lat", "restaurant_lon", "restaurant_id"]:
        assert name in record.getMessage()
    queries = cell_hour_queries(
        fitted.cells_, pd.Series(pd.date_range(END - DAY, periods=len(fitted.cells_), freq="h"))
    )
    out = fitted.transform(pd.concat([queries, queries_at(*FAR_POINT, "2026-01-20T03:00")]))
    assert list(out.columns) == list(fitted.get_feature_names_out())
    assert not out.isna().all().any(), out.columns[out.isna().all()].tolist()


def test_a_model_fits_on_ride_table_features(events):
    """The measured failure: HistGradientBoosting dies on an all-NaN feature column."""
    fitted = BusynessFeatures(n_clusters=2, horizon_hours=24).fit(
        ride_table(events), window_start=START, window_end=END
    )
    hours = pd.Series(pd.date_range(START, END, freq="h", inclusive="left"))
    queries = cell_hour_queries(
        np.repeat(fitted.cells_, len(hours)), pd.concat([hours] * len(fitted.cells_))
    )
    regressor = HistGradientBoostingRegressor(max_iter=5).fit(
        fitted.transform(queries), np.arange(len(queries)) % 3
    )
    assert regressor.n_features_in_ == len(fitted.feature_names_)


def test_a_courier_table_keeps_the_restaurant_features(fitted, caplog):
    assert fitted.unavailable_features_ == {}
    assert RESTAURANT_FEATURES <= set(fitted.get_feature_names_out())
    with caplog.at_level(logging.INFO, logger="geo_busyness.model.features"):
        BusynessFeatures(n_clusters=2).fit(hand_made_events())
    assert not [r for r in caplog.records if "left out" in r.getMessage()]


def test_feature_columns_skip_excluded_features_and_match_transform(events, fitted):
    lean = BusynessFeatures(
        n_clusters=2,
        horizon_hours=24,
        exclude_features=("date_day_number", "cell_hour_of_week_mean", "lag_24h"),
    ).fit(events, window_start=START, window_end=END)
    rows = pd.concat(
        [queries_at(*VENUES[1], "2026-01-13T12:30"), queries_at(*FAR_POINT, "2026-01-20T03:00")],
        ignore_index=True,
    )
    out = lean.transform(rows)
    assert list(out.columns) == list(lean.get_feature_names_out())
    pd.testing.assert_frame_equal(out, fitted.transform(rows)[list(out.columns)])
    # A transformer pickled before the centre features were stored computes them on the fly.
    older = BusynessFeatures(**lean.get_params()).fit(events, window_start=START, window_end=END)
    del older.cell_avg_hdist_, older.cell_cluster_
    pd.testing.assert_frame_equal(older.transform(rows), out)


def test_lags_from_the_lookup_arrays_equal_the_history_reindex(fitted, events):
    later = events.assign(
        courier_location_timestamp=events["courier_location_timestamp"] + pd.Timedelta(weeks=2)
    )
    extended = fitted.with_history(later, END + pd.Timedelta(days=3))
    hours = pd.date_range(START - pd.Timedelta(days=1), END + pd.Timedelta(days=4), freq="5h")
    rows = pd.concat(
        [queries_at(lat, lon, *hours.astype(str)) for lat, lon in (*VENUES, FAR_POINT)],
        ignore_index=True,
    )
    for features in (fitted, extended):
        older = copy.deepcopy(features)  # as pickled before the lookup arrays existed
        del older.history_cells_, older.history_keys_, older.history_counts_
        lags = ["lag_24h", "lag_168h"]
        pd.testing.assert_frame_equal(features.transform(rows)[lags], older.transform(rows)[lags])
    assert (
        extended.transform(rows)["lag_24h"].notna().sum()
        > fitted.transform(rows)["lag_24h"].notna().sum()
    )


def test_count_cell_hours_reuses_given_cells(events):
    cells = h3_cells(events["courier_lat"], events["courier_lon"], 7)
    pd.testing.assert_frame_equal(
        count_cell_hours(events, 7, cells=cells), count_cell_hours(events, 7)
    )
    counts = count_cell_hours(events, 7)
    assert str(counts["hour"].dtype) == "datetime64[ns, UTC]"
    assert counts.equals(counts.sort_values(["cell", "hour"], ignore_index=True))

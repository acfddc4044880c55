"""The forecaster: origin-based features that never see past their origin, the three methods,
intervals, combination weights, serving rows and the one predict path."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.cell_hours import HOUR_NS, count_cell_hours
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_centres, cell_names, h3_cells
from geo_busyness.model.history import CountHistory, DerivedHistory, history_from_counts
from geo_busyness.model.origin_features import MIN_ORIGIN, ORIGIN_FEATURES, origin_features
from geo_busyness.model.predict import predict_busyness, predict_cell_hours
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    TARGET,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)
from tests.point_events import place_events

START = pd.Timestamp("2026-01-05T06:00:00Z")  # local midnight in Regina, a Monday
WEEKS = 4
CENTRES = np.array([[50.45, -104.61], [50.43, -104.56], [50.49, -104.66]])
TZ = "America/Regina"
#: feature_engineering parameters of the per-cell statistics in these tests.
CELL_PARAMS = {
    "h3_resolution": 7,
    "n_clusters": 2,
    "random_state": 0,
    "validation_days": 7,
    "test_days": 7,
}


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """Three busy places, a daily and weekly rhythm, Poisson counts, a level step in week 4."""
    rng = np.random.default_rng(3)
    hours = pd.date_range(START, periods=WEEKS * 168, freq="h")
    local = hours.tz_convert(TZ)
    rhythm = 1 + np.sin((local.hour.to_numpy() - 6) / 24 * 2 * np.pi) + (local.day_of_week >= 5)
    level = np.where(np.arange(len(hours)) >= 3 * 168, 1.5, 1.0)
    frames = []
    for i, (lat, lon) in enumerate(CENTRES):
        counts = rng.poisson(np.clip(rhythm, 0.05, None) * level * (i + 1))
        frames.append(place_events(hours, counts, (lat, lon, i), rng, spread_in_hour=True))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def history(events) -> CountHistory:
    counts = count_cell_hours(events, 7)
    end = START + pd.Timedelta(weeks=WEEKS)
    return history_from_counts(counts, np.unique(counts[CELL]), START, end, TZ)


@pytest.fixture(scope="module")
def cell_features(events) -> BusynessFeatures:
    return BusynessFeatures(**cell_feature_params(CELL_PARAMS)).fit(events)


@pytest.fixture(scope="module")
def gbm(history, cell_features) -> BusynessForecaster:
    return BusynessForecaster(
        method="gradient_boosting",
        regressor_params={"max_iter": 40, "max_depth": 3, "min_samples_leaf": 20},
    ).fit(history, cell_features)


def _rows(history: CountHistory, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    origin = rng.integers(MIN_ORIGIN, history.hours, n)
    horizon = rng.integers(1, 169, n)
    return rng.integers(0, len(history.cells), n), origin, horizon


def test_a_feature_at_an_origin_never_changes_when_later_data_changes(history):
    """Leakage check: scramble every count at or after the origin; nothing at the origin moves."""
    rows, _, horizon = _rows(history, 400)
    origin = np.full(len(rows), 3 * 168 + 5)
    before = origin_features(
        DerivedHistory(history), rows, origin, horizon, shrink_weeks=4.0, holidays=np.array([])
    )
    scrambled = history.counts.copy()
    scrambled[:, origin[0] :] = np.random.default_rng(1).poisson(
        50, scrambled[:, origin[0] :].shape
    )
    changed = CountHistory(history.cells, history.start_ns, scrambled, history.timezone)
    after = origin_features(
        DerivedHistory(changed), rows, origin, horizon, shrink_weeks=4.0, holidays=np.array([])
    )
    assert set(before) == set(ORIGIN_FEATURES)
    for name in ORIGIN_FEATURES:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    # ...while the same scramble one hour earlier does move the last-hour feature.
    earlier = history.counts.copy()
    earlier[:, origin[0] - 1] += 7
    moved = origin_features(
        DerivedHistory(CountHistory(history.cells, history.start_ns, earlier, TZ)),
        rows,
        origin,
        horizon,
        shrink_weeks=4.0,
        holidays=np.array([]),
    )
    assert not np.array_equal(moved["last_hour_ratio"], before["last_hour_ratio"])


def test_the_profile_is_the_mean_of_the_same_hour_in_every_earlier_week(history):
    derived = DerivedHistory(history)
    t = 3 * 168 + 17
    expected = history.counts[:, [t - 168, t - 336, t - 504]].mean(axis=1)
    np.testing.assert_allclose(derived.profile[:-1, t], expected)
    assert np.isnan(derived.profile[0, 100])  # no earlier week yet
    # One week past the history the profile is still defined (a week-ahead forecast reads it).
    assert np.isfinite(derived.profile[:-1, history.hours + 100]).all()
    assert (derived.profile[-1, 168:] == 0).all()  # the unseen-cell row


def test_level_ratios_see_the_step(history):
    """The level steps up by half in week 4: the city's last-week ratio says so, a week before
    it does not."""
    derived = DerivedHistory(history)
    rows = np.zeros(2, dtype=int)
    features = origin_features(
        derived,
        rows,
        np.array([3 * 168, 4 * 168 - 1]),
        np.array([1, 1]),
        shrink_weeks=4.0,
        holidays=np.array([]),
    )
    ratio = np.exp(features["city_ratio_168h"])
    assert abs(ratio[0] - 1.0) < 0.1 and ratio[1] > 1.3


@pytest.mark.parametrize(
    "method",
    ["seasonal_naive", "level_adjusted", "recent_level", "pooled_level", "gradient_boosting"],
)
def test_every_method_answers_finite_counts_with_ordered_quantiles(method, history, cell_features):
    model = BusynessForecaster(
        method=method, regressor_params={"max_iter": 20, "max_depth": 3}
    ).fit(history, cell_features)
    hours = START + pd.Timedelta(weeks=WEEKS) + pd.to_timedelta(np.arange(30), "h")
    answers = predict_cell_hours(model, np.repeat(history.cells, 30), np.tile(hours, 3))
    assert list(answers.columns) == ["h3_cell", HOUR, PREDICTION, *INTERVAL_COLUMNS, HORIZON]
    assert np.isfinite(answers[PREDICTION]).all() and (answers[PREDICTION] >= 0).all()
    assert (answers["p10"] <= answers["p50"]).all() and (answers["p50"] <= answers["p90"]).all()
    assert answers[HORIZON].tolist() == list(range(1, 31)) * 3


@pytest.mark.slow  # learned models fitted on the whole test city
def test_the_learned_model_follows_levels_the_plain_profile_misses(history, cell_features):
    """Demand falls to 40% a week before the end (as Lyft's did in mid-September 2014): fitted
    on all but the last four days, scored a day ahead in them, the ratio model carries the
    new level through; the profile over past weeks cannot."""
    rng = np.random.default_rng(11)
    hours = history.hours
    regime = np.where(np.arange(hours) < hours - 168, 1.0, 0.4)
    rhythm = 1 + np.sin(np.arange(hours) / 24 * 2 * np.pi)
    counts = rng.poisson(np.outer([2, 4, 6], regime * rhythm)).astype(np.float32)
    moving = CountHistory(history.cells, history.start_ns, counts, TZ)
    step = hours - 96
    model = BusynessForecaster(
        method="gradient_boosting",
        regressor_params={"max_iter": 150, "learning_rate": 0.1, "min_samples_leaf": 20},
    ).fit(moving, cell_features, train_end=step)
    naive = BusynessForecaster(method="seasonal_naive").fit(moving, cell_features)
    origin = np.repeat(np.arange(step, hours - 23, 24), 24)
    horizon = np.tile(np.arange(1, 25), len(origin) // 24)
    rows = np.repeat(np.arange(3), len(origin))
    origin, horizon = np.tile(origin, 3), np.tile(horizon, 3)
    actual = counts[rows, origin + horizon - 1]
    model_error = np.abs(model.predict_rows(rows, origin, horizon) - actual).mean()
    naive_error = np.abs(naive.predict_rows(rows, origin, horizon) - actual).mean()
    assert model_error < 0.8 * naive_error


def test_serving_rows_forecast_from_the_end_and_wrap_past_a_week(gbm):
    end = gbm.history_.hours
    cells = np.repeat(gbm.history_.cells[:1], 4)
    hours = gbm.history_.start_ns + np.array([end, end + 5, end + 168 + 5, 100]) * HOUR_NS
    rows, origin, horizon = gbm.serving_rows(cells, hours)
    assert origin.tolist() == [end, end, end, 100]
    assert horizon.tolist() == [1, 6, 6, 1]  # 173 h ahead: the week-ahead of the same hour
    assert (rows == 0).all()
    assert gbm.origin == START + pd.Timedelta(weeks=WEEKS)


def test_unseen_cells_get_finite_answers(gbm):
    far = np.asarray([int(cell_names(gbm.history_.cells)[0], 16) ^ 0x1000000], dtype=np.uint64)
    answer = gbm.predict_pairs(far, np.array([gbm.history_.end_ns]))
    assert np.isfinite(answer["mean"]).all()


def test_with_counts_moves_the_origin_and_keeps_what_was_known(gbm, events):
    end = gbm.origin + pd.Timedelta(hours=5)
    later = pd.DataFrame({CELL: gbm.history_.cells, HOUR: [gbm.origin] * 3, TARGET: [9, 9, 9]})
    extended = gbm.with_counts(later, end)
    assert extended.origin == end and gbm.origin == end - pd.Timedelta(hours=5)
    np.testing.assert_array_equal(
        extended.history_.counts[:, : gbm.history_.hours], gbm.history_.counts
    )
    assert (extended.history_.counts[:, gbm.history_.hours] == 9).all()
    assert extended.regressor_ is gbm.regressor_  # no refit


def test_predict_busyness_answers_every_query_from_its_cell_and_hour(gbm):
    lat, lon = CENTRES[0]
    centre_lat, centre_lon = cell_centres(h3_cells([lat], [lon], 7))
    asked = pd.DataFrame(
        {
            EVENT_TIME: ["2026-02-02T12:05:00Z", "2026-02-02T12:55:00", "2026-02-02T13:01:00Z"],
            EVENT_LAT: [lat, centre_lat[0], lat],
            EVENT_LON: [lon, centre_lon[0], lon],
        },
        index=[7, 8, 9],
    )
    answers = predict_busyness(gbm, asked)
    assert list(answers.index) == [7, 8, 9]
    assert answers[HOUR].tolist() == [pd.Timestamp("2026-02-02T12:00Z")] * 2 + [
        pd.Timestamp("2026-02-02T13:00Z")
    ]
    assert answers[PREDICTION].iloc[0] == answers[PREDICTION].iloc[1]
    np.testing.assert_allclose(answers[PREDICTION].to_numpy(), gbm.predict(asked))
    with pytest.raises(KeyError, match="courier_lat"):
        predict_busyness(gbm, asked.drop(columns=EVENT_LAT))


def test_small_inputs_take_the_tree_fast_path_with_identical_numbers(gbm):
    rows, origin, horizon = _rows(gbm.history_, 20, seed=5)
    features, _ = gbm.design(rows, origin, horizon)
    np.testing.assert_array_equal(gbm._regress(features), gbm.regressor_.predict(features))


def test_a_pickled_forecaster_rebuilds_its_sums_and_answers_the_same(gbm):
    rows, origin, horizon = _rows(gbm.history_, 50, seed=7)
    expected = gbm.predict_rows(rows, origin, horizon)
    copy = pickle.loads(pickle.dumps(gbm))
    assert copy.__dict__.get("_derived") is None
    np.testing.assert_array_equal(copy.predict_rows(rows, origin, horizon), expected)


def test_cell_features_a_source_lacks_are_left_out(events, history):
    rides = events.assign(**{VENUE_LAT: np.nan, VENUE_LON: np.nan, VENUE_ID: pd.NA})
    features = BusynessFeatures(**cell_feature_params(CELL_PARAMS)).fit(rides)
    model = BusynessForecaster(method="gradient_boosting", regressor_params={"max_iter": 10}).fit(
        history, features
    )
    assert "dist_to_restaurant" not in model.feature_names_
    rows, origin, horizon = _rows(history, 100)
    matrix, _ = model.design(rows, origin, horizon)
    cell_columns = matrix[:, len(model.origin_feature_names_) :]
    assert not np.isnan(cell_columns).all(axis=0).any()


def _shifted_for_good(history: CountHistory) -> tuple[CountHistory, int]:
    """Six weeks of the fixture's cells whose demand falls to 40% at the start of week 5 and
    stays there; the position of the fall."""
    rng = np.random.default_rng(5)
    hours, fall = 6 * 168, 4 * 168
    regime = np.where(np.arange(hours) < fall, 1.0, 0.4)
    rhythm = 1 + np.sin(np.arange(hours) / 24 * 2 * np.pi)
    counts = rng.poisson(np.outer([2, 4, 6], regime * rhythm)).astype(np.float32)
    return CountHistory(history.cells, history.start_ns, counts, TZ), fall


@pytest.mark.slow  # learned models fitted twice on the whole test city
def test_a_level_adjusted_exposure_carries_a_lasting_fall_a_week_ahead(history, cell_features):
    """Trained before the fall, forecasting days 2-7 ahead from a week after it: the ratio to
    the plain profile meets a city ratio the trees never saw (they answer as at the edge of
    what they saw), while the ratio to the level-adjusted profile is one they did see."""
    moving, fall = _shifted_for_good(history)
    params = {"max_iter": 150, "learning_rate": 0.1, "min_samples_leaf": 20}
    errors = {}
    origin = fall + 168
    horizon = np.tile(np.arange(25, 169), 3)
    rows = np.repeat(np.arange(3), 144)
    actual = moving.counts[rows, origin + horizon - 1]
    for exposure in ("profile", "level_adjusted"):
        model = BusynessForecaster(
            method="gradient_boosting", exposure=exposure, regressor_params=params
        ).fit(moving, cell_features, train_end=fall)
        mean = model.predict_rows(rows, np.full(len(rows), origin), horizon)
        errors[exposure] = np.abs(mean - actual).mean()
    assert errors["level_adjusted"] < 0.6 * errors["profile"], errors


def test_an_unknown_exposure_is_refused(history, cell_features):
    with pytest.raises(ValueError, match="modeling.forecaster.exposure must be one of"):
        BusynessForecaster(method="gradient_boosting", exposure="level").fit(history, cell_features)


def test_an_artifact_pickled_before_exposure_existed_divides_by_the_profile(gbm):
    state = gbm.__getstate__()
    del state["exposure"]
    old = BusynessForecaster.__new__(BusynessForecaster)
    old.__setstate__(state)
    rows, origin, horizon = _rows(gbm.history_, 50, seed=3)
    assert old.exposure == "profile"
    np.testing.assert_array_equal(
        old.predict_rows(rows, origin, horizon), gbm.predict_rows(rows, origin, horizon)
    )


def test_an_artifact_with_a_two_way_blend_keeps_its_answers(gbm):
    """Artifacts pickled before the recent-level baseline weighed (learned, level-adjusted)."""
    blended = pickle.loads(pickle.dumps(gbm))
    blended.blend_weights_ = [[0.6, 0.4, 0.0]] * 3
    state = blended.__getstate__()
    state["blend_weights_"] = [[0.6, 0.4]] * 3
    for key in ("recency_weights_", "median_rule_", "fitted_through_ns_"):
        del state[key]
    old = BusynessForecaster.__new__(BusynessForecaster)
    old.__setstate__(state)
    rows, origin, horizon = _rows(gbm.history_, 50, seed=4)
    np.testing.assert_array_equal(
        old.predict_rows(rows, origin, horizon), blended.predict_rows(rows, origin, horizon)
    )
    mean = old.predict_rows(rows, origin, horizon)
    np.testing.assert_array_equal(
        old.quantiles(mean, horizon)[1], blended.quantiles(mean, horizon)[1]
    )


def test_the_recent_level_follows_a_level_change_the_profile_misses(history, cell_features):
    """Demand doubles for the last day: with weight on the 24-hour city ratio the recent level
    doubles its forecast of the next hours; the plain profile stays put."""
    counts = history.counts.copy()
    counts[:, -24:] *= 2
    doubled = CountHistory(history.cells, history.start_ns, counts, history.timezone)
    answers = []
    for known in (history, doubled):
        model = BusynessForecaster(method="recent_level").fit(known, cell_features)
        model.recency_weights_ = [[0.0, 1.0, 0.0, 0.0]] * 3
        rows = np.arange(len(history.cells))
        origin = np.full(len(rows), known.hours)
        horizon = np.full(len(rows), 12)
        answers.append(model.baseline_means(rows, origin, horizon))
        np.testing.assert_allclose(model.predict_rows(rows, origin, horizon), answers[-1][2])
    (plain, _, recent), (plain_doubled, _, recent_doubled) = answers
    np.testing.assert_allclose(plain_doubled, plain)
    assert 1.6 < recent_doubled.sum() / recent.sum() < 2.1

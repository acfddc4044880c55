"""SHAP explanations: additivity on both tree models, the top-k order, the blend weight, the
baseline statement, the query and cell-hour tables, and shap kept out of start-up."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.explain import (
    SCALES,
    contribution_table,
    describe,
    explain_busyness,
    explain_cell_hours,
    explain_pairs,
    explain_rows,
    global_summary,
    learned_weights,
    top_contributions,
)
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.geo import cell_centres
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    EXPLAIN_BASE,
    EXPLAIN_METHOD,
    EXPLAIN_OUTPUT,
    EXPLAIN_SCALE,
    LEARNED_WEIGHT,
    contribution_columns,
)
from tests.serving.model_fixture import END, fit_model

BLEND = [[0.8, 0.1], [0.5, 0.2], [0.3, 0.3]]


@pytest.fixture(scope="module")
def boosting() -> BusynessForecaster:
    """The serving tests' Poisson gradient boosting forecaster (a copy with a blend)."""
    model = copy.copy(fit_model())
    model.blend_weights_ = BLEND
    return model


@pytest.fixture(scope="module")
def forest(boosting: BusynessForecaster) -> BusynessForecaster:
    """A small Poisson forest on the same history and cell features."""
    return BusynessForecaster(
        method="random_forest",
        max_train_rows=5_000,
        regressor_params={"n_estimators": 8, "max_depth": 6, "min_samples_leaf": 20},
        random_state=0,
    ).fit(boosting.history_, boosting.cell_features_)


def _rows(model: BusynessForecaster, n: int = 300) -> tuple[np.ndarray, ...]:
    """Served rows from the model's origin: every cell, horizons 1-168."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, len(model.history_.cells), n)
    return rows, np.full(n, model.history_.hours), rng.integers(1, 169, n)


def test_gradient_boosting_contributions_add_up_to_its_log_ratio(boosting):
    rows, origin, horizon = _rows(boosting)
    explanation = explain_rows(boosting, rows, origin, horizon)
    features, _ = boosting.design(rows, origin, horizon)
    np.testing.assert_array_equal(explanation.features, features)
    raw = np.log(boosting.regressor_.predict(features))  # Poisson: the raw score is a log
    np.testing.assert_allclose(explanation.output, raw, rtol=0, atol=1e-9)
    assert (
        explanation.scale
        == SCALES["gradient_boosting"]
        == ("log ratio to the cell's seasonal profile")
    )
    # more than one feature carries the forecast, and it varies by row
    assert (np.abs(explanation.contributions).mean(axis=0) > 1e-6).sum() >= 3
    assert np.ptp(explanation.output) > 0.05


def test_random_forest_contributions_add_up_to_its_ratio(forest):
    rows, origin, horizon = _rows(forest)
    explanation = explain_rows(forest, rows, origin, horizon)
    features, _ = forest.design(rows, origin, horizon)
    np.testing.assert_allclose(
        explanation.output, forest.regressor_.predict(features), rtol=0, atol=1e-9
    )
    assert explanation.scale == "ratio to the cell's seasonal profile"
    assert (np.abs(explanation.contributions).mean(axis=0) > 1e-6).sum() >= 3


@pytest.mark.parametrize("k", [3, 5])
def test_top_contributions_are_the_largest_by_absolute_value(boosting, k):
    explanation = explain_rows(boosting, *_rows(boosting))
    table = contribution_table(explanation, k)
    size = np.abs(explanation.contributions)
    picked = np.column_stack(
        [table[contribution_columns(rank)[2]].to_numpy() for rank in range(1, k + 1)]
    )
    assert (np.diff(np.abs(picked), axis=1) <= 0).all()  # largest first
    # nothing left out is larger than the smallest listed
    kth = np.sort(size, axis=1)[:, -k]
    np.testing.assert_array_equal(np.abs(picked[:, -1]), kth)
    for rank in range(1, k + 1):
        feature, value, contribution = contribution_columns(rank)
        where = np.array([explanation.feature_names.index(f) for f in table[feature]])
        rows = np.arange(len(table))
        np.testing.assert_array_equal(table[contribution], explanation.contributions[rows, where])
        np.testing.assert_array_equal(table[value], explanation.features[rows, where])
    np.testing.assert_allclose(table[EXPLAIN_OUTPUT], explanation.output)
    assert (table[EXPLAIN_METHOD] == "gradient_boosting").all()


def test_top_k_ties_keep_feature_order_and_ranks_past_the_features_are_empty(boosting):
    explanation = explain_rows(boosting, *_rows(boosting, 2))
    tied = type(explanation)(
        explanation.method,
        ("a", "b", "c"),
        np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
        np.array([[0.1, -0.3, 0.3], [0.0, 0.0, 0.0]]),
        0.5,
        np.ones(2),
    )
    np.testing.assert_array_equal(top_contributions(tied, 2), [[1, 2], [0, 1]])
    table = contribution_table(tied, 4)
    assert table[contribution_columns(1)[0]].tolist() == ["b", "a"]
    assert table[contribution_columns(4)[0]].isna().all()
    assert table[contribution_columns(4)[2]].isna().all()
    np.testing.assert_allclose(table[EXPLAIN_OUTPUT], [0.6, 0.5])


def test_the_learned_weight_is_the_blend_weight_of_the_rows_horizon_bucket(boosting):
    horizon = np.array([1, 3, 4, 24, 25, 168])
    np.testing.assert_array_equal(
        learned_weights(boosting, horizon), [0.8, 0.8, 0.5, 0.5, 0.3, 0.3]
    )
    explanation = explain_rows(boosting, np.zeros(6, int), np.full(6, 500), horizon)
    np.testing.assert_array_equal(explanation.learned_weight, [0.8, 0.8, 0.5, 0.5, 0.3, 0.3])
    about = describe(boosting)
    assert about["learned_weight_by_horizon_hours"] == {"1-3": 0.8, "4-24": 0.5, "25-168": 0.3}
    assert "80% at 1-3 h ahead" in about["statement"]
    assert about["scale"] in about["statement"]
    unblended = BusynessForecaster(method="gradient_boosting")
    unblended.__dict__.update(boosting.__dict__, blend_weights_=None)
    np.testing.assert_array_equal(learned_weights(unblended, horizon), np.ones(6))


@pytest.mark.parametrize(
    ("method", "words"),
    [
        ("seasonal_naive", "mean at the same hour of the week over all past weeks)"),
        ("level_adjusted", "times the city's actual-to-profile ratio over the last week"),
    ],
)
def test_a_statistical_baseline_is_stated_not_explained(boosting, method, words):
    baseline = BusynessForecaster(method=method).fit(boosting.history_, boosting.cell_features_)
    about = describe(baseline)
    assert about["scale"] is None
    assert f"the statistical baseline '{method}'" in about["statement"]
    assert words in about["statement"]
    assert "there are no learned feature contributions" in about["statement"]
    explanation = explain_rows(baseline, *_rows(baseline, 5))
    assert explanation.feature_names == () and explanation.contributions.shape == (5, 0)
    table = contribution_table(explanation, 3)
    assert (table[EXPLAIN_METHOD] == method).all() and table[EXPLAIN_SCALE].isna().all()
    assert (table[LEARNED_WEIGHT] == 0).all()
    assert table[[EXPLAIN_BASE, EXPLAIN_OUTPUT]].isna().all().all()
    assert table[contribution_columns(1)[0]].isna().all()
    assert global_summary(explanation).empty


def test_query_rows_are_explained_as_they_are_answered(boosting):
    cells = boosting.history_.cells[:4]
    lat, lon = cell_centres(cells)
    hours = END + pd.to_timedelta([2, 30, 2, 200], unit="h")
    queries = pd.DataFrame(
        {EVENT_TIME: hours, EVENT_LAT: lat + 1e-4, EVENT_LON: lon},
        index=[10, 11, 12, 13],
    )
    queries = pd.concat([queries, queries.iloc[[0]].set_axis([14])])  # a repeated pair
    table = explain_busyness(boosting, queries, 2)
    assert list(table.index) == [10, 11, 12, 13, 14]
    expected = contribution_table(
        explain_pairs(boosting, np.asarray(cells), hours.as_unit("ns").asi8), 2
    )
    pd.testing.assert_frame_equal(table.iloc[:4].reset_index(drop=True), expected)
    pd.testing.assert_series_equal(table.iloc[0], table.iloc[4], check_names=False)
    by_hours = explain_cell_hours(boosting, cells, hours, 2)
    pd.testing.assert_frame_equal(by_hours, expected)
    assert explain_busyness(boosting, queries.iloc[:0], 2).empty


@pytest.mark.slow  # a fresh interpreter importing Kedro's pipelines and the server
def test_start_up_does_not_import_shap():
    script = (
        "import sys\n"
        "from kedro.framework.project import configure_project\n"
        "configure_project('geo_busyness')\n"
        "from geo_busyness.pipeline_registry import register_pipelines\n"
        "register_pipelines()\n"
        "import geo_busyness.serving.app, geo_busyness.serving.inference\n"
        "import geo_busyness.model.explain, geo_busyness.model.loading\n"
        "print(sorted(m for m in ('shap', 'numba', 'llvmlite') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"

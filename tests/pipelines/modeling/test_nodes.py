"""Modeling nodes on tiny inputs."""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeRegressor

from geo_busyness.pipelines.modeling.nodes import _progress_scorer


def test_grid_search_logs_one_progress_line_per_fit(caplog):
    rng = np.random.default_rng(0)
    x, y = rng.random((60, 3)), rng.random(60)
    scorer = _progress_scorer("neg_mean_absolute_error", ["max_depth"], fits=6)
    with caplog.at_level(logging.INFO, logger="geo_busyness.pipelines.modeling.nodes"):
        search = GridSearchCV(
            DecisionTreeRegressor(random_state=0),
            {"max_depth": [1, 2, 3]},
            cv=2,
            scoring=scorer,
        ).fit(x, y)
    lines = [r.getMessage() for r in caplog.records if "Grid search fit" in r.getMessage()]
    assert [line.split()[3] for line in lines] == [f"{i}/6" for i in range(1, 7)]
    assert "{'max_depth': 3}" in lines[-1]
    # The wrapped scorer returns what the named scorer does: the search ranks the same way.
    plain = GridSearchCV(
        DecisionTreeRegressor(random_state=0),
        {"max_depth": [1, 2, 3]},
        cv=2,
        scoring="neg_mean_absolute_error",
    ).fit(x, y)
    assert np.allclose(search.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"])

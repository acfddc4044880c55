"""The numpy walk of HistGradientBoosting trees is scikit-learn's prediction, to the bit.

It reads scikit-learn internals; a scikit-learn upgrade that changes them must fail here.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.tree import DecisionTreeRegressor

from geo_busyness.model.tree_ensemble import predict_ensemble, tree_ensemble


def test_predict_ensemble_equals_scikit_learn_bit_for_bit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = rng.poisson(np.exp(np.nan_to_num(X[:, 0]).clip(-2, 2)))
    regressor = HistGradientBoostingRegressor(loss="poisson", max_iter=40, random_state=0)
    regressor.fit(X, y)
    ensemble = tree_ensemble(regressor)
    assert ensemble is not None and tree_ensemble(regressor) is ensemble  # cached
    raw = predict_ensemble(ensemble, X[:50])
    np.testing.assert_array_equal(raw, regressor._raw_predict(X[:50]).ravel())
    np.testing.assert_array_equal(ensemble.link_inverse(raw), regressor.predict(X[:50]))
    assert tree_ensemble(DecisionTreeRegressor().fit(X[:, :1].clip(0), y)) is None
    regressor.set_params(max_iter=60, warm_start=True).fit(X, y)  # more trees, same list
    np.testing.assert_array_equal(
        predict_ensemble(tree_ensemble(regressor), X[:50]), regressor._raw_predict(X[:50]).ravel()
    )

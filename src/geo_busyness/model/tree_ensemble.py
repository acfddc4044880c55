"""Small inputs through a HistGradientBoostingRegressor, all trees at once in numpy.

scikit-learn predicts tree by tree: for one row, 300 Python-level calls cost ~3 ms, which is most
of a single-row request to the server. ``predict_ensemble`` walks every (row, tree) pair level by
level with scikit-learn's own rules and adds the leaves in boosting order, so its numbers are
bit-for-bit scikit-learn's. It reads two private attributes of scikit-learn (``_predictors``,
``_loss.link``; checked on 1.9): ``tests/model/test_tree_ensemble.py`` compares it with scikit-learn
exactly, so an upgrade that changes them fails there, not in production.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

#: Inputs up to this many rows go through ``predict_ensemble`` (numpy over all trees at once);
#: larger ones through scikit-learn, whose per-row cost is lower but per-tree cost higher.
SMALL_INPUT_ROWS = 32


class TreeEnsemble(NamedTuple):
    """The trees of a fitted HistGradientBoostingRegressor, flattened into node arrays.

    Leaves point to themselves, so walking ``depth`` steps from the roots ends on every leaf.
    """

    roots: np.ndarray  # first node of each tree, in boosting order
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    depth: int
    baseline: float
    link_inverse: Any


#: Regressor -> (its ``_predictors`` list, their count, the flattened trees). A warm-started fit
#: appends to the same list, so the count is checked too.
_ENSEMBLES: weakref.WeakKeyDictionary[Any, tuple[Any, int, TreeEnsemble]] = (
    weakref.WeakKeyDictionary()
)


def tree_ensemble(regressor: Any) -> TreeEnsemble | None:
    """The flattened trees of a single-output, numeric-only HistGradientBoostingRegressor
    (cached per fitted regressor), or None for any other estimator."""
    predictors = getattr(regressor, "_predictors", None)
    if type(regressor) is not HistGradientBoostingRegressor or not predictors:
        return None
    cached = _ENSEMBLES.get(regressor)
    if cached is not None and cached[0] is predictors and cached[1] == len(predictors):
        return cached[2]
    if regressor.n_trees_per_iteration_ != 1 or regressor.is_categorical_ is not None:
        return None
    trees = [tree.nodes for (tree,) in predictors]
    sizes = np.array([len(nodes) for nodes in trees])
    nodes = np.concatenate(trees)
    offset = np.repeat(np.cumsum(sizes) - sizes, sizes)
    leaf = nodes["is_leaf"].astype(bool)
    own = np.arange(len(nodes))
    ensemble = TreeEnsemble(
        roots=np.cumsum(sizes) - sizes,
        feature=np.where(leaf, 0, nodes["feature_idx"]),
        threshold=nodes["num_threshold"],
        missing_left=nodes["missing_go_to_left"].astype(bool),
        left=np.where(leaf, own, nodes["left"] + offset),
        right=np.where(leaf, own, nodes["right"] + offset),
        value=nodes["value"],
        depth=int(nodes["depth"].max()),
        baseline=float(np.ravel(regressor._baseline_prediction)[0]),
        link_inverse=regressor._loss.link.inverse,
    )
    _ENSEMBLES[regressor] = (predictors, len(predictors), ensemble)
    return ensemble


def predict_ensemble(ensemble: TreeEnsemble, X: np.ndarray) -> np.ndarray:
    """Raw predictions (baseline + leaf values, added tree by tree) of float64 rows ``X``.

    Follows scikit-learn's raw-data predictor: NaN goes to the node's missing side, otherwise
    left when ``x <= threshold``. A cumulative sum adds the leaves in boosting order, as
    scikit-learn does, so the result is bit-for-bit the same.
    """
    rows = np.arange(len(X))[:, None]
    node = np.broadcast_to(ensemble.roots, (len(X), len(ensemble.roots)))
    for _ in range(ensemble.depth):
        x = X[rows, ensemble.feature[node]]
        go_left = np.where(np.isnan(x), ensemble.missing_left[node], x <= ensemble.threshold[node])
        node = np.where(go_left, ensemble.left[node], ensemble.right[node])
    terms = np.empty((len(X), len(ensemble.roots) + 1))
    terms[:, 0] = ensemble.baseline
    terms[:, 1:] = ensemble.value[node]
    return np.cumsum(terms, axis=1)[:, -1]

"""Issue #23 item 1: the forecaster on disk in a format whose loading cannot run code.

Every method round-trips to bit-identical answers; a changed, missing, extra or digest-less
file, an object array, a pickle and an untrusted skops type are refused before any of them
is read into a model, and nothing the artifact carries is executed.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from geo_busyness.model.artifact import (
    ARRAYS,
    DIGEST_FILE,
    MANIFEST,
    STATE,
    file_sha256,
    load_forecaster,
    save_forecaster,
)
from geo_busyness.model.cell_hours import HOUR_NS, count_cell_hours
from geo_busyness.model.features import BusynessFeatures, cell_feature_params
from geo_busyness.model.forecaster import LEARNED, METHODS, BusynessForecaster
from geo_busyness.model.history import history_from_counts
from geo_busyness.model.loading import ArtifactIntegrityError
from tests.model.tampering import WritesMarker
from tests.serving.model_fixture import END, FEATURE_PARAMS, START, TIMEZONE, synthetic_events

#: Small and fast: a few trees on a few thousand rows.
REGRESSOR_PARAMS = {
    "gradient_boosting": {"max_iter": 8, "max_depth": 3},
    "random_forest": {"n_estimators": 4, "max_depth": 4},
}


class Parts(NamedTuple):
    """What a forecaster is fitted from (hashable by identity: ``fitted`` caches by it)."""

    history: Any
    features: BusynessFeatures
    counts: pd.DataFrame

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


@pytest.fixture(scope="module")
def parts():
    events = synthetic_events(3000, seed=5)
    features = BusynessFeatures(
        **cell_feature_params({**FEATURE_PARAMS, "validation_days": 7, "test_days": 7})
    ).fit(events, window_start=START, window_end=END)
    counts = count_cell_hours(events, FEATURE_PARAMS["h3_resolution"])
    history = history_from_counts(counts, features.cells_, START, END, TIMEZONE)
    return Parts(history, features, counts)


@functools.cache
def fitted(method: str, parts) -> BusynessForecaster:
    """A small forecaster of ``method``, with every chosen-on-validation attribute set (one per
    method and module: read-only for tests)."""
    history, features, _ = parts
    model = BusynessForecaster(
        method=method,
        max_train_rows=3000,
        regressor_params=REGRESSOR_PARAMS.get(method),
        grid={"min_samples_leaf": [5, 20]} if method == "random_forest" else None,
        cv_splits=2,
        holidays=("2026-01-19",),
        random_state=0,
    ).fit(history, features)
    model.size_ = [3.0, 2.0, 1.5]
    model.median_rule_ = ["poisson", "negative_binomial", "poisson"]
    model.recency_weights_ = [[0.5, 0.2, 0.2, 0.1]] * 3
    if method in LEARNED:
        model.blend_weights_ = [[0.6, 0.2, 0.1], [0.5, 0.3, 0.1], [0.4, 0.3, 0.2]]
    if method == "pooled_level":
        model.pool_weeks_ = 2.5
    return model


def every_pair(model: BusynessForecaster) -> tuple[np.ndarray, np.ndarray]:
    """Known and unseen cells x hours inside, before and after the history (two weeks on)."""
    cells = np.append(model.history_.cells, np.uint64(0x8727A0A9AFFFFFF) + np.uint64(1 << 40))
    hours = model.history_.start_ns + np.arange(-3, model.history_.hours + 340, 7) * HOUR_NS
    return np.repeat(cells, len(hours)), np.tile(hours, len(cells))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_round_trips_to_identical_answers(method, parts, tmp_path):
    model = fitted(method, parts)
    cells, hours = every_pair(model)
    before = model.predict_pairs(cells, hours)
    digest = save_forecaster(model, tmp_path / "artifact")
    loaded = load_forecaster(tmp_path / "artifact", digest)
    after = loaded.predict_pairs(cells, hours)
    for key, values in before.items():
        np.testing.assert_array_equal(after[key], values, err_msg=key)
    assert loaded.get_params() == model.get_params()
    assert loaded.search_ is None  # fit-only: dropped
    assert not any(name.endswith((".pkl", ".pickle")) for name in os.listdir(tmp_path / "artifact"))


def test_the_features_and_the_counts_state_survive_the_round_trip(parts, tmp_path):
    model = fitted("gradient_boosting", parts)
    save_forecaster(model, tmp_path / "a")
    loaded = load_forecaster(tmp_path / "a")
    pd.testing.assert_series_equal(loaded.cell_features_.history_, model.cell_features_.history_)
    queries = synthetic_events(50, seed=9)
    pd.testing.assert_frame_equal(
        loaded.cell_features_.transform(queries), model.cell_features_.transform(queries)
    )
    assert loaded.origin == model.origin
    _, _, counts = parts
    later = counts.assign(hour=counts["hour"] + pd.Timedelta(weeks=4))
    end = model.origin + pd.Timedelta(days=3)
    cells, hours = every_pair(model)
    extended, extended_loaded = model.with_counts(later, end), loaded.with_counts(later, end)
    assert extended_loaded.origin == end
    np.testing.assert_array_equal(
        extended_loaded.predict_pairs(cells, hours)["mean"],
        extended.predict_pairs(cells, hours)["mean"],
    )


@pytest.fixture(scope="module")
def saved(parts, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "artifact"
    save_forecaster(fitted("gradient_boosting", parts), folder)
    return folder


@pytest.fixture
def artifact(saved, tmp_path) -> Path:
    """A fresh copy of a saved artifact, for a test to damage."""
    return Path(shutil.copytree(saved, tmp_path / "artifact"))


def reseal(folder: Path) -> None:
    """Rewrite the manifest and the digest record to match the files (an attacker who can
    write the whole folder): only the format itself stands in the way then."""
    files = {
        p.name: file_sha256(p)
        for p in sorted(folder.iterdir())
        if p.name not in (MANIFEST, DIGEST_FILE)
    }
    manifest = {"format": "geo-busyness-forecaster", "version": 1, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    (folder / DIGEST_FILE).write_text(file_sha256(folder / MANIFEST))


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def estimator_file(folder: Path) -> Path:
    return next(folder.glob("*.skops"))


@pytest.mark.parametrize(
    "name", [STATE, ARRAYS, "skops", MANIFEST], ids=["json", "npz", "skops", "manifest"]
)
def test_a_changed_file_is_refused_naming_it(artifact, name):
    path = estimator_file(artifact) if name == "skops" else artifact / name
    flip_last_byte(path)
    with pytest.raises(ArtifactIntegrityError, match=path.name):
        load_forecaster(artifact)


def test_a_digest_less_artifact_is_refused(artifact):
    (artifact / DIGEST_FILE).unlink()
    with pytest.raises(ArtifactIntegrityError, match="records no digest"):
        load_forecaster(artifact)


def test_an_artifact_other_than_the_registered_one_is_refused(artifact):
    with pytest.raises(ArtifactIntegrityError, match="the registry says"):
        load_forecaster(artifact, "0" * 64)


def test_missing_and_extra_files_are_refused(artifact):
    (artifact / "model.pkl").write_bytes(b"not in the manifest")
    with pytest.raises(ArtifactIntegrityError, match="model.pkl"):
        load_forecaster(artifact)
    (artifact / "model.pkl").unlink()
    estimator_file(artifact).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_forecaster(artifact)


def test_a_pickled_object_array_is_refused_and_never_run(artifact, tmp_path):
    marker = tmp_path / "marker"
    with np.load(artifact / ARRAYS) as stored:
        arrays = dict(stored)
    payload = np.empty(1, dtype=object)
    payload[0] = WritesMarker(marker)
    arrays = {**arrays, **{next(iter(arrays)): payload}}  # the first array, as a pickle
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (artifact / ARRAYS).write_bytes(buffer.getvalue())
    reseal(artifact)
    with pytest.raises(ArtifactIntegrityError, match="cannot be read safely"):
        load_forecaster(artifact)
    assert not marker.exists()


def test_a_pickle_in_place_of_a_file_is_never_run(artifact, tmp_path):
    marker = tmp_path / "marker"
    for name in (STATE, estimator_file(artifact).name):
        (artifact / name).write_bytes(pickle.dumps(WritesMarker(marker)))
        reseal(artifact)
        with pytest.raises(Exception):  # noqa: B017, PT011 - refused, whichever parser sees it
            load_forecaster(artifact)
    assert not marker.exists()


def test_an_untrusted_skops_type_is_refused(artifact, tmp_path):
    marker = tmp_path / "marker"
    estimator_file(artifact).write_bytes(sio.dumps(FunctionTransformer(func=os.system)))
    reseal(artifact)
    with pytest.raises(ArtifactIntegrityError, match="outside the trusted list.*system"):
        load_forecaster(artifact)
    assert not marker.exists()


def test_object_arrays_are_never_written(parts, tmp_path):
    model = copy.copy(fitted("seasonal_naive", parts))
    model.holiday_days_ = np.array(["2026-01-19"], dtype=object)
    with pytest.raises(TypeError, match="holiday_days_: object arrays"):
        save_forecaster(model, tmp_path / "a")

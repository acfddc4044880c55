"""Issue #23 item 1 on the paths that need no registry: a local MLflow model directory, the
deployed copy `kedro serve` loads (data/06_models/deployment/serving/), model.tar.gz, the
SageMaker entry point and the catalog's ``busyness_model``. Each verifies the artifact's sha256
before reading model state, refuses a changed or digest-less one naming the file, and never
runs code planted in it. (The registry's paths: tests/test_registry_hardening.py.)"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from geo_busyness.datasets import ForecasterDataset
from geo_busyness.model.artifact import ARRAYS, DIGEST_FILE
from geo_busyness.model.loading import (
    ARTIFACT_DIR,
    ArtifactIntegrityError,
    artifact_digest,
    fetch_model,
    load_model,
)
from geo_busyness.model.predict import predict_busyness
from geo_busyness.pipelines.deployment.packaging import build_package, unpack_package
from tests.model.tampering import WritesMarker
from tests.model.test_artifact import flip_last_byte, reseal
from tests.serving.cases import GOOD_ROW

ROWS = pd.DataFrame([GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.47, "courier_lon": -104.55}])


def plant_pickle(model_dir: Path, marker: Path) -> None:
    """A pickle that writes ``marker`` when loaded, in place of the artifact's arrays, with the
    manifest and digest record resealed to match (an attacker who can write the folder)."""
    payload = np.empty(1, dtype=object)
    payload[0] = WritesMarker(marker)
    arrays = model_dir / ARTIFACT_DIR / ARRAYS
    with np.load(arrays) as stored:
        keys = list(stored.files)
    np.savez(arrays, **dict.fromkeys(keys, payload))  # every array the state names, pickled
    reseal(model_dir / ARTIFACT_DIR)


@pytest.fixture
def deployed_copy(unpacked_package, tmp_path) -> Path:
    """The package as the deployment pipeline leaves it for `kedro serve`."""
    target = tmp_path / "data/06_models/deployment/serving/geo-busyness-v1"
    return Path(shutil.copytree(unpacked_package, target))


def package_inference(model_dir: Path):
    """code/inference.py of an unpacked package, imported as the SKLearn container does."""
    spec = importlib.util.spec_from_file_location("h1_inference", model_dir / "code/inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop("h1_inference", None)
    return module


def test_every_local_path_answers_as_the_fitted_model(
    mlflow_model_dir, deployed_copy, busyness_model
):
    expected = predict_busyness(busyness_model, ROWS)
    for model in (
        load_model(mlflow_model_dir),
        load_model(deployed_copy),
        load_model(mlflow_model_dir / ARTIFACT_DIR),
        package_inference(deployed_copy).model_fn(str(deployed_copy)).model(),
    ):
        pd.testing.assert_frame_equal(predict_busyness(model, ROWS), expected)


def test_a_changed_byte_is_refused_on_every_local_path(mlflow_model_dir, deployed_copy, tmp_path):
    mlflow_copy = Path(shutil.copytree(mlflow_model_dir, tmp_path / "mlflow"))
    for model_dir in (mlflow_copy, deployed_copy):
        flip_last_byte(model_dir / ARTIFACT_DIR / ARRAYS)
        for load in (load_model, fetch_model):
            with pytest.raises(ArtifactIntegrityError, match=ARRAYS):
                load(model_dir)
    with pytest.raises(ArtifactIntegrityError, match=ARRAYS):
        package_inference(deployed_copy).model_fn(str(deployed_copy))
    with pytest.raises(ArtifactIntegrityError, match=ARRAYS):
        build_package(mlflow_copy, tmp_path / "model.tar.gz")


def test_changed_bundled_code_is_refused(mlflow_model_dir, deployed_copy, tmp_path):
    """The digest covers the code the model directory bundles (what a package ships)."""
    mlflow_copy = Path(shutil.copytree(mlflow_model_dir, tmp_path / "mlflow"))
    for model_dir in (mlflow_copy, deployed_copy):
        module = model_dir / "code/geo_busyness/model/forecaster.py"
        module.write_text(module.read_text() + "\nimport os  # planted\n")
        with pytest.raises(ArtifactIntegrityError, match="bundled code was changed"):
            load_model(model_dir)
    with pytest.raises(ArtifactIntegrityError, match="forecaster.py"):
        build_package(mlflow_copy, tmp_path / "model.tar.gz")


def test_a_digest_less_artifact_is_refused(mlflow_model_dir, tmp_path):
    model_dir = Path(shutil.copytree(mlflow_model_dir, tmp_path / "mlflow"))
    (model_dir / ARTIFACT_DIR / DIGEST_FILE).unlink()
    with pytest.raises(ArtifactIntegrityError, match="records no digest"):
        load_model(model_dir)


def test_a_pickled_model_directory_is_refused_unread(mlflow_model_dir, tmp_path):
    """A model saved the old way (model.pkl, no forecaster/) is refused, never unpickled."""
    marker = tmp_path / "code-ran"
    model_dir = tmp_path / "old"
    model_dir.mkdir()
    shutil.copy(mlflow_model_dir / "MLmodel", model_dir / "MLmodel")
    import pickle  # noqa: PLC0415 - to write the attacker's file only

    (model_dir / "model.pkl").write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(ArtifactIntegrityError, match="holds no forecaster/"):
        load_model(model_dir)
    assert not marker.exists()


def test_a_planted_pickle_never_runs_on_any_local_path(deployed_copy, tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    digest = artifact_digest(deployed_copy)
    plant_pickle(deployed_copy, marker)
    with pytest.raises(ArtifactIntegrityError, match="cannot be read safely"):
        load_model(deployed_copy)
    inference = package_inference(deployed_copy)
    with pytest.raises(ArtifactIntegrityError, match="cannot be read safely"):
        inference.model_fn(str(deployed_copy))
    # With the digest the registry recorded (the SageMaker Model's environment), refused unread.
    monkeypatch.setenv(inference.ENV_ARTIFACT_SHA256, digest)
    with pytest.raises(ArtifactIntegrityError, match="registry says"):
        inference.model_fn(str(deployed_copy))
    assert not marker.exists()


def repack(unpacked: Path, tarball: Path) -> Path:
    """A model.tar.gz of ``unpacked`` as it is now."""
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(unpacked.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(unpacked).as_posix())
    return tarball


def test_a_changed_package_is_refused_when_unpacked(
    model_package, deployed_copy, tmp_path, monkeypatch
):
    digest = model_package["artifact_sha256"]
    assert digest == artifact_digest(unpack_package(model_package["path"], tmp_path / "ok", digest))
    flip_last_byte(deployed_copy / ARTIFACT_DIR / ARRAYS)
    tampered = repack(deployed_copy, tmp_path / "tampered.tar.gz")
    with pytest.raises(ArtifactIntegrityError, match=ARRAYS):
        unpack_package(tampered, tmp_path / "out")
    marker = tmp_path / "code-ran"
    resealed = Path(shutil.copytree(tmp_path / "ok", tmp_path / "resealed"))
    plant_pickle(resealed, marker)
    with pytest.raises(ArtifactIntegrityError, match="registry says"):
        unpack_package(repack(resealed, tmp_path / "resealed.tar.gz"), tmp_path / "out2", digest)
    assert not marker.exists()


def test_the_catalog_model_round_trips_and_refuses_a_changed_file(busyness_model, tmp_path):
    dataset = ForecasterDataset(filepath=str(tmp_path / "06_models" / "busyness_model"))
    assert not dataset.exists()
    dataset.save(busyness_model)
    dataset.save(busyness_model)  # replaces the folder whole
    assert dataset.exists()
    pd.testing.assert_frame_equal(
        predict_busyness(dataset.load(), ROWS), predict_busyness(busyness_model, ROWS)
    )
    assert sorted(p.name for p in (tmp_path / "06_models").iterdir()) == ["busyness_model"]
    flip_last_byte(tmp_path / "06_models" / "busyness_model" / ARRAYS)
    with pytest.raises(DatasetError, match=ARRAYS) as refused:  # Kedro wraps load errors
        dataset.load()
    assert isinstance(refused.value.__cause__, ArtifactIntegrityError)


def test_the_versioned_catalog_model_loads_its_latest_save(busyness_model, tmp_path):
    from kedro.io import Version  # noqa: PLC0415

    path = str(tmp_path / "busyness_model")
    ForecasterDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(
        busyness_model
    )
    loaded = ForecasterDataset(filepath=path, version=Version(None, None)).load()
    assert loaded.origin == busyness_model.origin
    assert (tmp_path / "busyness_model/2026-01-01T00.00.00.000Z/busyness_model").is_dir()


def test_the_catalog_model_on_remote_storage_round_trips(busyness_model):
    """The upload/download branch (S3 in the cloud environment), on fsspec's memory store."""
    from kedro.io import Version  # noqa: PLC0415

    path = "memory://h1-bucket/06_models/busyness_model"
    saved = ForecasterDataset(filepath=path, version=Version(None, None))
    assert not saved.exists()
    saved.save(busyness_model)
    loaded = ForecasterDataset(filepath=path, version=Version(None, None))
    assert loaded.exists()
    pd.testing.assert_frame_equal(
        predict_busyness(loaded.load(), ROWS), predict_busyness(busyness_model, ROWS)
    )

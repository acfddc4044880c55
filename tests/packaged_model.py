"""Fixtures of serving and deployment tests: one real small model, saved as the registry logs
it (``geo_busyness.registry.save_model``: a safe artifact, no pickle), packaged and unpacked.
Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_busyness.pipelines.deployment.packaging import build_package, unpack_package
from tests.serving.model_fixture import fit_model, save_model

#: ``model`` as an MLflow model directory in the registry's safe format (re-exported).
save_safe_model = save_model


@pytest.fixture(scope="session")
def busyness_model():
    """The fitted BusynessForecaster (read-only for tests)."""
    return fit_model()


@pytest.fixture(scope="session")
def mlflow_model_dir(busyness_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_safe_model(busyness_model, tmp_path_factory.mktemp("mlflow") / "model")


@pytest.fixture(scope="session")
def model_package(mlflow_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """model.tar.gz built by the project's packaging."""
    return build_package(mlflow_model_dir, tmp_path_factory.mktemp("package") / "model.tar.gz")


@pytest.fixture(scope="session")
def unpacked_package(model_package: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package unpacked as SageMaker does into /opt/ml/model."""
    return unpack_package(model_package["path"], tmp_path_factory.mktemp("opt_ml") / "model")

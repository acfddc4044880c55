"""In-memory runs of the pipelines on one tiny generated city, each stage from the one before
(session-scoped: the chain runs once, whichever pipeline tests ask for it)."""

from __future__ import annotations

from typing import Any

import pytest

from geo_busyness.pipelines.data_generation.nodes import generate_events
from geo_busyness.pipelines.data_processing.pipeline import create_pipeline as data_processing
from geo_busyness.pipelines.feature_engineering.pipeline import (
    create_pipeline as feature_engineering,
)
from geo_busyness.pipelines.modeling.pipeline import create_pipeline as modeling
from tests.pipelines.memory import (
    TINY_GENERATION,
    TINY_TRAINING,
    project_parameters,
    run_in_memory,
)

#: The modeling nodes that need an MLflow tracking store (the rest run in memory).
REGISTRY_NODES = ("load_champion", "gate_and_register")
#: What ``load_champion`` returns when no version is the champion (the first model).
NO_CHAMPION = {"model_name": "geo-busyness", "alias": "champion", "version": None, "model": None}


@pytest.fixture(scope="session")
def tiny_parameters() -> dict[str, Any]:
    """The project's parameters for the tiny city."""
    return project_parameters({"data_generation": TINY_GENERATION} | TINY_TRAINING)


@pytest.fixture(scope="session")
def tiny_raw_events(tiny_parameters: dict[str, Any]):
    """Raw events of the tiny city, from the project's generator."""
    raw, _labels, _summary = generate_events(tiny_parameters["data_generation"])
    return raw


@pytest.fixture(scope="session")
def processed_in_memory(tiny_raw_events, tiny_parameters) -> dict[str, Any]:
    """data_processing's outputs."""
    return run_in_memory(data_processing(), {"raw_events": tiny_raw_events}, tiny_parameters)


@pytest.fixture(scope="session")
def features_in_memory(processed_in_memory, tiny_parameters) -> dict[str, Any]:
    """feature_engineering's outputs."""
    return run_in_memory(feature_engineering(), processed_in_memory, tiny_parameters)


@pytest.fixture(scope="session")
def modeled_in_memory(processed_in_memory, features_in_memory, tiny_parameters) -> dict[str, Any]:
    """modeling's outputs without the registry's nodes (no champion, nothing registered)."""
    pipeline = modeling()
    unregistered = pipeline.only_nodes(
        *(node.name for node in pipeline.nodes if node.name not in REGISTRY_NODES)
    )
    inputs = processed_in_memory | features_in_memory | {"serving_champion": NO_CHAMPION}
    return run_in_memory(unregistered, inputs, tiny_parameters)

"""The one door to MLflow's registry: register a gated model, find and load the version to use.

Modeling registers; deployment, batch inference and monitoring select a version with
``select_model_version``, so "which model" means the same thing everywhere: an explicit
version, else the first alias that exists (e.g. ``champion``, then ``challenger``). Every
``MlflowClient`` call of the project goes through ``_client`` here.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geo_busyness.model.bundle import bundle_code, model_requirements
from geo_busyness.model.loading import (
    DIGEST_TAG,
    MLMODEL,
    artifact_digest,
    fetch_model,
    find_model_dir,
    load_model,
    parameter_mismatches,
)
from geo_busyness.model.predict import as_forecaster
from geo_busyness.model.pyfunc import LOADER_MODULE as PYFUNC_LOADER

logger = logging.getLogger(__name__)

#: Where the model card goes in the registering run's artifacts.
MODEL_CARD_DIR = "model_card"


class ModelNotFound(LookupError):
    """No registered version matches the requested version or aliases."""


def _client():
    """The MLflow client (tracking URI as the Kedro session set it)."""
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - ~5 s import, the session set the URI

    return MlflowClient()


def resolve_version(
    name: str, *, version: str | int | None = None, aliases: Sequence[str] = ()
) -> dict[str, Any]:
    """The registered version to use: ``version`` if given, else the first alias that exists."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    client = _client()
    if version not in (None, ""):
        try:
            found, chosen_by = client.get_model_version(name, str(version)), f"version {version}"
        except MlflowException as error:
            raise ModelNotFound(
                f"Registered model {name!r} has no version {version!r}: {error.message}"
            ) from error
    else:
        found = chosen_by = None
        for alias in aliases:
            try:
                found, chosen_by = client.get_model_version_by_alias(name, alias), f"alias {alias}"
                break
            except Exception:  # noqa: BLE001 - MlflowException: alias or model absent; try the next
                continue
        if found is None:
            raise ModelNotFound(
                f"No version of registered model {name!r} has any of the aliases {list(aliases)}:"
                " run the modeling pipeline (a version is registered only if it passes the gate)"
                " or name a version in parameters."
            )
    return {
        "model_name": name,
        "version": str(found.version),
        "chosen_by": chosen_by,
        "run_id": found.run_id,
        "model_uri": f"models:/{name}/{found.version}",
        "tags": dict(found.tags or {}),
    }


def select_model_version(params: dict[str, Any]) -> dict[str, Any]:
    """Node: the version named by ``params`` (``registered_model_name``, ``model_version``,
    ``aliases``): ``model_version`` if set, else the first of ``aliases`` that exists."""
    chosen = resolve_version(
        params["registered_model_name"],
        version=params.get("model_version"),
        aliases=params["aliases"],
    )
    logger.info(
        "Using %s version %s (%s)", chosen["model_name"], chosen["version"], chosen["chosen_by"]
    )
    return chosen


def load_version(model_version: dict[str, Any]) -> Any:
    """The version's model artifact (a BusynessForecaster), loaded as the server loads it."""
    uri = model_version["model_uri"]
    with tempfile.TemporaryDirectory(prefix="geo-busyness-model-") as download:
        try:
            model = load_model(fetch_model(uri, download))
        except FileNotFoundError as error:  # MLflow downloads nothing from a vanished store
            raise FileNotFoundError(
                f"Cannot load {uri} ({model_version['chosen_by']}): {error} Its artifacts were"
                " moved or deleted; re-register the model (run the modeling pipeline)."
            ) from error
    return as_forecaster(model)  # fails here, not mid-run, if it is not the busyness model


def check_model_parameters(
    model: Any, model_version: dict[str, Any], h3_resolution: int, source_timezone: str
) -> list[dict[str, Any]]:
    """Node: the loaded model's own parameters against this run's, one WARNING per difference.

    The run goes on with the selected model (its own resolution and timezone), never with
    another one; the returned entries (each with its ``message``) go into the run's report.
    """
    mismatches = parameter_mismatches(
        model,
        {
            "feature_engineering.h3_resolution": h3_resolution,
            "data_processing.source_timezone": source_timezone,
        },
    )
    for mismatch in mismatches:
        mismatch["message"] = (
            f"Model {model_version['model_name']} version {model_version['version']}"
            f" ({model_version['chosen_by']}) was fitted with {mismatch['model_attribute']}="
            f"{mismatch['model_value']!r}, but this run's {mismatch['parameter']} is"
            f" {mismatch['run_value']!r}: its answers use the model's"
            f" {mismatch['model_value']!r}. Retrain with the run's parameters, or select a"
            " version fitted with them."
        )
        logger.warning("%s", mismatch["message"])
    return mismatches


def register_model(model: Any, example: Any, name: str, alias: str) -> str:
    """Log ``model`` to the active run, register it under ``name`` with ``alias``: the version.

    The version is tagged with ``artifact_sha256`` (``artifact_digest`` of the files as
    stored), which ``fetch_model`` checks before anything unpickles them. Its pyfunc flavour
    answers as the server does (``geo_busyness.model.pyfunc``).
    """
    import mlflow  # noqa: PLC0415
    from mlflow.models import Model  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as code_dir:
        info = Model.log(
            artifact_path=None,
            name="model",
            flavor=_BusynessFlavor,
            sk_model=model,
            registered_model_name=name,
            # No input signature: MLflow would enforce it before the model sees the rows and
            # refuse UTC-aware times and ISO text, which the pyfunc flavour reads as the server.
            signature=False,
            input_example=example,
            pip_requirements=model_requirements(),
            code_paths=[str(bundle_code(Path(code_dir)))],
            # skops cannot hold the transformer's pandas state; classes pickle by reference and
            # their modules travel in code_paths.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        )
    version = str(info.registered_model_version)
    with tempfile.TemporaryDirectory(prefix="geo-busyness-digest-") as stored:
        local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=stored)
        digest = artifact_digest(find_model_dir(local))
    client = _client()
    client.set_model_version_tag(name, version, DIGEST_TAG, digest)
    client.set_registered_model_alias(name, alias, version)
    return version


class _BusynessFlavor:
    """``mlflow.sklearn`` with the pyfunc flavour's loader pointed at ``model/pyfunc.py``."""

    @staticmethod
    def save_model(path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import mlflow.sklearn  # noqa: PLC0415
        from mlflow.pyfunc import FLAVOR_NAME  # noqa: PLC0415

        mlflow.sklearn.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
        mlflow_model.flavors[FLAVOR_NAME]["loader_module"] = PYFUNC_LOADER
        mlflow_model.save(str(Path(path) / MLMODEL))


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    """Set every tag on the model version (values as strings)."""
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def log_model_card(card: dict[str, Any], text: str) -> None:
    """Log the card (JSON and its markdown ``text``) to the active run; the markdown becomes
    the model version's description."""
    import mlflow  # noqa: PLC0415

    mlflow.log_dict(card, f"{MODEL_CARD_DIR}/model_card.json")
    mlflow.log_text(text, f"{MODEL_CARD_DIR}/model_card.md")
    model = card["model"]
    _client().update_model_version(model["name"], model["version"], description=text)


def run_tags(run_id: str) -> dict[str, str]:
    """The tags of an MLflow run."""
    return dict(_client().get_run(run_id).data.tags)


def run_metrics(run_id: str) -> dict[str, float]:
    """The finite metrics of an MLflow run."""
    metrics = _client().get_run(run_id).data.metrics
    return {key: value for key, value in metrics.items() if math.isfinite(value)}


def run_json_artifact(run_id: str, path: str) -> Any:
    """A JSON artifact of an MLflow run, parsed."""
    import mlflow  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
        return json.loads(Path(local).read_text())


def alias_version(name: str, alias: str) -> str | None:
    """The version ``alias`` points at (None if it is not set)."""
    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except Exception:  # noqa: BLE001 - MlflowException: the alias or the model is absent
        return None


def move_alias(name: str, alias: str, version: str) -> str | None:
    """Point ``alias`` at ``version``; the version it pointed at before (None if unset)."""
    previous = alias_version(name, alias)
    _client().set_registered_model_alias(name, alias, version)
    return previous

"""The MLflow model registry: register a gated model with its card, find the version to use.

Modeling registers; deployment, batch inference and monitoring look a version up here, so
"which model" means the same thing everywhere: an explicit version, else the first alias
that exists (``champion``, then ``challenger``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import geo_busyness

logger = logging.getLogger(__name__)

#: What unpickling the model needs: bundled with it (code_paths) so it loads without the project.
ARTIFACT_MODULES = (
    "__init__.py",
    "cell_hours.py",
    "features.py",
    "geo.py",
    "schemas.py",
    "tree_ensemble.py",
)
ARTIFACT_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "pyarrow", "h3", "h3ronpy", "pandera")
#: Where the model card goes in the registering run's artifacts.
MODEL_CARD_DIR = "model_card"


class ModelNotFound(LookupError):
    """No registered version matches the requested version or aliases."""


def _client():
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


def load_version(model_version: dict[str, Any]) -> Any:
    """The version's model artifact (sklearn Pipeline), loaded as the server loads it."""
    from geo_busyness.features import _as_sklearn  # noqa: PLC0415
    from geo_busyness.serving.model import fetch_model, load_model  # noqa: PLC0415

    uri = model_version["model_uri"]
    with tempfile.TemporaryDirectory(prefix="geo-busyness-model-") as download:
        try:
            model = load_model(fetch_model(uri, download))
        except FileNotFoundError as error:  # MLflow downloads nothing from a vanished store
            raise FileNotFoundError(
                f"Cannot load {uri} ({model_version['chosen_by']}): {error} Its artifacts were"
                " moved or deleted; re-register the model (run the modeling pipeline)."
            ) from error
    return _as_sklearn(model)  # fails here, not mid-run, if it is not the busyness pipeline


def git_revision() -> str:
    """The current commit (``git rev-parse HEAD``), or "unknown" outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def params_digest(**sections: dict[str, Any]) -> str:
    """sha256 of named parameter sections (canonical JSON), to tell runs with the same settings."""
    text = json.dumps(sections, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def bundle_code(dest: Path) -> Path:
    """A minimal ``geo_busyness`` package (the modules the pickled model refers to) under dest."""
    package = dest / "geo_busyness"
    package.mkdir()
    for module in ARTIFACT_MODULES:
        shutil.copy(Path(geo_busyness.__file__).parent / module, package / module)
    return package


def register_model(model: Any, example: Any, name: str, alias: str) -> str:
    """Log ``model`` to the active run, register it under ``name`` with ``alias``: the version."""
    import mlflow.sklearn  # noqa: PLC0415
    from mlflow.models import infer_signature  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as code_dir:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=[
                f"{dist}=={installed_version(dist)}" for dist in ARTIFACT_REQUIREMENTS
            ],
            code_paths=[str(bundle_code(Path(code_dir)))],
            # skops cannot hold the transformer's pandas state; classes pickle by reference and
            # their modules travel in code_paths.
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        )
    version = str(info.registered_model_version)
    _client().set_registered_model_alias(name, alias, version)
    return version


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    """Set every tag on the model version (values as strings)."""
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def model_card(report: dict[str, Any], registration: dict[str, Any]) -> dict[str, Any]:
    """The model card of a registered version, from its evaluation report."""
    test = report["test"]
    return {
        "model": {
            "name": registration["model_name"],
            "version": registration["version"],
            "alias_at_registration": registration["alias"],
            "type": report["model_selection"]["chosen"],
            "git_revision": registration["tags"].get("git_revision", "unknown"),
            "params_sha256": registration["tags"].get("params_sha256", "unknown"),
        },
        "intended_use": (
            "Forecast the number of events (e.g. order pick-ups) per H3 cell per hour for hours"
            " after the training data, to place couriers and set incentives. The answer for a"
            " query (timestamp, lat, lon) is the busyness of its cell in its hour."
        ),
        "data_windows": report["time_windows"],
        "metrics_test_window": {
            "model": test["model"],
            "seasonal_naive_baseline": test["seasonal_naive_baseline"],
            "rows": test["rows"],
        },
        "leaky_reference_protocol_r2": report["leaky_reference_protocol"]["metrics"]["r2"],
        "gate": report["gate"],
        "limits": [
            "Cells never seen in the training window get the unseen-cell encoding: their"
            " forecasts rest on location features alone.",
            "Trained on one city's history; a new district, new restaurants or a change in"
            " demand pattern needs retraining (the monitoring pipeline says when).",
            "Counts, not capacity: busyness is events per cell-hour, not couriers needed.",
            "The margin over the seasonal-naive baseline is small on the synthetic default data;"
            " compare both before acting on a forecast.",
        ],
    }


def model_card_markdown(card: dict[str, Any]) -> str:
    """The card as markdown (MLflow shows it as the model version's description)."""
    model, test = card["model"], card["metrics_test_window"]
    rows = "\n".join(
        f"| {metric} | {test['model'][metric]:.4f} | {test['seasonal_naive_baseline'][metric]:.4f} |"
        for metric in test["model"]
    )
    windows = "\n".join(f"- {key}: {value}" for key, value in card["data_windows"].items())
    gate = card["gate"]
    limits = "\n".join(f"- {limit}" for limit in card["limits"])
    return (
        f"# {model['name']} version {model['version']}\n\n"
        f"{model['type']}; git {model['git_revision']}; params sha256 {model['params_sha256']}\n\n"
        f"## Intended use\n{card['intended_use']}\n\n"
        f"## Data windows (UTC)\n{windows}\n\n"
        f"## Test-window metrics ({test['rows']} cell-hours)\n"
        f"| metric | model | seasonal-naive baseline |\n| --- | --- | --- |\n{rows}\n\n"
        f"Leaky reference protocol R² (not comparable, shown for context): "
        f"{card['leaky_reference_protocol_r2']:.4f}\n\n"
        f"## Gate\n{'passed' if gate['passed'] else 'failed'}: {gate['rule']}"
        f" (min_r2 {gate['min_r2']})\n\n"
        f"## Limits\n{limits}\n"
    )


def log_model_card(card: dict[str, Any]) -> str:
    """Log the card (JSON and markdown) to the active run; the markdown becomes the description."""
    import mlflow  # noqa: PLC0415

    text = model_card_markdown(card)
    mlflow.log_dict(card, f"{MODEL_CARD_DIR}/model_card.json")
    mlflow.log_text(text, f"{MODEL_CARD_DIR}/model_card.md")
    model = card["model"]
    _client().update_model_version(model["name"], model["version"], description=text)
    return text

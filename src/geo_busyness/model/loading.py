"""Loading the busyness model artifact, wherever it lives, without running code from it.

A model location is an MLflow model directory (holding ``MLmodel`` and the forecaster's
artifact folder ``forecaster/``), an unpacked ``model.tar.gz`` (the MLflow model files at its
root, ``code/`` beside them), an artifact folder itself (the catalog's ``busyness_model``), or
an MLflow URI: ``models:/name/3``, ``models:/name@champion``, ``models:/m-<id>``,
``runs:/<run>/model`` (downloaded first). The artifact is JSON, ``.npz`` and skops files
(``geo_busyness.model.artifact``): loading it never unpickles anything. Its sha256 is checked
on every path before a byte of model state is read: against the digest recorded at
registration for an MLflow URI (the version's, or the logged model's, ``artifact_sha256``
tag; a version without it never finished registering and is refused), and against the
record the artifact carries everywhere. The server, the SageMaker entry points, batch
inference and monitoring all load it here and answer through ``geo_busyness.model.predict``.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

MLMODEL = "MLmodel"
#: The forecaster's artifact folder inside an MLflow model directory.
ARTIFACT_DIR = "forecaster"
#: Model-version (and logged-model) tag holding the artifact's digest as registered.
DIGEST_TAG = "artifact_sha256"
#: Environment variable of a serving container naming the artifact's digest as registered (the
#: SageMaker Model's ``Environment``, set by deployment; ``serving/inference.py`` checks it).
ENV_ARTIFACT_SHA256 = "GEO_BUSYNESS_ARTIFACT_SHA256"
#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
#: ``models:/m-<id>``: a logged model, by id.
_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")
#: ``runs:/<run>/<name>``: the model a run logged under ``name``.
_RUN_URI = re.compile(r"^runs:/(?P<run>[0-9a-f]+)/(?P<name>[\w.-]+)/?$")

logger = logging.getLogger(__name__)


class ArtifactIntegrityError(RuntimeError):
    """The model's files are not the ones recorded (or record no digest): refused before any
    model state is read."""


def artifact_digest(model_dir: str | Path) -> str:
    """The digest of a model location's artifact as it is now (the sha256 of its manifest)."""
    from geo_busyness.model.artifact import MANIFEST, file_sha256  # noqa: PLC0415

    return file_sha256(artifact_dir(model_dir) / MANIFEST)


def artifact_dir(location: str | Path) -> Path:
    """The forecaster's artifact folder of a local model location: ``forecaster/`` of an
    MLflow model directory, or the location itself when it is an artifact folder."""
    from geo_busyness.model.artifact import DIGEST_FILE, MANIFEST  # noqa: PLC0415

    path = Path(location)
    if (path / MANIFEST).is_file() or (path / DIGEST_FILE).is_file():
        return path
    model_dir = find_model_dir(path)
    folder = model_dir / ARTIFACT_DIR
    if not folder.is_dir():
        raise ArtifactIntegrityError(
            f"{_shown(model_dir)} holds no {ARTIFACT_DIR}/ artifact (a pickled model from before"
            " the safe format, or not a busyness model): refused. Re-register it (kedro run)."
        )
    return folder


def registry_digest(location: str) -> str | None:
    """The digest recorded in MLflow for a URI: the version's ``artifact_sha256`` tag for
    ``models:/name/N`` and ``@alias``, the logged model's for ``models:/m-<id>`` and
    ``runs:/<run>/<name>``. None for another scheme (the copy's own record is checked);
    ``ArtifactIntegrityError`` when the record should be there and is not."""
    text = str(location)
    registry, logged, run = (p.match(text) for p in (_REGISTRY_URI, _LOGGED_MODEL_URI, _RUN_URI))
    if not (registry or logged or run):
        if text.startswith(("models:/", "runs:/")):
            raise ArtifactIntegrityError(
                f"{_shown(text)}: name the model as models:/<name>/<version>, models:/<name>@"
                "<alias>, models:/m-<id> or runs:/<run>/<name>, whose digest MLflow records;"
                " refused."
            )
        return None
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy; MLflow URIs only

    client = MlflowClient()
    if registry:
        if registry["version"]:
            version = client.get_model_version(registry["name"], registry["version"])
        else:
            version = client.get_model_version_by_alias(registry["name"], registry["alias"])
        digest = (version.tags or {}).get(DIGEST_TAG)
        if not digest:
            raise ArtifactIntegrityError(
                f"{_shown(text)} (version {version.version}) has no {DIGEST_TAG} tag: its"
                " registration did not finish, so it is never served. Register the model again"
                " (kedro run)."
            )
        return digest
    if logged:
        models = [client.get_logged_model(logged["id"])]
    else:
        experiment = client.get_run(run["run"]).info.experiment_id
        models = client.search_logged_models(
            experiment_ids=[experiment],
            filter_string=f"source_run_id = '{run['run']}' AND name = '{run['name']}'",
        )
    digests = {(model.tags or {}).get(DIGEST_TAG) for model in models} - {None, ""}
    if len(digests) != 1:
        raise ArtifactIntegrityError(
            f"{_shown(text)}: MLflow records no {DIGEST_TAG} for this model (found"
            f" {len(digests)} digests): its registration did not finish; refused."
        )
    return digests.pop()


def verify_artifact(model_dir: str | Path, expected: str | None, location: str) -> None:
    """Refuse a model whose artifact (and the code it bundles) does not hash to its own record
    and ``expected``."""
    from geo_busyness.model.artifact import verify_artifact as verify  # noqa: PLC0415
    from geo_busyness.model.artifact import verify_bundled  # noqa: PLC0415

    try:
        folder = artifact_dir(model_dir)
        verify(folder, expected)
        verify_bundled(folder)
    except ArtifactIntegrityError as error:
        raise ArtifactIntegrityError(f"{_shown(location)}: {error}") from None


def _shown(location: str | Path) -> str:
    """A location for messages, credentials masked (a URI may carry them)."""
    from geo_busyness.redaction import redact  # noqa: PLC0415

    return redact(location)


def find_model_dir(path: str | Path) -> Path:
    """The MLflow model directory at ``path``: itself, or its one subfolder holding ``MLmodel``."""
    path = Path(path)
    if (path / MLMODEL).is_file():
        return path
    candidates = sorted(found.parent for found in path.glob(f"*/{MLMODEL}"))
    if len(candidates) == 1:
        return candidates[0]
    raise FileNotFoundError(
        f"No MLflow model in {path}: expected an {MLMODEL} file there or in exactly one subfolder"
        f" (found {len(candidates)})."
    )


def is_local(location: str | Path) -> bool:
    """Whether ``location`` is a path on this machine rather than an MLflow URI."""
    text = str(location)
    return "://" not in text and not text.startswith(("models:/", "runs:/"))


#: Name prefix of a temporary model copy (a folder of the system's temporary directory).
TEMPORARY_COPY_PREFIX = "geo-busyness-model-"
#: Temporary copies made or handed to this process, each with the id of the process that
#: removes it when it exits (a forked child inherits the list and the exit handler too).
_TEMPORARY_COPIES: dict[Path, int] = {}


def _remove_temporary_copies() -> None:
    """Remove the temporary model copies of this process (not those of the parent it forked
    from)."""
    for folder, owner in list(_TEMPORARY_COPIES.items()):
        if owner == os.getpid():
            shutil.rmtree(folder, ignore_errors=True)
            _TEMPORARY_COPIES.pop(folder, None)


atexit.register(_remove_temporary_copies)


def temporary_model_dir() -> Path:
    """A new folder for a downloaded model, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix=TEMPORARY_COPY_PREFIX))
    _TEMPORARY_COPIES[folder] = os.getpid()
    return folder


def _is_temporary_copy(folder: Path) -> bool:
    """A ``geo-busyness-model-*`` folder of the temporary directory (the server makes its own)."""
    return folder.parent.resolve() == Path(
        tempfile.gettempdir()
    ).resolve() and folder.name.startswith(TEMPORARY_COPY_PREFIX)


def fetch_model(location: str | Path, dst: str | Path | None = None) -> Path:
    """A local, verified model directory for ``location``, downloading an MLflow URI into
    ``dst``.

    The digest MLflow recorded for a URI (``registry_digest``) is asked before the download;
    the copy is checked against it and against its own record (``verify_artifact``): a changed
    or digest-less artifact is refused with ``ArtifactIntegrityError``. Without ``dst``, or
    with a ``geo-busyness-model-*`` folder of the temporary directory, the copy is temporary:
    removed at once when refused or not fetched whole, else when the process exits.
    """
    if is_local(location):
        path = Path(location)
        model_dir = path if artifact_dir(path) == path else find_model_dir(path)
        verify_artifact(model_dir, None, str(location))
        return model_dir
    import mlflow  # noqa: PLC0415 - heavy; only needed for MLflow URIs

    dst = Path(dst) if dst is not None else temporary_model_dir()
    temporary = _is_temporary_copy(dst)
    if temporary:
        _TEMPORARY_COPIES[dst] = os.getpid()
    try:
        expected = registry_digest(str(location))  # asked before the download: as registered
        local = mlflow.artifacts.download_artifacts(artifact_uri=str(location), dst_path=str(dst))
        model_dir = find_model_dir(local)
        verify_artifact(model_dir, expected, str(location))
    except BaseException:
        if temporary:  # a tampered or half-downloaded copy goes now, not at exit
            shutil.rmtree(dst, ignore_errors=True)
            _TEMPORARY_COPIES.pop(dst, None)
        raise
    return model_dir


def load_model(
    location: str | Path, expected: str | None = None, dst: str | Path | None = None
) -> Any:
    """The busyness model (a ``BusynessForecaster``) at ``location``, verified (``fetch_model``,
    downloading an MLflow URI into ``dst``; also against ``expected`` when the caller knows the
    digest) and read without unpickling: nothing of it stays open once loaded."""
    from geo_busyness.model.artifact import load_forecaster  # noqa: PLC0415

    model_dir = fetch_model(location, dst)
    try:
        return load_forecaster(artifact_dir(model_dir), expected)
    except ArtifactIntegrityError as error:
        raise ArtifactIntegrityError(f"{_shown(location)}: {error}") from None


#: The model's own parameters a run can disagree with: the forecaster's attribute (its H3
#: resolution and the time zone of its calendar) -> the run parameter that should hold the
#: same value.
MODEL_PARAMETERS = {
    "resolution": "feature_engineering.h3_resolution",
    "timezone": "data_processing.source_timezone",
}


def parameter_mismatches(model: Any, run_parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the model's own parameters differ from the run's, one entry per parameter.

    ``run_parameters`` maps run parameter names (values of ``MODEL_PARAMETERS``) to their
    values. ``model`` is the forecaster (or a pyfunc wrapping it). A parameter the model does
    not record, or the run does not give, is not compared. The model keeps answering with its
    own value.
    """
    if hasattr(model, "get_raw_model"):  # an MLflow pyfunc: its forecaster holds the values
        model = model.get_raw_model()
    mismatches = []
    for attribute, parameter in MODEL_PARAMETERS.items():
        own, run = getattr(model, attribute, None), run_parameters.get(parameter)
        if own is None or run is None or own == run:
            continue
        mismatches.append(
            {
                "parameter": parameter,
                "model_attribute": attribute,
                "model_value": own,
                "run_value": run,
            }
        )
    return mismatches

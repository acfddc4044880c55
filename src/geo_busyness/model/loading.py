"""Loading the busyness model artifact, wherever it lives.

A model location is an MLflow model directory (holding ``MLmodel``), an unpacked
``model.tar.gz`` (the MLflow model files at its root, ``code/`` beside them), or an MLflow URI
such as ``models:/geo-busyness@champion`` (downloaded first). The loaded object is the
``BusynessForecaster`` that training logged (with ``mlflow.sklearn``); the server, the
SageMaker entry points, batch inference and monitoring all load it here and answer through
``geo_busyness.model.predict``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MLMODEL = "MLmodel"
_ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
#: Model-version tag holding ``artifact_digest`` of the artifact as registered.
DIGEST_TAG = "artifact_sha256"
#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")

#: Files MLflow writes on the caller's side when it downloads a registry version (not stored).
_NOT_STORED = frozenset({"registered_model_meta"})

logger = logging.getLogger(__name__)


class ArtifactIntegrityError(RuntimeError):
    """The model's files are not the ones recorded at registration: refused, never unpickled."""


def artifact_digest(model_dir: str | Path) -> str:
    """sha256 over every file of an MLflow model directory (its relative path and its bytes'
    sha256, in path order): the pickle, the bundled code and the MLmodel alike. Bytecode caches
    (written when the bundled code is imported) and the ``registered_model_meta`` MLflow adds on
    download are left out."""
    root = Path(model_dir)
    manifest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if (
            relative in _NOT_STORED
            or "__pycache__" in relative.split("/")
            or relative.endswith(".pyc")
        ):
            continue
        content = hashlib.sha256()
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                content.update(block)
        manifest.update(f"{relative}\0{content.hexdigest()}\n".encode())
    return manifest.hexdigest()


def recorded_digest(location: str) -> str | None:
    """The digest recorded on the registry version a ``models:/`` URI names (None if the URI
    names no registry version, or the version predates the record)."""
    match = _REGISTRY_URI.match(str(location))
    if match is None:
        return None
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - heavy; registry URIs only

    client = MlflowClient()
    if match["version"]:
        version = client.get_model_version(match["name"], match["version"])
    else:
        version = client.get_model_version_by_alias(match["name"], match["alias"])
    return (version.tags or {}).get(DIGEST_TAG)


def verify_artifact(model_dir: str | Path, expected: str | None, location: str) -> None:
    """Refuse a model directory whose files differ from the digest recorded at registration."""
    if not expected:
        logger.warning(
            "%s has no %s tag (registered before artifacts were fingerprinted): loading it"
            " unverified; re-register it (kedro run) to have it checked.",
            _shown(location),
            DIGEST_TAG,
        )
        return
    actual = artifact_digest(model_dir)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"The model artifact of {_shown(location)} was changed after registration: its files"
            f" hash to {actual[:16]}..., the registry recorded {expected[:16]}... Refusing to"
            " load it (loading unpickles code). Re-register the model (kedro run) if the change"
            " was intended."
        )


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
    """A local MLflow model directory for ``location``, downloading an MLflow URI into ``dst``.

    A registry version (``models:/name/3``, ``models:/name@champion``) is checked against the
    digest recorded when it was registered (``DIGEST_TAG``): a changed artifact is refused
    with ``ArtifactIntegrityError`` before anything unpickles it. Without ``dst``, or with a
    ``geo-busyness-model-*`` folder of the temporary directory, the copy is temporary: removed
    at once when refused or not fetched whole, else when the process exits.
    """
    if is_local(location):
        return find_model_dir(location)
    import mlflow  # noqa: PLC0415 - heavy; only needed for registry URIs

    dst = Path(dst) if dst is not None else temporary_model_dir()
    temporary = _is_temporary_copy(dst)
    if temporary:
        _TEMPORARY_COPIES[dst] = os.getpid()
    try:
        expected = recorded_digest(str(location))  # asked before the download: as registered
        local = mlflow.artifacts.download_artifacts(artifact_uri=str(location), dst_path=str(dst))
        model_dir = find_model_dir(local)
        if _REGISTRY_URI.match(str(location)):
            verify_artifact(model_dir, expected, str(location))
    except BaseException:
        if temporary:  # a tampered or half-downloaded copy goes now, not at exit
            shutil.rmtree(dst, ignore_errors=True)
            _TEMPORARY_COPIES.pop(dst, None)
        raise
    return model_dir


@contextlib.contextmanager
def _trusted_deserialization() -> Iterator[None]:
    """Let MLflow unpickle the model it is pointed at (MLflow 3 refuses without this flag)."""
    previous = os.environ.get(_ALLOW_PICKLE)
    os.environ[_ALLOW_PICKLE] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_ALLOW_PICKLE, None)
        else:
            os.environ[_ALLOW_PICKLE] = previous


def load_model(location: str | Path) -> Any:
    """The busyness model (a ``BusynessForecaster``) at ``location``.

    Loading deserialises the artifact, which can run code: only point this at models from the
    project's own registry or packages (the server and the SageMaker container do exactly that).
    """
    import mlflow.sklearn  # noqa: PLC0415 - ~5 s import; the server loads in the background

    model_dir = fetch_model(location)
    with _trusted_deserialization():
        return mlflow.sklearn.load_model(str(model_dir))


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

"""``model.tar.gz`` for SageMaker: the MLflow model files plus ``code/`` for the SKLearn container.

Layout (SageMaker unpacks it into ``/opt/ml/model``)::

    MLmodel, model.*, requirements.txt, ...   the MLflow model, unchanged
    code/inference.py                         model_fn/input_fn/predict_fn/output_fn
    code/requirements.txt                     what the container pip-installs at start
    code/geo_busyness/...                     the project modules inference.py imports

MLflow's ``code_paths`` also live under ``code/``: modules the model bundled there are kept
(the code it was saved with); only the missing ones (the serving modules) are added. Both
lists, and the requirements, come from ``geo_busyness.model.bundle``.

The model's artifact (``forecaster/``: JSON, ``.npz``, skops; no pickle) carries its digest
inside the package (``forecaster/artifact_sha256``, also in ``MLmodel``), the same digest the
registry records on the version: the package is built only from an artifact that matches it,
and unpacking checks it again (``unpack_package``), as ``code/inference.py``'s ``model_fn``
does before reading any model state.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from geo_busyness.model.artifact import file_sha256
from geo_busyness.model.bundle import (
    PACKAGE,
    PACKAGE_DIR,
    model_modules,
    module_closure,
    requirements,
)
from geo_busyness.model.loading import (
    MLMODEL,
    artifact_digest,
    find_model_dir,
    verify_artifact,
)

CODE_DIR = "code"
#: The container's entry module, copied to ``code/inference.py``.
INFERENCE_MODULE = f"{PACKAGE}.serving.inference"


def package_modules() -> tuple[str, ...]:
    """Files of ``geo_busyness`` under ``code/``: the model's bundle and what inference imports."""
    return tuple(sorted({*model_modules(), *module_closure([INFERENCE_MODULE])}))


def serving_requirements() -> list[str]:
    """Pinned distributions that ``code/inference.py`` and the modules it imports need."""
    return requirements(module_closure([INFERENCE_MODULE]))


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement line."""
    for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower().replace("_", "-")


def code_requirements(model_dir: Path) -> list[str]:
    """The model's pinned requirements plus pins for whatever serving needs beyond them."""
    lines: list[str] = []
    model_requirements = model_dir / "requirements.txt"
    if model_requirements.is_file():
        lines = [
            line.strip()
            for line in model_requirements.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-"))
        ]
    named = {_name(line) for line in lines}
    if "mlflow-skinny" in named:
        named.add("mlflow")
    lines += [line for line in serving_requirements() if _name(line) not in named]
    return lines


def _copy_package_modules(code: Path) -> None:
    """Add the modules the model did not bundle; the model's own copies are kept."""
    target = code / PACKAGE
    for module in package_modules():
        destination = target / module
        if destination.exists():
            continue  # bundled by the model itself: the version its digest covers
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / module, destination)


def build_package(
    model_dir: str | Path, output: str | Path, expected_sha256: str | None = None
) -> dict[str, Any]:
    """Write ``output`` (model.tar.gz) for the MLflow model in ``model_dir``; describe it.

    The model's artifact must match its own digest and ``expected_sha256`` (the registry's,
    when given): a changed artifact is refused (``ArtifactIntegrityError``), never packaged.
    """
    model_dir = find_model_dir(model_dir)
    verify_artifact(model_dir, expected_sha256, str(model_dir))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geo-busyness-package-") as staging:
        stage = Path(staging) / "model"
        shutil.copytree(model_dir, stage, ignore=shutil.ignore_patterns("__pycache__"))
        code = stage / CODE_DIR
        code.mkdir(exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / "serving" / "inference.py", code / "inference.py")
        requirements = code_requirements(model_dir)
        (code / "requirements.txt").write_text("\n".join(requirements) + "\n")
        _copy_package_modules(code)
        members = sorted(path for path in stage.rglob("*") if path.is_file())
        partial = output.with_name(output.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for path in members:
                tar.add(path, arcname=path.relative_to(stage).as_posix(), recursive=False)
        partial.replace(output)
    return {
        "path": str(output),
        "sha256": file_sha256(output),
        "artifact_sha256": artifact_digest(model_dir),
        "bytes": output.stat().st_size,
        "files": [path.relative_to(stage).as_posix() for path in members],
        "requirements": requirements,
    }


def _plain_members(tar: tarfile.TarFile, destination: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders that land inside ``destination``; refuse anything else."""
    root = destination.resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise ValueError(
                f"Refusing to unpack {member.name!r}: not a plain file inside the package."
            )
    return tar.getmembers()


def unpack_package(
    tarball: str | Path, destination: str | Path, expected_sha256: str | None = None
) -> Path:
    """Unpack a model.tar.gz (as SageMaker does into /opt/ml/model); returns ``destination``.

    The unpacked artifact is checked against the digest inside the package and
    ``expected_sha256`` (the registry's, when given): ``ArtifactIntegrityError`` otherwise.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # Python < 3.11.4 has no extraction filters: check the members ourselves
            tar.extractall(destination, members=_plain_members(tar, destination))
    if not (destination / MLMODEL).is_file():
        raise FileNotFoundError(f"{tarball} holds no {MLMODEL} at its root.")
    verify_artifact(destination, expected_sha256, str(tarball))
    return destination

"""The one door to MLflow's registry: register a gated model, find and load the version to use.

Modeling registers; deployment, batch inference and monitoring select a version with
``select_model_version``, so "which model" means the same thing everywhere: an explicit
version, else the first alias that exists (e.g. ``champion``, then ``challenger``). Every
``MlflowClient`` call of the project goes through ``_client`` here, with the deadlines of
``remote`` in force.

Runs killed with kill -9 (or on a machine that went away) stay RUNNING in MLflow: each run is
tagged with the process that runs it (``tag_run_owner``), and ``fail_stale_runs`` marks the
RUNNING runs whose process is certainly gone (this machine and container, pid gone or reused)
FAILED at the next run's start, and those it cannot check (another machine, no owner tag) only
after ``STALE_AFTER_S``. A run whose owner is alive is never touched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from geo_busyness.model.bundle import bundle_code, model_requirements
from geo_busyness.model.loading import (
    ARTIFACT_DIR,
    DIGEST_TAG,
    MLMODEL,
    artifact_digest,
    find_model_dir,
    load_model,
    parameter_mismatches,
)
from geo_busyness.model.predict import as_forecaster
from geo_busyness.model.pyfunc import LOADER_MODULE as PYFUNC_LOADER
from geo_busyness.remote import bound_remote_calls

logger = logging.getLogger(__name__)

#: Where the model card goes in the registering run's artifacts.
MODEL_CARD_DIR = "model_card"


class ModelNotFound(LookupError):
    """No registered version matches the requested version or aliases."""


def _client():
    """The MLflow client (tracking URI as the Kedro session set it), its calls bounded in time."""
    from mlflow.tracking import MlflowClient  # noqa: PLC0415 - ~5 s import, the session set the URI

    bound_remote_calls(storage=False)
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
    try:
        model = load_model(uri)  # verified against the version's recorded digest
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


def register_model(
    model: Any, example: Any, name: str, alias: str, tags: Mapping[str, Any] | None = None
) -> str:
    """Log ``model`` to the active run, register it under ``name`` with ``alias``: the version.

    Two phases, so no version is ever served unchecked: the model is logged, its stored copy
    downloaded, hashed (``artifact_digest``) and read back, the logged model tagged with the
    digest, and only then the version created, its ``artifact_sha256`` tag (and ``tags``, as
    text) given in the same call; the alias moves last. A crash in between leaves no version,
    or a version no loader serves ("registration did not finish"). Its pyfunc flavour
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
            input_example=example,
            pip_requirements=model_requirements(),
            code_paths=[str(bundle_code(Path(code_dir)))],
        )
    with tempfile.TemporaryDirectory(prefix="geo-busyness-digest-") as stored:
        local = mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=stored)
        model_dir = find_model_dir(local)
        digest = artifact_digest(model_dir)
        load_model(model_dir, digest)  # the stored copy reads back, before anyone may serve it
    client = _client()
    client.set_logged_model_tags(info.model_id, {DIGEST_TAG: digest})
    version_tags = {**{key: str(value) for key, value in (tags or {}).items()}, DIGEST_TAG: digest}
    version = mlflow.register_model(info.model_uri, name, tags=version_tags).version
    client.set_registered_model_alias(name, alias, str(version))
    return str(version)


#: The flavour's name in ``MLmodel`` (beside ``python_function``).
FLAVOR_NAME = "geo_busyness"


def save_model(
    model: Any,
    path: str | Path,
    *,
    mlflow_model: Any = None,
    code_paths: Sequence[str] = (),
    pip_requirements: Sequence[str] | None = None,
    input_example: Any = None,
    **_: Any,
) -> Path:
    """An MLflow model directory for the forecaster at ``path``: its artifact (``forecaster/``,
    no pickle), the bundled code, requirements, and a pyfunc flavour whose loader is
    ``model/pyfunc.py`` and whose signature declares the ``explain`` parameter."""
    from mlflow.models import Model, ModelSignature  # noqa: PLC0415
    from mlflow.models.utils import _save_example  # noqa: PLC0415
    from mlflow.pyfunc import add_to_model  # noqa: PLC0415
    from mlflow.types.schema import ParamSchema, ParamSpec  # noqa: PLC0415
    from mlflow.utils.environment import _PythonEnv  # noqa: PLC0415
    from mlflow.utils.model_utils import _validate_and_copy_code_paths  # noqa: PLC0415

    from geo_busyness.model.artifact import file_sha256, save_forecaster  # noqa: PLC0415

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    mlflow_model = Model() if mlflow_model is None else mlflow_model
    code = _validate_and_copy_code_paths(list(code_paths), str(path))
    if input_example is not None:
        _save_example(mlflow_model, input_example, str(path))
    bundled = {
        file.relative_to(path).as_posix(): file_sha256(file)
        for file in sorted((path / code).rglob("*") if code else ())
        if file.is_file() and "__pycache__" not in file.parts
    }
    digest = save_forecaster(model, path / ARTIFACT_DIR, bundled)  # the digest covers the code
    # Only the explain option: an input schema would refuse the times the server takes.
    mlflow_model.signature = ModelSignature(
        inputs=None, params=ParamSchema([ParamSpec("explain", "long", 0)])
    )
    requirements = list(model_requirements() if pip_requirements is None else pip_requirements)
    (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    _PythonEnv.current().to_yaml(str(path / "python_env.yaml"))
    add_to_model(
        mlflow_model,
        loader_module=PYFUNC_LOADER,
        data=ARTIFACT_DIR,
        code=code,
        python_env="python_env.yaml",
    )
    mlflow_model.add_flavor(FLAVOR_NAME, data=ARTIFACT_DIR, artifact_sha256=digest, code=code)
    mlflow_model.save(str(path / MLMODEL))
    return path


class _BusynessFlavor:
    """The flavour ``Model.log`` saves with (``save_model``): no pickle anywhere."""

    @staticmethod
    def save_model(path: str, mlflow_model: Any, sk_model: Any, **kwargs: Any) -> None:
        save_model(sk_model, path, mlflow_model=mlflow_model, **kwargs)


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


#: Run tags: the process running the run ("pid@host"), and what tells that process apart from
#: a later one with the same pid ("boot id/pid namespace/start time in clock ticks", Linux).
OWNER_TAG = "geo_busyness.owner"
OWNER_PROCESS_TAG = "geo_busyness.owner_process"
#: Tag saying why ``fail_stale_runs`` closed a run.
CLOSED_TAG = "geo_busyness.closed_because"
#: A RUNNING run whose owner cannot be checked from here (another machine or container, a
#: reboot since, no owner tag) is taken for dead only when it started this long ago.
STALE_AFTER_S = 24 * 3600.0


def process_identity(pid: int) -> str | None:
    """The identity ("boot id/pid namespace/start ticks") of process ``pid`` as seen from here,
    None when no such process is visible (or this system has no ``/proc``)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 is the start time; the command name (field 2) may hold spaces and parentheses.
    start_ticks = stat.rsplit(")", 1)[1].split()[19]
    return f"{boot}/{namespace}/{start_ticks}"


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The owner tags of a run run by process ``pid`` (this process by default)."""
    pid = os.getpid() if pid is None else pid
    return {
        OWNER_TAG: f"{pid}@{socket.gethostname()}",
        OWNER_PROCESS_TAG: process_identity(pid) or "",
    }


def tag_run_owner(run_id: str) -> None:
    """Record this process as the owner of ``run_id``."""
    client = _client()
    for key, value in owner_tags().items():
        client.set_tag(run_id, key, value)


def owner_state(
    tags: Mapping[str, str],
    host: str,
    identity_of: Callable[[int], str | None] = process_identity,
) -> str:
    """Whether the process a run's owner tags name is ``"alive"``, ``"gone"``, or cannot be
    checked from here (``"unknown"``: another host, container or boot, or no tags).

    Gone means certainly gone: this host, boot and pid namespace, and its pid is free or
    belongs to a process started at another time.
    """
    owner, recorded = tags.get(OWNER_TAG, ""), tags.get(OWNER_PROCESS_TAG, "")
    pid, _, owner_host = owner.partition("@")
    here = identity_of(os.getpid())
    if owner_host != host or not pid.isdigit() or not recorded or here is None:
        return "unknown"
    if recorded.rsplit("/", 1)[0] != here.rsplit("/", 1)[0]:
        return "unknown"  # another boot (or a machine of the same name) or container
    return "alive" if identity_of(int(pid)) == recorded else "gone"


def stale_reason(tags: Mapping[str, str], started_s: float, now_s: float, host: str) -> str | None:
    """Why a RUNNING run started at ``started_s`` (epoch seconds) is dead, None if it may not be."""
    state = owner_state(tags, host)
    if state == "gone":
        return f"its process {tags[OWNER_TAG]} is gone (killed or crashed)"
    if state == "unknown" and now_s - started_s > STALE_AFTER_S:
        owner = tags.get(OWNER_TAG) or "no owner recorded"
        return f"RUNNING for {(now_s - started_s) / 3600:.0f} h and its owner ({owner}) cannot be checked"
    return None


def fail_stale_runs(experiment_id: str, keep: str | None = None) -> dict[str, str]:
    """Mark the experiment's RUNNING runs that are dead (``stale_reason``) FAILED, each tagged
    with why; ``keep`` (the caller's own run) is never touched. Returns run id -> why."""
    client = _client()
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    host, now_s, closed = socket.gethostname(), time.time(), {}
    for run in running:
        if run.info.run_id == keep:
            continue
        why = stale_reason(run.data.tags, run.info.start_time / 1000, now_s, host)
        if why is None:
            continue
        client.set_tag(run.info.run_id, CLOSED_TAG, why)
        client.set_terminated(run.info.run_id, status="FAILED")
        closed[run.info.run_id] = why
    return closed

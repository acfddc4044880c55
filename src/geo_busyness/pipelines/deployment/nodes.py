"""Deployment nodes: check the selected version passed the gate, package it, deploy it, promote it.

The nodes only glue the registry (``geo_busyness.registry``, the one door to MLflow), the
packaging (``packaging``) and the targets (the local model store, ``sagemaker``) together.

The outcome (``deployment_outcome``) and the record (``deployment_record``) both carry
``status`` (``deployed``, ``unchanged`` or ``rolled_back``) and ``rolled_back`` (bool); a
rolled-back update also carries ``reason``. A rolled-back version is not promoted: the
champion alias stays where it was (``champion_version`` in the record), and the version is
tagged ``rollout=rolled_back`` in the registry. The run ends successfully with that record,
unless ``fail_on_rollback`` is true: then ``check_rollout`` raises ``DeploymentRolledBack``
after the record is saved.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from geo_busyness.model.geo import cell_centres
from geo_busyness.model.loading import DIGEST_TAG, ENV_ARTIFACT_SHA256, fetch_model
from geo_busyness.registry import (
    alias_version,
    move_alias,
    run_json_artifact,
    run_metrics,
    run_tags,
    tag_version,
)
from geo_busyness.schemas import HORIZON, PREDICTION

from .packaging import build_package, unpack_package

logger = logging.getLogger(__name__)

TARGETS = ("local", "sagemaker")
#: Where modeling logs the evaluation report in its MLflow run.
EVALUATION_REPORT_ARTIFACT = "reporting/evaluation_report.json"


class DeploymentRefused(RuntimeError):
    """The requested model version may not be deployed (e.g. it did not pass the gate)."""


class DeploymentRolledBack(RuntimeError):
    """The endpoint update was rolled back: the previous champion keeps serving."""


def check_deployable(candidate: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The selected version, if the target is known and the version passed the quality gate."""
    if params["target"] not in TARGETS:
        raise ValueError(f"deployment.target must be one of {TARGETS}, got {params['target']!r}.")
    name, version = candidate["model_name"], candidate["version"]
    gate = candidate["tags"].get(params["gate_tag"])
    if gate != params["gate_passed_value"]:
        run_reasons = ""
        if candidate["run_id"]:
            tags = run_tags(candidate["run_id"])
            run_reasons = f" The run says: gate={tags.get('gate', '-')}, reasons: {tags.get('gate_reasons', '-')}."
        raise DeploymentRefused(
            f"Refusing to deploy {name} version {version} ({candidate['chosen_by']}): it did not"
            f" pass the quality gate (model version tag {params['gate_tag']}={gate!r}, expected"
            f" {params['gate_passed_value']!r}).{run_reasons}"
        )
    logger.info(
        "Deploying %s version %s (%s), gate %s", name, version, candidate["chosen_by"], gate
    )
    return candidate


def evaluation_metrics(candidate: dict[str, Any]) -> dict[str, Any]:
    """The evaluation report logged with the version's run, else its run metrics and tags."""
    metrics: dict[str, Any] = {
        "model_name": candidate["model_name"],
        "model_version": candidate["version"],
        "version_tags": candidate["tags"],
    }
    run_id = candidate.get("run_id")
    if not run_id:
        return metrics
    metrics["run_metrics"] = run_metrics(run_id)
    try:
        metrics["evaluation_report"] = run_json_artifact(run_id, EVALUATION_REPORT_ARTIFACT)
    except Exception as exc:  # noqa: BLE001 - the report is optional; metrics remain
        logger.warning("No %s in run %s (%s)", EVALUATION_REPORT_ARTIFACT, run_id, exc)
    return metrics


def package_model(candidate: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """model.tar.gz (MLflow model + code/inference.py) under ``package_dir``, smoke-tested."""
    name, version = candidate["model_name"], candidate["version"]
    output = Path(params["package_dir"]) / f"{name}-v{version}" / "model.tar.gz"
    with tempfile.TemporaryDirectory(prefix="geo-busyness-deploy-") as tmp:
        model_dir = fetch_model(candidate["model_uri"], Path(tmp) / "download")
        # Checked against the digest the registry recorded, not only the one the files carry.
        recorded = (candidate.get("tags") or {}).get(DIGEST_TAG)
        package = build_package(model_dir, output, recorded)
        if params.get("smoke_test_query"):
            package["smoke_test"] = smoke_test(
                output, params["smoke_test_query"], Path(tmp) / "unpacked"
            )
    logger.info("Packaged %s v%s: %s (%d bytes)", name, version, output, package["bytes"])
    return {**package, "model_name": name, "version": version}


#: ``deployment.smoke_test_query: model``: ask for a point of the model's own data (any
#: source's), not a fixed point that only the synthetic city contains.
MODEL_SMOKE_QUERY = "model"


def query_in_model_area(model: Any) -> dict[str, Any]:
    """A query the model must answer: the centre of its busiest known cell (by total count),
    one hour after its origin."""
    history = model.history_
    busiest = int(np.argmax(np.asarray(history.counts).sum(axis=1)))
    lat, lon = cell_centres(np.asarray(history.cells)[busiest : busiest + 1])
    return {
        "courier_location_timestamp": (model.origin + pd.Timedelta(hours=1)).isoformat(),
        "courier_lat": float(lat[0]),
        "courier_lon": float(lon[0]),
    }


def smoke_test(tarball: Path, query: dict[str, Any] | str, workdir: Path) -> dict[str, Any]:
    """Call code/inference.py of the unpacked package as the SKLearn container would (with
    ``"model"``: a point of the model's own data, ``query_in_model_area``)."""
    import importlib.util  # noqa: PLC0415

    model_dir = unpack_package(tarball, workdir)
    spec = importlib.util.spec_from_file_location(
        "geo_busyness_package_inference", model_dir / "code" / "inference.py"
    )
    inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inference)
    model = inference.model_fn(str(model_dir))
    if query == MODEL_SMOKE_QUERY:
        query = query_in_model_area(model.model())
    body, media = inference.output_fn(
        inference.predict_fn(inference.input_fn(orjson.dumps([query]), "application/json"), model),
        "application/json",
    )
    answer = orjson.loads(body)["predictions"][0]
    quantiles = [answer.get(name) for name in ("p10", "p50", "p90")]
    if not (
        all(isinstance(v, float) and math.isfinite(v) for v in [answer[PREDICTION], *quantiles])
        and quantiles[0] <= quantiles[1] <= quantiles[2]
        and isinstance(answer.get(HORIZON), int)
        and answer[HORIZON] >= 1
    ):
        raise DeploymentRefused(
            f"The packaged model answered {answer} to the smoke-test query {query}."
        )
    return {"query": query, "answer": answer}


def deploy_package(
    candidate: dict[str, Any], package: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Put the package behind the target: the local model store, or a SageMaker endpoint."""
    if params["target"] == "local":
        return _deploy_local(candidate, package, params["local"])
    return _deploy_sagemaker(candidate, package, params["sagemaker"])


def _deploy_local(
    candidate: dict[str, Any], package: dict[str, Any], local: dict[str, Any]
) -> dict[str, Any]:
    store = Path(local["model_store"])
    target = store / f"{candidate['model_name']}-v{candidate['version']}"
    staging = store / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    unpack_package(package["path"], staging, package.get("artifact_sha256"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    logger.info("Model store %s now holds %s", store, target)
    return {
        "target": "local",
        "status": "deployed",
        "rolled_back": False,
        "model_dir": str(target),
        "serve": f"kedro serve  (or python -m geo_busyness.serving --model {target})",
    }


def _deploy_sagemaker(
    candidate: dict[str, Any], package: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    from .sagemaker import SageMakerConfig, SageMakerDeployer, make_clients  # noqa: PLC0415

    # The endpoint checks the artifact against the digest the registry recorded, not only the
    # one the package carries (serving/inference.py's model_fn).
    environment = {
        **(settings.get("environment") or {}),
        ENV_ARTIFACT_SHA256: package["artifact_sha256"],
    }
    config = SageMakerConfig.from_params({**settings, "environment": environment})
    deployer = SageMakerDeployer(config, *make_clients(config.region))
    metadata = {
        key: str(candidate["tags"][key])[:256]
        for key in ("git_revision", "model_type", "params_sha256")
        if key in candidate["tags"]
    }
    metadata["package_sha256"] = package["sha256"]
    outcome = deployer.deploy(
        package["path"],
        candidate["model_name"],
        candidate["version"],
        evaluation_metrics(candidate),
        metadata,
    )
    return {"target": "sagemaker", **outcome}


def promote_champion(
    candidate: dict[str, Any],
    package: dict[str, Any],
    deployment: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Set the ``champion`` alias on the deployed version (not on a rolled-back one); the record."""
    name, version, alias = candidate["model_name"], candidate["version"], params["champion_alias"]
    rolled_back = bool(deployment.get("rolled_back"))
    if rolled_back:
        previous = champion = alias_version(name, alias)
        _tag_rolled_back(name, version, deployment)
        logger.error(
            "%s version %s was rolled back (%s); %s stays version %s",
            name,
            version,
            deployment.get("reason"),
            alias,
            champion,
        )
    else:
        previous, champion = move_alias(name, alias, version), version
        logger.info("%s version %s is now %s (was %s)", name, version, alias, previous)
    record = {
        "status": deployment.get("status", "deployed"),
        "rolled_back": rolled_back,
        "model_name": name,
        "model_version": version,
        "model_uri": candidate["model_uri"],
        "chosen_by": candidate["chosen_by"],
        "alias": alias,
        "promoted": not rolled_back,
        "champion_version": champion,
        "previous_champion_version": previous,
        "target": deployment["target"],
        "package": {key: package[key] for key in ("path", "sha256", "bytes")},
        "model_package_arn": deployment.get("model_package_arn"),
        "endpoint": deployment.get("endpoint_name"),
        "endpoint_config": deployment.get("endpoint_config"),
        "deployment": deployment,
        "deployed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if rolled_back:
        record["reason"] = deployment.get("reason")
    return record


def _tag_rolled_back(name: str, version: str, deployment: dict[str, Any]) -> None:
    """Tag the version ``rollout=rolled_back`` with the reason (logged if tagging fails)."""
    try:
        tag_version(
            name,
            version,
            {"rollout": "rolled_back", "rollout_reason": str(deployment.get("reason"))[:4000]},
        )
    except Exception as exc:  # noqa: BLE001 - the record still says it; a tag is a convenience
        logger.warning("Could not tag %s version %s as rolled back: %s", name, version, exc)


def check_rollout(record: dict[str, Any], params: dict[str, Any]) -> None:
    """Raise ``DeploymentRolledBack`` for a rolled-back record when ``fail_on_rollback`` is set."""
    if not record.get("rolled_back") or not params.get("fail_on_rollback", False):
        return
    raise DeploymentRolledBack(
        f"{record['model_name']} version {record['model_version']} was rolled back on"
        f" {record['target']} endpoint {record['endpoint']}: {record.get('reason')}."
        f" {record['endpoint_config']} keeps serving and {record['alias']} stays version"
        f" {record['champion_version']}. The record (status rolled_back) is saved as"
        " deployment_record (deployment.fail_on_rollback is true)."
    )

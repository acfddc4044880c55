"""The deployment pipeline in a throw-away project with a real MLflow registry (SQLite).

Versions are registered the way the modeling pipeline registers them (the serving tests' small
real model, tags ``gate=passed`` and alias ``challenger``), so these tests do not pay for a
modeling run.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from moto import mock_aws

from geo_busyness.model.loading import (
    DIGEST_TAG,
    ArtifactIntegrityError,
    artifact_digest,
    load_model,
)
from geo_busyness.model.predict import predict_busyness
from geo_busyness.model.queries import distance_to_known_km, known_cells
from geo_busyness.pipelines.deployment.nodes import (
    DeploymentRefused,
    DeploymentRolledBack,
    check_deployable,
    check_rollout,
)
from geo_busyness.pipelines.deployment.sagemaker import DeploymentError, SageMakerDeployer
from geo_busyness.registry import select_model_version
from geo_busyness.serving.requests import parse_request
from geo_busyness.testing import tracking_uri
from tests.conftest import inside, make_project_copy, project_mlflow, run_kedro
from tests.packaged_model import save_safe_model
from tests.serving.cases import GOOD_ROW, json_rows
from tests.serving.model_fixture import fit_model

#: Every test here runs deployment through a real KedroSession on a registered model.
pytestmark = pytest.mark.slow

NAME = "geo-busyness"


def _register(model_dir: Path, gate: str, alias: str | None) -> str:
    """Register ``model_dir`` as a new version of NAME, tagged like modeling does (its digest
    given with the version, as ``registry.register_model`` gives it)."""
    # An earlier Kedro session in this process may have left another store's experiment active.
    mlflow.set_experiment("deployment-tests")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
        mlflow.set_tags(
            {"gate": gate, "gate_reasons": "-" if gate == "passed" else "test R2 0.1 < 0.6"}
        )
    client = MlflowClient()
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = client.create_model_version(
        NAME,
        f"runs:/{run.info.run_id}/model",
        run.info.run_id,
        tags={DIGEST_TAG: artifact_digest(model_dir)},
    )
    if gate == "passed":
        client.set_model_version_tag(NAME, version.version, "gate", "passed")
        client.set_model_version_tag(NAME, version.version, "git_revision", "abc123")
    if alias:
        client.set_registered_model_alias(NAME, alias, version.version)
    return str(version.version)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project copy whose registry holds v1 (gate passed, challenger), v2 (gate failed), v3."""
    project = make_project_copy(tmp_path_factory.mktemp("deploy_project"))
    model_dir = save_safe_model(fit_model(), tmp_path_factory.mktemp("saved") / "model")
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        assert _register(model_dir, "passed", "challenger") == "1"
        assert _register(model_dir, "failed", None) == "2"
        assert _register(model_dir, "passed", None) == "3"
        mlflow.set_tracking_uri(None)
    return project


def _params(**overrides) -> dict:
    params = {
        "target": "local",
        "registered_model_name": NAME,
        "aliases": ["challenger"],
        "model_version": None,
        "gate_tag": "gate",
        "gate_passed_value": "passed",
    }
    return {**params, **overrides}


def deployable(params: dict) -> dict:
    """What the pipeline's first two nodes give: the selected version, gate-checked."""
    return check_deployable(select_model_version(params), params)


def test_a_gate_failed_version_is_refused(project):
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            with pytest.raises(
                DeploymentRefused, match=r"version 2 .* did not pass the quality gate"
            ):
                deployable(_params(model_version=2))
            with pytest.raises(DeploymentRefused, match="test R2 0.1 < 0.6"):
                deployable(_params(model_version=2))
            assert deployable(_params())["version"] == "1"
            with pytest.raises(ValueError, match="target"):
                deployable(_params(target="heroku"))
        finally:
            mlflow.set_tracking_uri(None)


def test_local_deployment_serves_the_new_champion(project):
    run_kedro(project, ["deployment"])
    records = sorted(
        (project / "data/08_reporting/deployment/deployment_record.json").glob("*/*.json")
    )
    record = json.loads(records[-1].read_text())
    assert (record["model_version"], record["target"], record["alias"]) == (
        "1",
        "local",
        "champion",
    )
    package = json.loads((project / "data/06_models/deployment/model_package.json").read_text())
    answer = package["smoke_test"]["answer"]
    assert answer["predicted_busyness"] >= 0
    assert answer["p10"] <= answer["p50"] <= answer["p90"]
    assert answer["horizon_hours"] >= 1
    model_dir = project / record["deployment"]["model_dir"]
    assert (model_dir / "code" / "inference.py").is_file()
    # The default smoke query ("model") is a point of the model's own data, not a fixed city's.
    query, model = package["smoke_test"]["query"], load_model(model_dir)
    assert pd.Timestamp(query["courier_location_timestamp"]) == model.origin + pd.Timedelta(hours=1)
    cells = known_cells(model)
    assert distance_to_known_km([query["courier_lat"]], [query["courier_lon"]], cells)[0] < 0.01
    served = predict_busyness(load_model(model_dir), parse_request(json_rows(GOOD_ROW)))
    assert served["predicted_busyness"].iloc[0] >= 0
    assert package["artifact_sha256"] == artifact_digest(model_dir)
    # The deployed copy `kedro serve` loads is checked too: a changed byte is refused.
    arrays = model_dir / "forecaster" / "arrays.npz"
    original = arrays.read_bytes()
    try:
        arrays.write_bytes(original + b"\0")
        with pytest.raises(ArtifactIntegrityError, match="arrays.npz"):
            load_model(model_dir)
    finally:
        arrays.write_bytes(original)
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == "1"
        finally:
            mlflow.set_tracking_uri(None)


def test_deploying_the_failed_version_through_kedro_fails_and_keeps_the_champion(project):
    with pytest.raises(DeploymentRefused):
        run_kedro(project, ["deployment"], {"deployment": {"model_version": 2}})
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            aliases = MlflowClient().get_model_version(NAME, "2").aliases
        finally:
            mlflow.set_tracking_uri(None)
    assert "champion" not in aliases
    assert not (project / "data/06_models/deployment/serving/geo-busyness-v2").exists()


def registered_digest(project) -> str:
    """The ``artifact_sha256`` tag of the project's version 1 (its own MLflow store)."""
    with project_mlflow(project) as client:
        return client.get_model_version("geo-busyness", "1").tags["artifact_sha256"]


def test_sagemaker_target_through_the_pipeline(project, monkeypatch):
    """The same pipeline with target=sagemaker against moto (the endpoint is created)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    params = {
        "deployment": {
            "target": "sagemaker",
            "smoke_test_query": None,
            "sagemaker": {
                "bucket": "models",
                "role_arn": "arn:aws:iam::123456789012:role/sagemaker",
                "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3",
                "poll_seconds": 0,
            },
        }
    }
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="models")
        run_kedro(project, ["deployment"], params)
        sm = boto3.client("sagemaker", region_name="us-east-1")
        endpoint = sm.describe_endpoint(EndpointName="geo-busyness")
        assert endpoint["EndpointConfigName"] == "geo-busyness-v1"
        # The container checks the artifact against the registered digest (model_fn).
        packages = sm.list_model_packages(ModelPackageGroupName="geo-busyness")
        described = sm.describe_model_package(
            ModelPackageName=packages["ModelPackageSummaryList"][-1]["ModelPackageArn"]
        )
        (container,) = described["InferenceSpecification"]["Containers"]
        registered = registered_digest(project)
        assert container["Environment"]["GEO_BUSYNESS_ARTIFACT_SHA256"] == registered
    records = sorted(
        (project / "data/08_reporting/deployment/deployment_record.json").glob("*/*.json")
    )
    record = json.loads(records[-1].read_text())
    assert record["target"] == "sagemaker"
    assert record["model_package_arn"].startswith("arn:aws:sagemaker:")
    assert record["endpoint"] == "geo-busyness"
    metrics = record["deployment"]["metrics_url"]
    assert metrics.endswith("/v1/evaluation.json")


def test_a_failed_sagemaker_rollout_does_not_promote_or_record(project, monkeypatch):
    """The endpoint update fails (SageMaker rolled back): no champion change, no new record."""

    def failing_deploy(self, *args, **kwargs):
        raise DeploymentError(
            "Update of endpoint geo-busyness to geo-busyness-v3 failed (Health check failed);"
            " SageMaker rolled back and geo-busyness-v1 keeps serving.",
            "InService",
        )

    monkeypatch.setattr(SageMakerDeployer, "deploy", failing_deploy)
    records = project / "data/08_reporting/deployment/deployment_record.json"
    before = sorted(records.glob("*/*.json"))
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            champion = MlflowClient().get_model_version_by_alias(NAME, "champion").version
        except Exception:  # no champion yet when run alone
            champion = None
        finally:
            mlflow.set_tracking_uri(None)
    params = {
        "deployment": {
            "target": "sagemaker",
            "model_version": 3,
            "smoke_test_query": None,
            "sagemaker": {
                "bucket": "b",
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::1:role/r",
                "image_uri": "i",
            },
        }
    }
    with pytest.raises(DeploymentError, match="geo-busyness-v1 keeps serving"):
        run_kedro(project, ["deployment"], params)
    assert sorted(records.glob("*/*.json")) == before
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            aliases = MlflowClient().get_model_version(NAME, "3").aliases
            if champion is not None:
                now = MlflowClient().get_model_version_by_alias(NAME, "champion").version
                assert str(now) == str(champion)
        finally:
            mlflow.set_tracking_uri(None)
    assert "champion" not in aliases


# ---------------------------------------------------------------- issue #17 item 6


def _rolled_back_deploy(self, package_path, model_name, version, *args, **kwargs):
    """What ``SageMakerDeployer.deploy`` returns when SageMaker rolled the canary back."""
    return {
        "model_package_arn": f"arn:aws:sagemaker:us-east-1:1:model-package/geo-busyness/{version}",
        "model_package_status": "Rejected",
        "action": "updated",
        "status": "rolled_back",
        "rolled_back": True,
        "rolled_back_by": "sagemaker",
        "reason": "Alarm geo-busyness-5xx entered ALARM state",
        "attempted_endpoint_config": f"geo-busyness-v{version}",
        "previous_endpoint_config": "geo-busyness-v1",
        "endpoint_name": "geo-busyness",
        "endpoint_config": "geo-busyness-v1",
        "endpoint_status": "InService",
        "strategy": "canary",
    }


def test_a_rolled_back_canary_is_recorded_and_keeps_the_champion(project, monkeypatch):
    """The record says rolled_back (what an alert hook and the retraining job read), the
    champion alias does not move, the version is tagged, and the run ends without an error
    (fail_on_rollback is false by default)."""
    monkeypatch.setattr(SageMakerDeployer, "deploy", _rolled_back_deploy)
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            MlflowClient().set_registered_model_alias(NAME, "champion", "1")
        finally:
            mlflow.set_tracking_uri(None)
    params = {
        "deployment": {
            "target": "sagemaker",
            "model_version": 3,
            "smoke_test_query": None,
            "sagemaker": {
                "bucket": "b",
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::1:role/r",
                "image_uri": "i",
                "rollout": {"alarms": ["geo-busyness-5xx"]},
            },
        }
    }
    records = project / "data/08_reporting/deployment/deployment_record.json"
    before = set(records.glob("*/*.json"))
    run_kedro(project, ["deployment"], params)
    (new,) = set(records.glob("*/*.json")) - before
    record = json.loads(new.read_text())
    assert (record["status"], record["rolled_back"], record["promoted"]) == (
        "rolled_back",
        True,
        False,
    )
    assert record["reason"] == "Alarm geo-busyness-5xx entered ALARM state"
    assert (record["model_version"], record["champion_version"]) == ("3", "1")
    assert record["deployment"]["status"] == "rolled_back"
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            client = MlflowClient()
            assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
            assert client.get_model_version(NAME, "3").tags["rollout"] == "rolled_back"
        finally:
            mlflow.set_tracking_uri(None)


def test_check_rollout_fails_only_rolled_back_records_unless_told_not_to():
    record = {
        "rolled_back": True,
        "model_name": NAME,
        "model_version": "3",
        "target": "sagemaker",
        "endpoint": "geo-busyness",
        "reason": "alarm",
        "endpoint_config": "geo-busyness-v1",
        "alias": "champion",
        "champion_version": "1",
    }
    with pytest.raises(DeploymentRolledBack, match="champion stays version 1"):
        check_rollout(record, {"fail_on_rollback": True})
    check_rollout(record, {})  # the default: the record says it, the run succeeds
    check_rollout({**record, "rolled_back": False}, {"fail_on_rollback": True})

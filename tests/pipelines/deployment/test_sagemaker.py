"""SageMaker control plane against moto, and the endpoint update path against botocore's Stubber.

moto 5.2.5 mocks models, endpoint configs, endpoints (created already InService), model package
groups and packages, but not ``update_endpoint`` (NotImplementedError in process). The blue/green
update path is therefore tested with botocore's Stubber on a real SageMaker client: the
Stubber checks every request against the service model (so the DeploymentConfig we send is
valid) and replays the endpoint states SageMaker reports during an update, a rollback and a
timeout.
"""

from __future__ import annotations

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from geo_busyness.pipelines.deployment.sagemaker import (
    DeploymentError,
    SageMakerConfig,
    SageMakerDeployer,
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
METRICS = {"test": {"r2": 0.71, "mae": 0.42}, "gate": {"passed": True}}


def config(**overrides) -> SageMakerConfig:
    settings = {"region": REGION, "poll_seconds": 0, "wait_timeout_seconds": 60, **overrides}
    return SageMakerConfig(bucket="models-bucket", role_arn=ROLE, image_uri=IMAGE, **settings)


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="models-bucket")
        yield boto3.client("sagemaker", region_name=REGION), s3


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"not inspected by the control plane")
    return path


def test_first_deployment_registers_and_creates_the_endpoint(aws, package):
    sm, s3 = aws
    record = SageMakerDeployer(config(), sm, s3).deploy(
        package, "geo-busyness", "3", METRICS, {"git_revision": "abc"}
    )
    assert record["action"] == "created"
    assert record["endpoint_config"] == "geo-busyness-v3"
    assert (
        record["model_data_url"]
        == "s3://models-bucket/geo-busyness/models/geo-busyness/v3/model.tar.gz"
    )
    stored = s3.get_object(
        Bucket="models-bucket", Key="geo-busyness/models/geo-busyness/v3/evaluation.json"
    )
    assert orjson.loads(stored["Body"].read()) == METRICS

    described = sm.describe_model_package(ModelPackageName=record["model_package_arn"])
    assert described["ModelApprovalStatus"] == "Approved"
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == IMAGE
    assert container["ModelDataUrl"] == record["model_data_url"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    statistics = described["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["S3Uri"] == record["metrics_url"]
    assert sm.describe_model(ModelName="geo-busyness-v3")["ExecutionRoleArn"] == ROLE
    variant = sm.describe_endpoint_config(EndpointConfigName="geo-busyness-v3")[
        "ProductionVariants"
    ][0]
    assert variant["ModelName"] == "geo-busyness-v3"
    endpoint = sm.describe_endpoint(EndpointName="geo-busyness")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        "geo-busyness-v3",
    )


def test_group_is_created_once_and_redeploying_the_serving_version_changes_nothing(aws, package):
    sm, s3 = aws
    deployer = SageMakerDeployer(config(), sm, s3)
    deployer.deploy(package, "geo-busyness", "3", METRICS)
    again = deployer.deploy(package, "geo-busyness", "3", METRICS)
    assert again["action"] == "unchanged"
    groups = sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [group["ModelPackageGroupName"] for group in groups] == ["geo-busyness"]


def test_missing_settings_are_named():
    with pytest.raises(ValueError, match="role_arn"):
        SageMakerConfig.from_params({"bucket": "b", "image_uri": IMAGE})
    with pytest.raises(ValueError, match="unknown|Unknown"):
        SageMakerConfig.from_params({"bucket": "b", "role_arn": ROLE, "image_uri": IMAGE, "x": 1})


# ---------------------------------------------------------------- update path (Stubber)


def _endpoint(status: str, config_name: str, reason: str | None = None) -> dict:
    answer = {
        "EndpointName": "geo-busyness",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/geo-busyness",
        "EndpointConfigName": config_name,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    if reason:
        answer["FailureReason"] = reason
    return answer


def _stubbed(states: list[dict], updates: bool = True, **overrides):
    client = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stubber = Stubber(client)
    describe = {"EndpointName": "geo-busyness"}
    stubber.add_response("describe_endpoint", states[0], describe)
    if updates:
        stubber.add_response(
            "update_endpoint",
            {"EndpointArn": states[0]["EndpointArn"]},
            {
                "EndpointName": "geo-busyness",
                "EndpointConfigName": "geo-busyness-v4",
                "DeploymentConfig": ANY,
            },
        )
    for state in states[1:]:
        stubber.add_response("describe_endpoint", state, describe)
    ticks = iter(range(0, 10_000, 10))
    deployer = SageMakerDeployer(
        config(**overrides),
        client,
        s3_client=None,
        sleep=lambda _s: None,
        clock=lambda: next(ticks),
    )
    return deployer, stubber


def test_update_is_blue_green_and_succeeds_when_the_new_config_is_in_service():
    deployer, stubber = _stubbed(
        [
            _endpoint("InService", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("InService", "geo-busyness-v4"),
        ]
    )
    with stubber:
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert outcome["action"] == "updated"
    assert outcome["previous_endpoint_config"] == "geo-busyness-v3"
    assert outcome["endpoint_config"] == "geo-busyness-v4"
    policy = deployer.deployment_config()["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


def test_failed_update_keeps_the_old_config_and_says_so():
    deployer, stubber = _stubbed(
        [
            _endpoint("InService", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("RollingBack", "geo-busyness-v3"),
            _endpoint("InService", "geo-busyness-v3", reason="Health check failed"),
        ]
    )
    with stubber, pytest.raises(DeploymentError) as failed:
        deployer.rollout("geo-busyness-v4")
    assert "Health check failed" in str(failed.value)
    assert "geo-busyness-v3 keeps serving" in str(failed.value)


def test_an_update_that_leaves_the_endpoint_failed_is_rolled_back_to_the_old_config():
    deployer, stubber = _stubbed(
        [
            _endpoint("InService", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("Failed", "geo-busyness-v4", reason="Image pull failed"),
        ]
    )
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": _endpoint("InService", "x")["EndpointArn"]},
        {"EndpointName": "geo-busyness", "EndpointConfigName": "geo-busyness-v3"},
    )
    stubber.add_response(
        "describe_endpoint",
        _endpoint("Updating", "geo-busyness-v4"),
        {"EndpointName": "geo-busyness"},
    )
    stubber.add_response(
        "describe_endpoint",
        _endpoint("InService", "geo-busyness-v3"),
        {"EndpointName": "geo-busyness"},
    )
    with stubber, pytest.raises(DeploymentError) as failed:
        deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert "Image pull failed" in str(failed.value)
    assert "Rolled back: geo-busyness-v3 serves again" in str(failed.value)


def test_update_that_outlives_the_timeout_reports_the_config_still_serving():
    deployer, stubber = _stubbed(
        [_endpoint("InService", "geo-busyness-v3")]
        + [_endpoint("Updating", "geo-busyness-v3")] * 4,
        wait_timeout_seconds=25,
    )
    with stubber, pytest.raises(DeploymentError, match="geo-busyness-v3 keeps serving"):
        deployer.rollout("geo-busyness-v4")


def test_an_endpoint_busy_updating_is_not_touched():
    deployer, stubber = _stubbed([_endpoint("Updating", "geo-busyness-v3")], updates=False)
    with stubber, pytest.raises(DeploymentError, match="is Updating; not updating"):
        deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()


# ---------------------------------------------------------------- issue #15 item 16


def test_a_failed_rollout_marks_the_model_package_rejected(aws, package, monkeypatch):
    sm, s3 = aws
    deployer = SageMakerDeployer(config(), sm, s3)

    def failing_rollout(name):
        raise DeploymentError("Endpoint geo-busyness is Failed instead of serving it.", "Failed")

    monkeypatch.setattr(deployer, "rollout", failing_rollout)
    with pytest.raises(DeploymentError):
        deployer.deploy(package, "geo-busyness", "5", METRICS)
    packages = sm.list_model_packages(ModelPackageGroupName=deployer.config.model_package_group)
    (summary,) = packages["ModelPackageSummaryList"]
    described = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    assert described["ModelApprovalStatus"] == "Rejected"
    assert "Rollout failed" in described.get("ApprovalDescription", "Rollout failed")


def test_a_successful_rollout_leaves_the_package_approved(aws, package):
    sm, s3 = aws
    record = SageMakerDeployer(config(), sm, s3).deploy(package, "geo-busyness", "6", METRICS)
    described = sm.describe_model_package(ModelPackageName=record["model_package_arn"])
    assert described["ModelApprovalStatus"] == "Approved"


def test_a_rollback_that_fails_too_says_both_and_that_nothing_may_serve():
    """The branch where the rollback itself fails (was untested)."""
    deployer, stubber = _stubbed(
        [
            _endpoint("InService", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("Failed", "geo-busyness-v4", reason="Image pull failed"),
        ]
    )
    stubber.add_client_error(
        "update_endpoint",
        service_error_code="ValidationException",
        service_message="Cannot update in-progress endpoint",
        expected_params={"EndpointName": "geo-busyness", "EndpointConfigName": "geo-busyness-v3"},
    )
    with stubber, pytest.raises(DeploymentError) as failed:
        deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    message = str(failed.value)
    assert "Image pull failed" in message
    assert "Rolling back to geo-busyness-v3 failed too" in message
    assert "Cannot update in-progress endpoint" in message
    assert failed.value.status != "InService"


def test_rejecting_the_package_failing_too_keeps_the_rollouts_error(
    aws, package, monkeypatch, caplog
):
    sm, s3 = aws
    deployer = SageMakerDeployer(config(), sm, s3)
    monkeypatch.setattr(
        deployer, "rollout", lambda name: (_ for _ in ()).throw(DeploymentError("boom", "Failed"))
    )

    def refuse(**kwargs):
        raise RuntimeError("throttled")

    monkeypatch.setattr(sm, "update_model_package", refuse)
    with pytest.raises(DeploymentError, match="boom"):
        deployer.deploy(package, "geo-busyness", "7", METRICS)
    assert "Reject it by hand" in caplog.text

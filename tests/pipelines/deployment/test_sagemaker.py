"""SageMaker control plane against moto, and the endpoint update path against botocore's Stubber.

moto 5.2.5 mocks models, endpoint configs, endpoints (created already InService), model package
groups and packages, but not ``update_endpoint`` (NotImplementedError in process). The blue/green
update path is therefore tested with botocore's Stubber on a real SageMaker client: the
Stubber checks every request against the service model (so the DeploymentConfig we send is
valid) and replays the endpoint states SageMaker reports during an update, a rollback and a
timeout. Nothing here evaluates a CloudWatch alarm or shifts traffic: an alarm-triggered
rollback is replayed as the states SageMaker reports after one (docs/deployment.md).
"""

from __future__ import annotations

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from geo_busyness.pipelines.deployment.rollout import RolloutPolicy
from geo_busyness.pipelines.deployment.sagemaker import (
    DeploymentError,
    SageMakerConfig,
    SageMakerDeployer,
)

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-cpu-py3"
METRICS = {"test": {"r2": 0.71, "mae": 0.42}, "gate": {"passed": True}}


#: The tests' default rollout: all traffic at once, no waits (short stubbed timeouts fit it).
QUICK = RolloutPolicy(strategy="all_at_once", termination_wait_seconds=0)


def config(**overrides) -> SageMakerConfig:
    settings = {
        "region": REGION,
        "poll_seconds": 0,
        "wait_timeout_seconds": 60,
        "rollout": QUICK,
        **overrides,
    }
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


def _stubbed(states: list[dict], updates: bool = True, sent=ANY, **overrides):
    """A deployer on a stubbed client replaying ``states`` (DescribeEndpoint answers); the
    update must send ``sent`` as its DeploymentConfig (ANY: whatever the service model allows)."""
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
                "DeploymentConfig": sent,
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
    assert (outcome["status"], outcome["rolled_back"]) == ("deployed", False)
    assert outcome["previous_endpoint_config"] == "geo-busyness-v3"
    assert outcome["endpoint_config"] == "geo-busyness-v4"
    policy = deployer.deployment_config()["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"


def test_an_update_sagemaker_rolled_back_is_reported_with_the_old_config_serving():
    deployer, stubber = _stubbed(
        [
            _endpoint("InService", "geo-busyness-v3"),
            _endpoint("Updating", "geo-busyness-v3"),
            _endpoint("RollingBack", "geo-busyness-v3"),
            _endpoint("InService", "geo-busyness-v3", reason="Health check failed"),
        ]
    )
    with stubber:
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert (outcome["status"], outcome["rolled_back"]) == ("rolled_back", True)
    assert outcome["reason"] == "Health check failed"
    assert outcome["rolled_back_by"] == "sagemaker"
    assert outcome["endpoint_config"] == "geo-busyness-v3"
    assert outcome["attempted_endpoint_config"] == "geo-busyness-v4"


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
    with stubber:
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert (outcome["status"], outcome["rolled_back"]) == ("rolled_back", True)
    assert outcome["reason"] == "Image pull failed"
    assert outcome["rolled_back_by"] == "deployer"
    assert (outcome["endpoint_config"], outcome["endpoint_status"]) == (
        "geo-busyness-v3",
        "InService",
    )


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


# ---------------------------------------------------------------- issue #17 item 6: canary rollout

#: deployment.sagemaker as the parameters files give it, with a canary rollout.
CANARY_PARAMS = {
    "bucket": "models-bucket",
    "role_arn": ROLE,
    "image_uri": IMAGE,
    "region": REGION,
    "poll_seconds": 0,
    "wait_timeout_seconds": 2400,
    "rollout": {
        "strategy": "canary",
        "canary_size_percent": 25,
        "wait_interval_seconds": 420,
        "termination_wait_seconds": 180,
        "alarms": ["geo-busyness-5xx", "geo-busyness-p99-latency"],
    },
}
UPDATE_STATES = [
    _endpoint("InService", "geo-busyness-v3"),
    _endpoint("Updating", "geo-busyness-v3"),
    _endpoint("Updating", "geo-busyness-v3"),
]


def test_the_canary_config_is_sent_exactly_as_the_parameters_say():
    settings = SageMakerConfig.from_params(CANARY_PARAMS)
    expected = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 420,
            },
            "TerminationWaitInSeconds": 180,
            "MaximumExecutionTimeoutInSeconds": 2400,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "geo-busyness-5xx"}, {"AlarmName": "geo-busyness-p99-latency"}]
        },
    }
    deployer, stubber = _stubbed(
        [*UPDATE_STATES, _endpoint("InService", "geo-busyness-v4")],
        sent=expected,
        **{key: getattr(settings, key) for key in ("wait_timeout_seconds", "rollout")},
    )
    with stubber:  # the Stubber fails on any other DeploymentConfig, or one the API refuses
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert (outcome["status"], outcome["strategy"]) == ("deployed", "canary")
    assert outcome["alarms"] == ["geo-busyness-5xx", "geo-busyness-p99-latency"]


def test_a_linear_rollout_sends_its_step_size():
    rollout = RolloutPolicy(strategy="linear", linear_step_percent=25, wait_interval_seconds=60)
    routing = rollout.deployment_config(1800)["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 60,
    }
    assert rollout.shifting_seconds() == 3 * 60 + 300  # four steps, three waits, then termination


def test_all_at_once_sends_what_the_update_sent_before_the_canary():
    """Today's config: all traffic at once, no alarms section when there are none."""
    before = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 300,
            "MaximumExecutionTimeoutInSeconds": 1800,
        }
    }
    deployer, stubber = _stubbed(
        [*UPDATE_STATES, _endpoint("InService", "geo-busyness-v4")],
        sent=before,
        wait_timeout_seconds=1800,
        rollout=RolloutPolicy(strategy="all_at_once"),
    )
    with stubber:
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert (outcome["action"], outcome["status"], outcome["rolled_back"]) == (
        "updated",
        "deployed",
        False,
    )


@pytest.mark.parametrize("reason", ["Alarm geo-busyness-5xx entered ALARM state", None])
def test_a_canary_rolled_back_by_an_alarm_is_an_outcome_naming_the_reason(reason):
    settings = SageMakerConfig.from_params(CANARY_PARAMS)
    deployer, stubber = _stubbed(
        [
            *UPDATE_STATES,
            _endpoint("RollingBack", "geo-busyness-v3"),
            _endpoint("InService", "geo-busyness-v3", reason=reason),
        ],
        wait_timeout_seconds=settings.wait_timeout_seconds,
        rollout=settings.rollout,
    )
    with stubber:
        outcome = deployer.rollout("geo-busyness-v4")
    stubber.assert_no_pending_responses()
    assert (outcome["status"], outcome["rolled_back"]) == ("rolled_back", True)
    assert (outcome["endpoint_config"], outcome["endpoint_status"]) == (
        "geo-busyness-v3",
        "InService",
    )
    if reason:
        assert outcome["reason"] == reason
    else:  # SageMaker said nothing: the reason names the alarms that could have fired
        assert "geo-busyness-5xx" in outcome["reason"]


def test_a_rolled_back_deploy_rejects_its_package_and_keeps_the_old_endpoint(aws, package):
    """moto serves v3; the update to v4 is accepted and SageMaker rolls it back (moto cannot
    update an endpoint: update_endpoint is patched to accept and change nothing, which is
    what a rolled-back update looks like afterwards)."""
    sm, s3 = aws
    deployer = SageMakerDeployer(config(), sm, s3)
    first = deployer.deploy(package, "geo-busyness", "3", METRICS)
    sent = []
    sm.update_endpoint = lambda **kwargs: sent.append(kwargs) or {"EndpointArn": "arn"}
    outcome = deployer.deploy(package, "geo-busyness", "4", METRICS)
    assert [call["EndpointConfigName"] for call in sent] == ["geo-busyness-v4"]
    assert (outcome["status"], outcome["rolled_back"]) == ("rolled_back", True)
    assert outcome["endpoint_config"] == "geo-busyness-v3"
    assert outcome["model_package_status"] == "Rejected"
    rejected = sm.describe_model_package(ModelPackageName=outcome["model_package_arn"])
    assert rejected["ModelApprovalStatus"] == "Rejected"
    assert rejected.get("ApprovalDescription", "Rolled back").startswith("Rolled back")
    kept = sm.describe_model_package(ModelPackageName=first["model_package_arn"])
    assert kept["ModelApprovalStatus"] == "Approved"
    assert sm.describe_endpoint(EndpointName="geo-busyness")["EndpointConfigName"] == (
        "geo-busyness-v3"
    )


@pytest.mark.parametrize(
    ("rollout", "key"),
    [
        ({"canary_size_percent": 0}, "rollout.canary_size_percent"),
        ({"canary_size_percent": 60}, "rollout.canary_size_percent"),
        ({"canary_size_percent": "10"}, "rollout.canary_size_percent"),
        ({"canary_size_percent": True}, "rollout.canary_size_percent"),
        ({"strategy": "linear", "linear_step_percent": 5}, "rollout.linear_step_percent"),
        ({"wait_interval_seconds": 7200}, "rollout.wait_interval_seconds"),
        ({"strategy": "blue_green"}, "rollout.strategy"),
        ({"alarms": "geo-busyness-5xx"}, "rollout.alarms"),
        ({"canary_percent": 10}, "canary_percent"),
    ],
)
def test_invalid_rollout_parameters_are_named(rollout, key):
    with pytest.raises(ValueError, match=key):
        SageMakerConfig.from_params({**CANARY_PARAMS, "rollout": rollout})


def test_the_former_rollout_keys_say_where_they_moved():
    with pytest.raises(ValueError, match=r"rollback_alarms \(now rollout.alarms\)"):
        SageMakerConfig.from_params({**CANARY_PARAMS, "rollback_alarms": ["a"]})


def test_a_timeout_shorter_than_the_rollouts_waits_is_refused():
    with pytest.raises(ValueError, match="wait_timeout_seconds"):
        SageMakerConfig.from_params({**CANARY_PARAMS, "wait_timeout_seconds": 600})


def test_a_canary_without_alarms_warns_that_nothing_would_roll_it_back(caplog):
    SageMakerConfig.from_params({**CANARY_PARAMS, "rollout": {"strategy": "canary"}})
    assert "nothing would roll the update back" in caplog.text
    caplog.clear()
    SageMakerConfig.from_params({**CANARY_PARAMS, "rollout": {"strategy": "all_at_once"}})
    SageMakerConfig.from_params(CANARY_PARAMS)
    assert "nothing would roll" not in caplog.text

"""SageMaker control plane (boto3): registry, model, endpoint config, blue/green endpoint update.

``SageMakerDeployer.deploy`` takes a built ``model.tar.gz`` and:

1. uploads it and the evaluation metrics to S3;
2. creates the model package group if missing and registers an *Approved* model package
   (inference spec with the SKLearn image, the package URL, the metrics);
3. creates the Model and EndpointConfig named by the model version (reused if they exist);
4. creates the endpoint, or updates it blue/green: SageMaker keeps the old fleet serving until
   the new one is InService and rolls back by itself when the new one fails;
5. waits for InService within a timeout. A failed update leaves the previous config serving;
   ``DeploymentError`` says which config serves, so the caller does not promote the model, and
   the model package is marked back to *Rejected* (SageMaker deploys approved packages only,
   so it is approved at registration and un-approved when its rollout fails).

Credentials come from boto3's chain (AWS_* environment, profile, web identity in CI); Kedro
credentials reach it through kedro-mlflow's ``server.credentials`` (exported to the
environment). Nothing here logs a credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

#: How the SKLearn framework container finds code/inference.py in the unpacked model.
FRAMEWORK_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}
CONTENT_TYPES = ["application/json", "text/csv"]
SETTLED = {"InService", "Failed", "OutOfService", "UpdateRollbackFailed"}


class DeploymentError(RuntimeError):
    """A deployment that did not reach InService with the new config (message says what serves)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status  # the endpoint's status when it was raised


@dataclass
class SageMakerConfig:
    """Where and how to deploy (the ``deployment.sagemaker`` parameters)."""

    bucket: str
    role_arn: str
    image_uri: str
    region: str | None = None
    prefix: str = "geo-busyness/models"
    model_package_group: str = "geo-busyness"
    endpoint_name: str = "geo-busyness"
    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 1
    #: Registry metadata of the image; null when ``image_uri`` is the project's own serving
    #: image (docker/Dockerfile speaks the same contract and serves the same model.tar.gz).
    framework: str | None = "SKLEARN"
    framework_version: str | None = None
    wait_timeout_seconds: float = 1800.0
    poll_seconds: float = 15.0
    #: Blue/green: seconds to watch the new fleet before the old one is terminated.
    termination_wait_seconds: int = 300
    rollback_alarms: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SageMakerConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"Unknown deployment.sagemaker parameter(s): {unknown}")
        missing = [key for key in ("bucket", "role_arn", "image_uri") if not params.get(key)]
        if missing:
            raise ValueError(
                f"deployment.sagemaker needs {missing} (set them in conf or --params)."
            )
        return cls(**params)


def make_clients(region: str | None = None) -> tuple[Any, Any]:
    """boto3 SageMaker and S3 clients from the default credential chain."""
    import boto3  # noqa: PLC0415

    session = boto3.session.Session(region_name=region)
    return session.client("sagemaker"), session.client("s3")


class SageMakerDeployer:
    """Deploys model packages to one SageMaker endpoint."""

    def __init__(
        self,
        config: SageMakerConfig,
        sagemaker_client: Any,
        s3_client: Any,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.sm = sagemaker_client
        self.s3 = s3_client
        self._sleep = sleep
        self._clock = clock

    # ------------------------------------------------------------------ S3
    def _key(self, model_name: str, version: str, filename: str) -> str:
        return f"{self.config.prefix.strip('/')}/{model_name}/v{version}/{filename}"

    def upload_package(self, package_path: str | Path, model_name: str, version: str) -> str:
        key = self._key(model_name, version, "model.tar.gz")
        self.s3.upload_file(str(package_path), self.config.bucket, key)
        return f"s3://{self.config.bucket}/{key}"

    def upload_metrics(self, metrics: dict[str, Any], model_name: str, version: str) -> str:
        key = self._key(model_name, version, "evaluation.json")
        self.s3.put_object(
            Bucket=self.config.bucket,
            Key=key,
            Body=orjson.dumps(metrics, option=orjson.OPT_INDENT_2),
            ContentType="application/json",
        )
        return f"s3://{self.config.bucket}/{key}"

    # ------------------------------------------------------------------ registry
    def ensure_model_package_group(self) -> str:
        name = self.config.model_package_group
        try:
            return self.sm.describe_model_package_group(ModelPackageGroupName=name)[
                "ModelPackageGroupArn"
            ]
        except ClientError as exc:
            if not _not_found(exc):
                raise
        logger.info("Creating model package group %s", name)
        return self.sm.create_model_package_group(
            ModelPackageGroupName=name,
            ModelPackageGroupDescription="geo-busyness: hourly busyness per H3 cell",
        )["ModelPackageGroupArn"]

    def container(self, model_data_url: str) -> dict[str, Any]:
        container = {
            "Image": self.config.image_uri,
            "ModelDataUrl": model_data_url,
            "Environment": {**FRAMEWORK_ENVIRONMENT, **self.config.environment},
        }
        if self.config.framework:
            container["Framework"] = self.config.framework
        if self.config.framework_version:
            container["FrameworkVersion"] = self.config.framework_version
        return container

    def register_model_package(
        self,
        model_data_url: str,
        metrics_url: str,
        model_name: str,
        version: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        self.ensure_model_package_group()
        instance_types = [self.config.instance_type]
        response = self.sm.create_model_package(
            ModelPackageGroupName=self.config.model_package_group,
            ModelPackageDescription=f"MLflow model {model_name} version {version}",
            InferenceSpecification={
                "Containers": [self.container(model_data_url)],
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": CONTENT_TYPES,
                "SupportedRealtimeInferenceInstanceTypes": instance_types,
                "SupportedTransformInstanceTypes": instance_types,
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": metrics_url}
                }
            },
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties={
                "mlflow_model_name": model_name,
                "mlflow_model_version": str(version),
                **(metadata or {}),
            },
        )
        return response["ModelPackageArn"]

    # ------------------------------------------------------------------ model, config
    def resource_name(self, version: str) -> str:
        """``<endpoint>-v<version>``: the Model and EndpointConfig of one model version."""
        return f"{self.config.endpoint_name}-v{version}"[:63]

    def create_model(self, name: str, package_arn: str) -> None:
        if self._exists(self.sm.describe_model, ModelName=name):
            logger.info("Model %s exists; reusing it", name)
            return
        self.sm.create_model(
            ModelName=name,
            PrimaryContainer={"ModelPackageName": package_arn},
            ExecutionRoleArn=self.config.role_arn,
        )

    def create_endpoint_config(self, name: str, model_name: str) -> None:
        if self._exists(self.sm.describe_endpoint_config, EndpointConfigName=name):
            logger.info("Endpoint config %s exists; reusing it", name)
            return
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model_name,
                    "InitialInstanceCount": self.config.initial_instance_count,
                    "InstanceType": self.config.instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
        )

    # ------------------------------------------------------------------ endpoint
    def describe_endpoint(self) -> dict[str, Any] | None:
        try:
            return self.sm.describe_endpoint(EndpointName=self.config.endpoint_name)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    def deployment_config(self) -> dict[str, Any]:
        """Blue/green, all traffic at once, with SageMaker's own rollback on failure."""
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": self.config.termination_wait_seconds,
                "MaximumExecutionTimeoutInSeconds": int(
                    max(600, min(14400, self.config.wait_timeout_seconds))
                ),
            }
        }
        if self.config.rollback_alarms:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in self.config.rollback_alarms]
            }
        return config

    def rollout(self, config_name: str) -> dict[str, Any]:
        """Create or blue/green-update the endpoint to ``config_name``; wait for the outcome."""
        endpoint = self.config.endpoint_name
        current = self.describe_endpoint()
        if current is None:
            logger.info("Creating endpoint %s with %s", endpoint, config_name)
            self.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
            final = self.wait(config_name, previous=None)
            return {"action": "created", "previous_endpoint_config": None, **final}
        previous = current["EndpointConfigName"]
        if current["EndpointStatus"] not in ("InService", "Failed"):
            raise DeploymentError(
                f"Endpoint {endpoint} is {current['EndpointStatus']}; not updating it now."
                f" {previous} keeps serving."
            )
        if previous == config_name and current["EndpointStatus"] == "InService":
            logger.info("Endpoint %s already serves %s", endpoint, config_name)
            return {
                "action": "unchanged",
                "previous_endpoint_config": previous,
                **self._summary(current),
            }
        logger.info("Updating endpoint %s: %s -> %s (blue/green)", endpoint, previous, config_name)
        self.sm.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=config_name,
            DeploymentConfig=self.deployment_config(),
        )
        try:
            final = self.wait(config_name, previous=previous)
        except DeploymentError as failure:
            if failure.status in ("Failed", "UpdateRollbackFailed"):
                raise self._roll_back(previous, failure) from failure
            raise
        return {"action": "updated", "previous_endpoint_config": previous, **final}

    def _roll_back(self, previous: str, failure: DeploymentError) -> DeploymentError:
        """Put the endpoint back on ``previous`` after a failed update; the error to raise."""
        logger.error("%s Rolling back to %s", failure, previous)
        try:
            self.sm.update_endpoint(
                EndpointName=self.config.endpoint_name, EndpointConfigName=previous
            )
            self.wait(previous, previous=None)
        except (ClientError, DeploymentError) as exc:
            return DeploymentError(f"{failure} Rolling back to {previous} failed too: {exc}")
        return DeploymentError(f"{failure} Rolled back: {previous} serves again.", "InService")

    def wait(self, config_name: str, previous: str | None) -> dict[str, Any]:
        """Poll until the endpoint settles; raise ``DeploymentError`` unless it serves the new config."""
        endpoint = self.config.endpoint_name
        deadline = self._clock() + self.config.wait_timeout_seconds
        while True:
            described = self.sm.describe_endpoint(EndpointName=endpoint)
            status = described["EndpointStatus"]
            if status in SETTLED:
                break
            if self._clock() >= deadline:
                serving = f"{previous} keeps serving" if previous else "nothing serves yet"
                raise DeploymentError(
                    f"Endpoint {endpoint} still {status} after {self.config.wait_timeout_seconds:g}"
                    f" s waiting for {config_name}; {serving} until SageMaker finishes or rolls"
                    " back (blue/green).",
                    status,
                )
            self._sleep(self.config.poll_seconds)
        serving_config = described.get("EndpointConfigName")
        if status == "InService" and serving_config == config_name:
            return self._summary(described)
        reason = described.get("FailureReason") or "no reason given"
        if previous and status == "InService":
            raise DeploymentError(
                f"Update of endpoint {endpoint} to {config_name} failed ({reason}); SageMaker"
                f" rolled back and {serving_config} keeps serving.",
                status,
            )
        raise DeploymentError(
            f"Endpoint {endpoint} is {status} instead of serving {config_name}: {reason}.", status
        )

    # ------------------------------------------------------------------ all steps
    def deploy(
        self,
        package_path: str | Path,
        model_name: str,
        version: str,
        metrics: dict[str, Any],
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload, register, create Model + EndpointConfig and roll the endpoint out."""
        version = str(version)
        model_data_url = self.upload_package(package_path, model_name, version)
        metrics_url = self.upload_metrics(metrics, model_name, version)
        package_arn = self.register_model_package(
            model_data_url, metrics_url, model_name, version, metadata
        )
        name = self.resource_name(version)
        try:
            self.create_model(name, package_arn)
            self.create_endpoint_config(name, name)
            outcome = self.rollout(name)
        except Exception as failure:
            # The package was registered Approved (SageMaker deploys approved packages only);
            # a rollout that did not end with it serving marks it back, so nothing reading the
            # registry takes a version that never served for a good one.
            self._reject_package(package_arn, failure)
            raise
        return {
            "model_data_url": model_data_url,
            "metrics_url": metrics_url,
            "model_package_arn": package_arn,
            "model_package_group": self.config.model_package_group,
            "sagemaker_model": name,
            **outcome,
        }

    def _reject_package(self, package_arn: str, failure: BaseException) -> None:
        """Mark the model package Rejected after a failed rollout (logged if that fails too)."""
        reason = f"Rollout failed: {type(failure).__name__}: {failure}"[:1000]
        try:
            self.sm.update_model_package(
                ModelPackageArn=package_arn,
                ModelApprovalStatus="Rejected",
                ApprovalDescription=reason,
            )
            logger.error("Model package %s marked Rejected: %s", package_arn, reason)
        except Exception as exc:  # noqa: BLE001 - the rollout's failure is what the caller sees
            logger.error(
                "Model package %s stays Approved although its rollout failed; marking it"
                " Rejected failed too (%s: %s). Reject it by hand.",
                package_arn,
                type(exc).__name__,
                exc,
            )

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _summary(described: dict[str, Any]) -> dict[str, Any]:
        """The JSON-friendly facts of a DescribeEndpoint answer."""
        return {
            "endpoint_name": described["EndpointName"],
            "endpoint_arn": described.get("EndpointArn"),
            "endpoint_config": described.get("EndpointConfigName"),
            "status": described["EndpointStatus"],
        }

    @staticmethod
    def _exists(describe: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            describe(**kwargs)
        except ClientError as exc:
            if _not_found(exc):
                return False
            raise
        return True


def _not_found(exc: ClientError) -> bool:
    """SageMaker says 'does not exist' with ValidationException or ResourceNotFound."""
    error = exc.response.get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") in ("ResourceNotFound", "ResourceNotFoundException") or (
        error.get("Code") == "ValidationException"
        and ("could not find" in message or "does not exist" in message or "not found" in message)
    )

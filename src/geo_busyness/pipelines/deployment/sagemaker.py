"""SageMaker control plane (boto3): registry, model, endpoint config, blue/green endpoint update.

``SageMakerDeployer.deploy`` takes a built ``model.tar.gz`` and:

1. uploads it and the evaluation metrics to S3;
2. creates the model package group if missing and registers an *Approved* model package
   (inference spec with the SKLearn image, the package URL, the metrics);
3. creates the Model and EndpointConfig named by the model version (reused if they exist);
4. creates the endpoint, or updates it blue/green with the ``rollout`` policy (canary, linear
   or all at once; ``rollout.py``): SageMaker keeps the old fleet serving until the new one has
   all the traffic and rolls back by itself when the new one fails or a rollback alarm fires;
5. waits for the outcome within a timeout. An update rolled back (by SageMaker, or by us after
   the endpoint ended Failed) is an outcome, not an error: ``status`` ``rolled_back`` with the
   ``reason``, the previous config serving. Other failures raise ``DeploymentError`` saying
   which config serves. Either way the model package is marked back to *Rejected* (SageMaker
   deploys approved packages only, so it is approved at registration and un-approved when its
   rollout fails), and the caller does not promote the model.

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

from .rollout import DeploymentError, EndpointRollout, RolloutPolicy, not_found

__all__ = ["DeploymentError", "SageMakerConfig", "SageMakerDeployer", "make_clients"]

logger = logging.getLogger(__name__)

#: How the SKLearn framework container finds code/inference.py in the unpacked model.
FRAMEWORK_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
}
CONTENT_TYPES = ["application/json", "text/csv"]
#: Former ``deployment.sagemaker`` keys and where they live now.
MOVED = {
    "rollback_alarms": "rollout.alarms",
    "termination_wait_seconds": "rollout.termination_wait_seconds",
}


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
    environment: dict[str, str] = field(default_factory=dict)
    #: How an update shifts traffic and what rolls it back (``deployment.sagemaker.rollout``).
    rollout: RolloutPolicy = field(default_factory=RolloutPolicy)

    def __post_init__(self) -> None:
        if isinstance(self.rollout, dict):
            self.rollout = RolloutPolicy.from_params(self.rollout)
        self.rollout.check_timeout(self.wait_timeout_seconds)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SageMakerConfig:
        moved = [f"{key} (now {MOVED[key]})" for key in sorted(set(params) & set(MOVED))]
        if moved:
            raise ValueError(f"deployment.sagemaker parameter(s) moved: {moved}")
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
    from botocore.config import Config  # noqa: PLC0415

    from geo_busyness.remote import s3_config_kwargs  # noqa: PLC0415

    session = boto3.session.Session(region_name=region)
    config = Config(**s3_config_kwargs())  # the project's deadlines (remote.py)
    return session.client("sagemaker", config=config), session.client("s3", config=config)


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
        self.endpoint = EndpointRollout(
            sagemaker_client,
            config.endpoint_name,
            config.rollout,
            wait_timeout_seconds=config.wait_timeout_seconds,
            poll_seconds=config.poll_seconds,
            sleep=sleep,
            clock=clock,
        )

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
            if not not_found(exc):
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
            self._reject_package(
                package_arn, f"Rollout failed: {type(failure).__name__}: {failure}"
            )
            raise
        outcome["model_package_status"] = (
            self._reject_package(package_arn, f"Rolled back: {outcome['reason']}")
            if outcome["rolled_back"]
            else "Approved"
        )
        return {
            "model_data_url": model_data_url,
            "metrics_url": metrics_url,
            "model_package_arn": package_arn,
            "model_package_group": self.config.model_package_group,
            "sagemaker_model": name,
            **outcome,
        }

    def rollout(self, config_name: str) -> dict[str, Any]:
        """Create or blue/green-update the endpoint to ``config_name``; the outcome."""
        return self.endpoint.run(config_name)

    def deployment_config(self) -> dict[str, Any]:
        """The ``DeploymentConfig`` an endpoint update sends (the rollout policy)."""
        return self.endpoint.deployment_config()

    def _reject_package(self, package_arn: str, reason: str) -> str:
        """Mark the model package Rejected after a failed rollout; its approval status after."""
        reason = reason[:1000]
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
            return "Approved"
        return "Rejected"

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _exists(describe: Callable[..., Any], **kwargs: Any) -> bool:
        try:
            describe(**kwargs)
        except ClientError as exc:
            if not_found(exc):
                return False
            raise
        return True

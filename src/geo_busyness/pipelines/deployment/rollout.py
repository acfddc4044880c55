"""Endpoint rollout on SageMaker: the traffic-shifting policy and watching an update to its outcome.

``RolloutPolicy`` is ``deployment.sagemaker.rollout``: a blue/green update that shifts traffic
to the new fleet ``canary`` (a small share first, the rest after ``wait_interval_seconds``),
``linear`` (equal steps) or ``all_at_once``, then keeps the old fleet
``termination_wait_seconds`` longer. SageMaker watches the CloudWatch ``alarms`` during the
shift and that wait, and rolls the update back by itself when one fires (or when the new fleet
fails its health checks): the endpoint is InService on its old EndpointConfig again.

``EndpointRollout`` creates or updates the endpoint and reports what happened. Its outcome's
``status`` is ``deployed``, ``unchanged`` or ``rolled_back`` (then ``rolled_back`` is True and
``reason`` says why); anything else (a timeout, an endpoint left Failed that could not be put
back) raises ``DeploymentError``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

PARAMS = "deployment.sagemaker.rollout"
STRATEGIES = ("canary", "linear", "all_at_once")
#: Endpoint states an update ends in (the others are steps on the way).
SETTLED = {"InService", "Failed", "OutOfService", "UpdateRollbackFailed"}
#: Service limits of BlueGreenUpdatePolicy (botocore's SageMaker model).
MAX_WAIT_SECONDS = 3600
EXECUTION_TIMEOUT_RANGE = (600, 28800)


class DeploymentError(RuntimeError):
    """A deployment that did not reach InService with the new config (message says what serves)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status  # the endpoint's status when it was raised


def _integer(name: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an integer in [low, high]; else ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{PARAMS}.{name} must be an integer from {low} to {high}, got {value!r}.")
    return value


@dataclass
class RolloutPolicy:
    """How an endpoint update shifts traffic and what rolls it back."""

    strategy: str = "canary"
    #: canary: share of the new fleet's capacity that takes traffic first (SageMaker: <= 50%).
    canary_size_percent: int = 10
    #: linear: share of capacity per step (SageMaker: 10-50%).
    linear_step_percent: int = 20
    #: canary / linear: seconds between traffic steps (the alarms are watched meanwhile).
    wait_interval_seconds: int = 600
    #: Seconds the old fleet is kept (and the alarms watched) after all traffic has moved.
    termination_wait_seconds: int = 300
    #: CloudWatch alarm names: any of them in ALARM during the update rolls it back.
    alarms: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"{PARAMS}.strategy must be one of {STRATEGIES}, got {self.strategy!r}."
            )
        _integer("canary_size_percent", self.canary_size_percent, 1, 50)
        _integer("linear_step_percent", self.linear_step_percent, 10, 50)
        _integer("wait_interval_seconds", self.wait_interval_seconds, 0, MAX_WAIT_SECONDS)
        _integer("termination_wait_seconds", self.termination_wait_seconds, 0, MAX_WAIT_SECONDS)
        if not isinstance(self.alarms, list) or not all(
            isinstance(name, str) and name.strip() for name in self.alarms
        ):
            raise ValueError(f"{PARAMS}.alarms must be a list of alarm names, got {self.alarms!r}.")
        if self.strategy != "all_at_once" and not self.alarms:
            logger.warning(
                "%s.strategy is %s but %s.alarms is empty: nothing would roll the update back"
                " once the new instances pass their health checks (the steps only delay the"
                " full shift). Name the CloudWatch alarms that watch the endpoint.",
                PARAMS,
                self.strategy,
                PARAMS,
            )

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> RolloutPolicy:
        """The policy of ``deployment.sagemaker.rollout`` (unknown keys are named)."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Unknown {PARAMS} parameter(s): {unknown}")
        return cls(**params)

    def shifting_seconds(self) -> int:
        """Seconds SageMaker spends waiting on purpose: between steps, then before terminating."""
        steps = {"canary": 1, "linear": math.ceil(100 / self.linear_step_percent) - 1}
        return steps.get(self.strategy, 0) * self.wait_interval_seconds + (
            self.termination_wait_seconds
        )

    def traffic_routing(self) -> dict[str, Any]:
        """The ``TrafficRoutingConfiguration`` of the strategy."""
        if self.strategy == "all_at_once":
            return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
        routing: dict[str, Any] = {
            "Type": self.strategy.upper(),
            "WaitIntervalInSeconds": self.wait_interval_seconds,
        }
        if self.strategy == "canary":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.canary_size_percent}
        else:
            routing["LinearStepSize"] = {
                "Type": "CAPACITY_PERCENT",
                "Value": self.linear_step_percent,
            }
        return routing

    def deployment_config(self, timeout_seconds: float) -> dict[str, Any]:
        """``DeploymentConfig`` of UpdateEndpoint: blue/green with this routing, alarm rollback."""
        low, high = EXECUTION_TIMEOUT_RANGE
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": self.traffic_routing(),
                "TerminationWaitInSeconds": self.termination_wait_seconds,
                "MaximumExecutionTimeoutInSeconds": int(max(low, min(high, timeout_seconds))),
            }
        }
        if self.alarms:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in self.alarms]
            }
        return config

    def check_timeout(self, timeout_seconds: float) -> None:
        """Raise unless the update's planned waits end well within ``timeout_seconds``."""
        if self.shifting_seconds() >= min(timeout_seconds, EXECUTION_TIMEOUT_RANGE[1]):
            raise ValueError(
                f"deployment.sagemaker.wait_timeout_seconds ({timeout_seconds:g}) must exceed the"
                f" {self.strategy} rollout's waits ({self.shifting_seconds()} s from"
                f" {PARAMS}.wait_interval_seconds and termination_wait_seconds) plus the time"
                " to start the new fleet; the deployment would give up before SageMaker ends."
            )


def not_found(exc: ClientError) -> bool:
    """SageMaker says 'does not exist' with ValidationException or ResourceNotFound."""
    error = exc.response.get("Error", {})
    message = str(error.get("Message", "")).lower()
    return error.get("Code") in ("ResourceNotFound", "ResourceNotFoundException") or (
        error.get("Code") == "ValidationException"
        and ("could not find" in message or "does not exist" in message or "not found" in message)
    )


def endpoint_summary(described: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly facts of a DescribeEndpoint answer."""
    return {
        "endpoint_name": described["EndpointName"],
        "endpoint_arn": described.get("EndpointArn"),
        "endpoint_config": described.get("EndpointConfigName"),
        "endpoint_status": described["EndpointStatus"],
    }


class EndpointRollout:
    """Creates or updates one endpoint and watches the change to its outcome."""

    def __init__(
        self,
        sagemaker_client: Any,
        endpoint_name: str,
        policy: RolloutPolicy,
        *,
        wait_timeout_seconds: float,
        poll_seconds: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.sm = sagemaker_client
        self.endpoint = endpoint_name
        self.policy = policy
        self.wait_timeout_seconds = wait_timeout_seconds
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self._clock = clock

    def describe(self) -> dict[str, Any] | None:
        """DescribeEndpoint, or None when the endpoint does not exist."""
        try:
            return self.sm.describe_endpoint(EndpointName=self.endpoint)
        except ClientError as exc:
            if not_found(exc):
                return None
            raise

    def deployment_config(self) -> dict[str, Any]:
        return self.policy.deployment_config(self.wait_timeout_seconds)

    def run(self, config_name: str) -> dict[str, Any]:
        """Create the endpoint on ``config_name`` or update it blue/green; the outcome."""
        current = self.describe()
        if current is None:
            # A new endpoint has no old fleet to shift traffic from or roll back to: the
            # routing and alarms apply to its updates only.
            logger.info("Creating endpoint %s with %s", self.endpoint, config_name)
            self.sm.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=config_name)
            settled = self.wait(config_name, previous=None)
            if (settled["EndpointStatus"], settled.get("EndpointConfigName")) != (
                "InService",
                config_name,
            ):
                raise self._failure(settled, config_name)
            return _outcome("created", "deployed", None, settled)
        previous = current["EndpointConfigName"]
        if current["EndpointStatus"] not in ("InService", "Failed"):
            raise DeploymentError(
                f"Endpoint {self.endpoint} is {current['EndpointStatus']}; not updating it now."
                f" {previous} keeps serving."
            )
        if previous == config_name and current["EndpointStatus"] == "InService":
            logger.info("Endpoint %s already serves %s", self.endpoint, config_name)
            return _outcome("unchanged", "unchanged", previous, current)
        logger.info(
            "Updating endpoint %s: %s -> %s (blue/green, %s)",
            self.endpoint,
            previous,
            config_name,
            self.policy.strategy,
        )
        self.sm.update_endpoint(
            EndpointName=self.endpoint,
            EndpointConfigName=config_name,
            DeploymentConfig=self.deployment_config(),
        )
        return self._update_outcome(config_name, previous, self.wait(config_name, previous))

    def _update_outcome(
        self, config_name: str, previous: str, settled: dict[str, Any]
    ) -> dict[str, Any]:
        """Deployed, rolled back by SageMaker, or put back by us after it ended Failed."""
        status, serving = settled["EndpointStatus"], settled.get("EndpointConfigName")
        outcome = {"strategy": self.policy.strategy, "alarms": list(self.policy.alarms)}
        if status == "InService" and serving == config_name:
            return {**_outcome("updated", "deployed", previous, settled), **outcome}
        reason = settled.get("FailureReason") or self._unstated_reason()
        if status == "InService" and serving == previous:
            logger.error(
                "Update of endpoint %s to %s was rolled back by SageMaker (%s); %s keeps serving.",
                self.endpoint,
                config_name,
                reason,
                previous,
            )
            return {**_rolled_back(settled, config_name, reason, "sagemaker"), **outcome}
        if status in ("Failed", "UpdateRollbackFailed"):
            put_back = self._roll_back(previous, self._failure(settled, config_name))
            return {**_rolled_back(put_back, config_name, reason, "deployer"), **outcome}
        raise self._failure(settled, config_name)

    def _unstated_reason(self) -> str:
        if self.policy.alarms:
            return (
                "SageMaker gave no FailureReason; one of the rollback alarms"
                f" {self.policy.alarms} went into ALARM, or the new fleet failed its health checks"
            )
        return "SageMaker gave no FailureReason; the new fleet failed its health checks"

    def _failure(self, settled: dict[str, Any], config_name: str) -> DeploymentError:
        status = settled["EndpointStatus"]
        reason = settled.get("FailureReason") or "no reason given"
        return DeploymentError(
            f"Endpoint {self.endpoint} is {status} instead of serving {config_name}: {reason}.",
            status,
        )

    def _roll_back(self, previous: str, failure: DeploymentError) -> dict[str, Any]:
        """Put the endpoint back on ``previous`` after a failed update; its description."""
        logger.error("%s Rolling back to %s", failure, previous)
        try:
            self.sm.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=previous)
            settled = self.wait(previous, previous=None)
        except (ClientError, DeploymentError) as exc:
            raise DeploymentError(
                f"{failure} Rolling back to {previous} failed too: {exc}", failure.status
            ) from exc
        if (settled["EndpointStatus"], settled.get("EndpointConfigName")) != (
            "InService",
            previous,
        ):
            raise DeploymentError(
                f"{failure} Rolling back to {previous} failed too: {self._failure(settled, previous)}",
                settled["EndpointStatus"],
            )
        logger.error("Rolled back: %s serves again.", previous)
        return settled

    def wait(self, config_name: str, previous: str | None) -> dict[str, Any]:
        """Poll until the endpoint settles (its DescribeEndpoint answer); raise on timeout."""
        deadline = self._clock() + self.wait_timeout_seconds
        while True:
            described = self.sm.describe_endpoint(EndpointName=self.endpoint)
            status = described["EndpointStatus"]
            if status in SETTLED:
                return described
            if self._clock() >= deadline:
                serving = f"{previous} keeps serving" if previous else "nothing serves yet"
                raise DeploymentError(
                    f"Endpoint {self.endpoint} still {status} after"
                    f" {self.wait_timeout_seconds:g} s waiting for {config_name}; {serving} until"
                    " SageMaker finishes or rolls back (blue/green).",
                    status,
                )
            self._sleep(self.poll_seconds)


def _outcome(
    action: str, status: str, previous: str | None, described: dict[str, Any]
) -> dict[str, Any]:
    return {
        "action": action,
        "status": status,
        "rolled_back": False,
        "previous_endpoint_config": previous,
        **endpoint_summary(described),
    }


def _rolled_back(described: dict[str, Any], attempted: str, reason: str, by: str) -> dict[str, Any]:
    """The outcome of an update that ended with the previous config serving again."""
    summary = endpoint_summary(described)
    return {
        "action": "updated",
        "status": "rolled_back",
        "rolled_back": True,
        "rolled_back_by": by,
        "reason": reason,
        "attempted_endpoint_config": attempted,
        "previous_endpoint_config": summary["endpoint_config"],
        **summary,
    }

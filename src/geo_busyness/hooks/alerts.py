"""``AlertHook``: the alerts a run's outputs and failures call for."""

from __future__ import annotations

import logging
import sys
from typing import Any

from kedro.framework.hooks import hook_impl

from geo_busyness.operations.alerts import (
    Alert,
    AlertConfig,
    alerts_from_outputs,
    failure_alert,
    read_credentials,
    reported_by_job,
    send_alert,
)
from geo_busyness.redaction import redact

logger = logging.getLogger(__name__)


class AlertHook:
    """Send an alert (``geo_busyness.operations.alerts``) when a node's outputs say monitoring recommends
    retraining, the quality gate failed or a deployment rolled back, and when the run fails.

    Nothing is sent unless the ``alerts`` parameters say ``enabled: true``. The configuration
    and the credentials entries the channels use are read once, when the context is created.
    An alert that cannot be built or delivered is logged, never raised: alerts never change a
    run's outcome. Inside a retraining job the job reports a failure and a failed gate itself
    (``retraining_failed``, ``challenger_rejected``): one alert per event. With the
    ParallelRunner, nodes run in other processes and only a failed run is reported.
    """

    def __init__(self) -> None:
        self._config: AlertConfig | None = None
        self._credentials: dict[str, Any] = {}
        self._context: dict[str, Any] = {}
        self._sent: set[str] = set()
        self._failed_node: str | None = None
        self._busy_node: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Read the ``alerts`` parameters and the credentials entries they name."""
        self._config, self._credentials, self._context = None, {}, {}
        config = AlertConfig.from_params(context.params.get("alerts"))
        if not config.enabled:
            return
        credentials = read_credentials(context.config_loader)
        self._credentials = {
            k: credentials[k] for k in config.credentials_keys() if k in credentials
        }
        key = config.webhook.credentials_key
        if key and key not in credentials:
            logger.warning(
                "Alerts: no '%s' entry in credentials.yml, webhook alerts are off%s",
                key,
                "" if config.sns.topic_arn else " (and no alerts.sns.topic_arn: nothing will send)",
            )
        self._config = config
        self._context = {"env": context.env}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        """Start the run's record: its id and pipelines; no alert sent yet."""
        self._sent, self._failed_node, self._busy_node = set(), None, None
        self._context |= {
            "run_id": run_params.get("run_id"),
            "pipelines": run_params.get("pipeline_names") or ["__default__"],
        }

    @hook_impl
    def before_dataset_loaded(self, node: Any) -> None:
        """Remember the node whose input is loading: a failed load names no node otherwise
        (exact with the sequential runner; the last to start with the thread runner)."""
        self._busy_node = node.name

    @hook_impl
    def after_dataset_loaded(self) -> None:
        """The load went through."""
        self._busy_node = None

    @hook_impl
    def before_dataset_saved(self, node: Any) -> None:
        """Remember the node whose output is saving."""
        self._busy_node = node.name

    @hook_impl
    def after_dataset_saved(self) -> None:
        """The save went through."""
        self._busy_node = None

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        """Send the alerts the node's outputs call for (each event once per run)."""
        if self._config is None:
            return
        try:
            alerts = alerts_from_outputs(outputs, self._run_context(node.name))
        except Exception as error:  # noqa: BLE001 - alerts never fail a run
            logger.warning(
                "Alerts: could not read the outputs of %s (%s)", node.name, redact(error)
            )
            return
        for alert in alerts:
            self._send(alert)

    @hook_impl
    def on_node_error(self, node: Any) -> None:
        """Remember the first node that failed."""
        self._failed_node = self._failed_node or node.name

    # tryfirst: other hooks re-raise the error in a clearer form, which would skip this one.
    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error: Exception) -> None:
        """Send ``pipeline_failed`` (or ``deployment_rolled_back``) naming the failed node."""
        if self._config is None:
            return
        try:
            alert = failure_alert(
                error, self._failed_node or self._busy_node, self._run_context(None)
            )
        except Exception as problem:  # noqa: BLE001 - the run's own error must stay the one raised
            logger.warning("Alerts: could not describe the failure (%s)", redact(problem))
            return
        self._send(alert)

    def _run_context(self, node: str | None) -> dict[str, Any]:
        """Where an alert comes from: env, pipelines, node, Kedro and MLflow run ids."""
        context = {**self._context, "node": node}
        mlflow = sys.modules.get("mlflow")  # only if something imported it: never import it here
        run = getattr(mlflow, "active_run", lambda: None)() if mlflow else None
        if run is not None:
            context["mlflow_run_id"] = run.info.run_id
        return context

    def _send(self, alert: Alert) -> None:
        """Send ``alert`` unless its event already went out in this run, or a retraining job
        running this pipeline reports it itself (``alerts.job_reports``); never raise."""
        if alert.event in self._sent or self._config is None:
            return
        if reported_by_job(alert.event):
            logger.info("Alerts: %s left to the retraining job's own alert", alert.event)
            return
        self._sent.add(alert.event)
        try:
            send_alert(alert, self._config, self._credentials)
        except Exception as error:  # noqa: BLE001 - alerts never fail a run
            logger.warning("Alerts: %s not sent (%s)", alert.event, redact(error))

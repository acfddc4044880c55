"""``TrackingServerHook``: deadlines on every remote call, a tracking server that must answer,
credentials kept out of errors, and runs left RUNNING by a killed process closed."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from kedro.framework.hooks import hook_impl

from geo_busyness.datasets import exception_chain
from geo_busyness.errors import ExplainedError
from geo_busyness.redaction import install_log_redaction, redact
from geo_busyness.remote import bound_remote_calls, server_problem, unreachable_message

logger = logging.getLogger(__name__)


class _ExplainedError(ExplainedError):
    """An error whose message says it all: the CLI prints it alone, without a traceback."""


class MissingTrackingServerError(_ExplainedError):
    """A run configured to use a team MLflow server has none to talk to."""


class UnreachableTrackingServerError(_ExplainedError):
    """The MLflow tracking server named by the configuration does not answer."""


class TrackingServerHook:
    """Put deadlines on every remote call (``remote``); with ``mlflow_tracking_uri: null`` (the
    cloud env), insist on MLFLOW_TRACKING_URI; check that an HTTP tracking server (and a
    separate registry) answers before anything talks to it; keep credentials out of logs and
    errors; mark the project's runs killed earlier (kill -9, a lost machine) as FAILED.

    MLflow would otherwise fall back to a SQLite file in the working directory, and a team run
    would be tracked where nobody sees it; a server that is down took ~250 s to fail, with a
    traceback quoting the URI, password included; and a killed run stayed RUNNING for ever.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Fail before any node runs when there is no tracking server to use, or it is down."""
        install_log_redaction()
        bound_remote_calls()
        patterns = context.config_loader.config_patterns
        patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
        try:
            server = context.config_loader["mlflow"].get("server", {})
        except Exception:  # noqa: BLE001 - no mlflow.yml: kedro-mlflow's defaults apply
            return
        uri = server.get("mlflow_tracking_uri")
        if uri is None:
            exported = context._get_config_credentials().get(server.get("credentials") or "", {})
            uri = os.environ.get("MLFLOW_TRACKING_URI") or exported.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise MissingTrackingServerError(
                f"The '{context.env}' environment tracks runs on a team MLflow server but "
                "MLFLOW_TRACKING_URI is not set: export it (e.g. http://mlflow.internal:5000) "
                "or add it to the credentials entry named in mlflow.yml."
            )
        servers = {"MLflow tracking server": (str(uri), "MLFLOW_TRACKING_URI")}
        registry = server.get("mlflow_registry_uri")
        if registry and registry != uri:
            servers["MLflow model registry"] = (str(registry), "mlflow_registry_uri")
        for service, (address, variable) in servers.items():
            problem = server_problem(address)
            if problem is not None:
                raise UnreachableTrackingServerError(
                    unreachable_message(service, address, problem, variable)
                )

    # trylast: kedro-mlflow's own before_pipeline_run has started the run by then.
    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        """Tag the run with its owner (pid@host); mark the experiment's runs whose owner is
        gone as FAILED. Never fails the run: a problem is logged."""
        mlflow = sys.modules.get("mlflow")  # kedro-mlflow imported it if it tracks this run
        run = mlflow.active_run() if mlflow else None
        if run is None:
            return
        from geo_busyness.registry import fail_stale_runs, tag_run_owner  # noqa: PLC0415 - heavy

        try:
            tag_run_owner(run.info.run_id)
            closed = fail_stale_runs(run.info.experiment_id, keep=run.info.run_id)
        except Exception as error:  # noqa: BLE001 - bookkeeping must never fail a run
            logger.warning("Could not check for runs left RUNNING: %s", redact(error))
            return
        for run_id, why in closed.items():
            logger.warning("Marked MLflow run %s FAILED: %s", run_id, why)

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception) -> None:
        """Re-raise an error whose message quotes a credential with the credential masked."""
        for link in exception_chain(error):
            text = str(link)
            if redact(text) != text:
                raise _ExplainedError(f"{type(link).__name__}: {redact(text)}") from None

"""Every project hook (``settings.HOOKS`` registers them from here).

- ``ProjectPathsHook``: make the SQLite MLflow store, its artifacts and every path parameter
  absolute from the project path, whatever the working directory.
- ``ParameterCheckHook``: check every parameter block against ``parameter_schema`` before
  anything runs.
- ``TrackingServerHook``: deadlines on every remote call (``remote``); fail early on a cloud
  run with no tracking server, or one that does not answer; close runs left RUNNING by a
  killed process.
- ``MemoryBudgetHook``: refuse a raw file too large for memory before anything reads it
  (the estimate lives in ``memory_budget``).
- ``StorageErrorHook``: explain storage faults.
- ``SparkHooks``: in an environment with Spark settings (``conf/spark``), start the
  SparkSession and run the Spark pipelines (``spark.session``; pyspark is imported only then).
- ``RunSummaryHook``: end a run with a short summary of its reports (rendered by
  ``run_summary``).
- ``AlertHook``: with ``alerts.enabled``, send an alert (``alerts``) when monitoring recommends
  retraining, the quality gate fails, a deployment rolls back or the run fails.

A storage fault (missing file, bucket or object, refused credentials, unreachable endpoint)
surfaces from Kedro as a chain of wrapped exceptions. ``StorageErrorHook`` turns it into one
sentence naming the dataset, its URL and the likely fix, raised as ``StorageError`` (an
``errors.ExplainedError``, so the CLI prints the sentence rather than a traceback; ``--verbose``
still shows everything).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError
from kedro.io.core import VersionNotFoundError

from geo_busyness.alerts import (
    Alert,
    AlertConfig,
    alerts_from_outputs,
    failure_alert,
    read_credentials,
    reported_by_job,
    send_alert,
)
from geo_busyness.errors import ExplainedError
from geo_busyness.memory_budget import check_raw_inputs
from geo_busyness.parameter_check import check_parameters
from geo_busyness.redaction import install_log_redaction, redact
from geo_busyness.remote import bound_remote_calls, server_problem, unreachable_message
from geo_busyness.run_summary import inference_summary, monitoring_summary, run_summary

logger = logging.getLogger(__name__)

# Exception class names (from botocore, aiohttp, urllib3) meaning "could not reach the store".
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerTimeoutError",
    "NewConnectionError",
    "ReadTimeoutError",  # an endpoint that accepts and never answers (remote.S3_READ_TIMEOUT_S)
}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"}


class _ExplainedError(ExplainedError):
    """An error whose message says it all: the CLI prints it alone, without a traceback."""


class StorageError(_ExplainedError):
    """A dataset could not be read or written; the message names it, its URL and the fix."""


class MissingTrackingServerError(_ExplainedError):
    """A run configured to use a team MLflow server has none to talk to."""


def _chain(error: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _dataset_url(name: str, dataset: Any) -> str | None:
    """The URL a file-based dataset reads and writes, or None for other datasets."""
    described = getattr(dataset, "_describe", lambda: {})()
    path = described.get("filepath")
    if path is None:
        return None
    protocol = described.get("protocol") or getattr(dataset, "_protocol", "file")
    return f"{protocol}://{path}" if protocol not in ("file", "local") else str(path)


def _find_dataset(message: str, catalog: Any) -> tuple[str, str] | None:
    """The catalog name and URL of the dataset whose path a Kedro error message quotes."""
    for name in catalog.keys():
        try:
            url = _dataset_url(name, catalog.get(name))
        except Exception:  # noqa: BLE001 - a dataset that cannot describe itself is not the one
            continue
        if url and url.split("://")[-1] in message:
            return name, url
    return None


def explain_storage_failure(error: BaseException, catalog: Any) -> str | None:
    """One sentence on a dataset load/save fault, or None when ``error`` is not one."""
    chain = _chain(error)
    dataset_error = next((e for e in chain if isinstance(e, DatasetError)), None)
    if dataset_error is None:
        return None
    messages = " ".join(str(e) for e in chain if isinstance(e, DatasetError))
    saving = (
        "while loading" not in messages
        and re.search(r"while saving|cannot save|save path", messages, re.IGNORECASE) is not None
    )
    action = "save to" if saving else "load"
    found = _find_dataset(str(dataset_error), catalog)
    if found is None:
        return None
    name, url = found
    names = {type(e).__name__ for e in chain} | {
        # (a timeout's ``response`` is None)
        str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))
        for e in chain
    }
    bucket = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else None
    not_found = any(isinstance(e, FileNotFoundError | VersionNotFoundError) for e in chain)
    if names & _UNREACHABLE:
        why = (
            "the storage endpoint could not be reached (check AWS_ENDPOINT_URL, the network, "
            "or the region)"
        )
    elif names & _BAD_CREDENTIALS or any(isinstance(e, PermissionError) for e in chain):
        why = (
            "the credentials were refused (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or conf/<env>/credentials.yml)"
        )
    elif "NoCredentialsError" in names:
        why = "no AWS credentials were found (set AWS_* or conf/<env>/credentials.yml)"
    elif "NoSuchBucket" in names or (
        not_found and bucket and _bucket_missing(catalog.get(name), bucket)
    ):
        why = f"the bucket '{bucket}' does not exist (check data_root in conf/<env>/globals.yml)"
    elif not_found and not saving:
        why = (
            "nothing is stored there: run the pipeline that writes it first "
            "(README, Pipelines), or point the catalog at your file"
        )
    else:
        return None
    return f"Could not {action} dataset '{name}' at {url}: {why}."


def _bucket_missing(dataset: Any, bucket: str) -> bool:
    """True when the dataset's filesystem says the bucket is absent (False if it cannot tell)."""
    try:
        return not dataset._fs.exists(bucket)
    except Exception:  # noqa: BLE001 - unknown: let the generic message stand
        return False


class StorageErrorHook:
    """Re-raise storage faults as one clear sentence (after other hooks saw the original)."""

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception, catalog: Any) -> None:
        """Raise ``StorageError`` in place of a wrapped storage fault."""
        explanation = explain_storage_failure(error, catalog)
        if explanation:
            logger.error(explanation)
            raise StorageError(explanation) from error


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
        for link in _chain(error):
            text = str(link)
            if redact(text) != text:
                raise _ExplainedError(f"{type(link).__name__}: {redact(text)}") from None


#: Parameter keys ending so name a local path (``deployment.package_dir``,
#: ``deployment.local.model_store``, ``retraining.lock_file``): made absolute from the project.
PATH_KEY_SUFFIXES = ("_dir", "_file", "_store", "_folder")
#: A local SQLite tracking store (``sqlite:///mlflow.db`` is relative, ``sqlite:////x`` not).
_SQLITE = "sqlite:///"


def is_relative_local_path(value: str) -> bool:
    """True for a path that is neither absolute nor a URL (``data/x``, not ``s3://b/x``)."""
    return "://" not in value and not value.startswith(("/", "~")) and value != ""


def absolute_tracking_uri(uri: str | None, project_path: Path) -> str | None:
    """``sqlite:///mlflow.db`` as ``sqlite:////<project>/mlflow.db``; anything else as is.
    MLflow resolves a relative SQLite file against the process's working directory (an
    Airflow worker's, a notebook's), which made a second, empty registry there."""
    if uri and uri.startswith(_SQLITE) and is_relative_local_path(uri[len(_SQLITE) :]):
        return f"{_SQLITE}{(project_path / uri[len(_SQLITE) :]).as_posix()}"
    return uri


def absolute_mlflow_config(
    config: Mapping[str, Any], project_path: Path, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The mlflow.yml settings with a local SQLite store (configured, or MLFLOW_TRACKING_URI
    when the file says null) absolute from the project, and its artifacts in the project's
    ``mlruns/`` (MLflow would put a new experiment's under the working directory)."""
    server = dict(config.get("server") or {})
    uri = server.get("mlflow_tracking_uri") or environ.get("MLFLOW_TRACKING_URI")
    absolute = absolute_tracking_uri(uri, project_path)
    if not (absolute or "").startswith(_SQLITE):
        return dict(config)  # a tracking server keeps its own artifact store
    if absolute != uri:
        server["mlflow_tracking_uri"] = absolute
    if server.get("mlflow_registry_uri"):
        server["mlflow_registry_uri"] = absolute_tracking_uri(
            server["mlflow_registry_uri"], project_path
        )
    tracking = dict(config.get("tracking") or {})
    experiment = dict(tracking.get("experiment") or {})
    kwargs = dict(experiment.get("create_experiment_kwargs") or {})
    if kwargs.get("artifact_location") is None:
        kwargs["artifact_location"] = (project_path / "mlruns").as_uri()
    experiment["create_experiment_kwargs"] = kwargs
    tracking["experiment"] = experiment
    return {**config, "server": server, "tracking": tracking}


def absolute_path_parameters(params: Any, project_path: Path) -> Any:
    """``params`` with every relative local path under a ``PATH_KEY_SUFFIXES`` key made
    absolute from ``project_path`` (nested blocks included; other values untouched)."""
    if not isinstance(params, Mapping):
        return params
    return {
        key: (
            (project_path / value).as_posix()
            if isinstance(value, str)
            and str(key).endswith(PATH_KEY_SUFFIXES)
            and is_relative_local_path(value)
            else absolute_path_parameters(value, project_path)
        )
        for key, value in params.items()
    }


class ProjectPathsHook:
    """Every local path a run uses is absolute from the project path, whatever the working
    directory: the SQLite MLflow store and its artifacts, and path parameters (model store,
    package folder, lock file). Kedro already does this for catalog file paths; an Airflow
    worker or a notebook starts elsewhere."""

    # tryfirst, and registered after ParameterCheckHook: before anything reads the parameters
    # (Kedro caches them) or the MLflow settings (kedro-mlflow's own after_context_created).
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Replace the parameters and the mlflow settings by their absolute versions."""
        project_path = Path(context.project_path)
        loader = context.config_loader
        try:
            loader["parameters"] = absolute_path_parameters(loader["parameters"], project_path)
        except MissingConfigException:
            pass
        loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
        try:
            config = loader["mlflow"]
        except MissingConfigException:
            return
        loader["mlflow"] = absolute_mlflow_config(config, project_path, os.environ)


class ParameterCheckHook:
    """Check the run's parameters (every environment's files and ``--params``, merged) against
    ``parameter_schema``: a wrong type, range or unknown key stops the run before anything
    runs, with one line per key (``ParameterError``)."""

    # tryfirst: before any other hook reads a parameter (AlertHook reads `alerts` here too).
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        """Raise ``ParameterError`` naming every parameter that does not fit the schema."""
        check_parameters(context.params)


class MemoryBudgetHook:
    """Check the raw inputs of a run against the memory budget before anything is loaded."""

    # tryfirst: refuse before other hooks act (kedro-mlflow would otherwise open a run first).
    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        """Raise ``MemoryBudgetError`` before the run when a raw input would not fit."""
        check_raw_inputs(pipeline, catalog)


#: Report dataset -> (its renderer, the other outputs whose files the summary points at).
SUMMARIES: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "evaluation_report": (run_summary, ("reporting_page", "busyness_map")),
    "inference_report": (inference_summary, ("busyness_forecast", "scored_queries")),
    "monitoring_report": (monitoring_summary, ("monitoring_report_html",)),
}


def report_locations(names: list[str], catalog: Any) -> str | None:
    """The files of the named datasets (those with a file), comma-separated; None if none."""
    urls = []
    for name in names:
        try:
            url = _dataset_url(name, catalog.get(name))
        except Exception:  # noqa: BLE001 - a dataset that cannot describe itself is skipped
            url = None
        if url:
            urls.append(_relative_to_cwd(url))
    return ", ".join(urls) or None


def _relative_to_cwd(url: str) -> str:
    """A local path under the working directory as a relative path; anything else as is."""
    path = Path(url)
    if "://" in url or not path.is_absolute() or not path.is_relative_to(Path.cwd()):
        return url
    return str(path.relative_to(Path.cwd()))


class RunSummaryHook:
    """After a run, print a short summary of each report it wrote (``SUMMARIES``).

    The report is read through the run's catalog, so the summary shows what was saved,
    wherever the environment saves it.
    """

    @hook_impl(trylast=True)
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        """Print the summary of every report dataset the pipeline wrote."""
        outputs = pipeline.all_outputs()
        for name, (render, files) in SUMMARIES.items():
            if name not in outputs:
                continue
            try:
                report = catalog.load(name)
            except Exception as error:  # noqa: BLE001 - the summary must never fail a run
                logger.warning("No run summary: '%s' could not be read (%s)", name, error)
                continue
            if not isinstance(report, Mapping):
                continue
            wanted = [name, *(file for file in files if file in outputs)]
            click.echo(render(report, reports_at=report_locations(wanted, catalog)))


class SparkHooks:
    """The `spark` environment's SparkSession (Kedro's PySpark guide) and Spark pipelines."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Start the session and select the Spark pipelines where Spark settings exist."""
        from geo_busyness.spark.session import activate_engine  # noqa: PLC0415 - keeps pyspark optional

        activate_engine(context)

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        """Wait for the session started in the background, after the other hooks' work (an
        earlier hook that reads a Spark dataset waits on pyspark's own lock for the same
        session) and before any node runs."""
        from geo_busyness.spark.session import wait_for_session  # noqa: PLC0415 - no pyspark import

        wait_for_session()


class AlertHook:
    """Send an alert (``geo_busyness.alerts``) when a node's outputs say monitoring recommends
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

"""``ProjectPathsHook``: every local path a run uses is absolute from the project path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

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

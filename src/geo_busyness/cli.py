"""Project CLI commands, found by Kedro in ``<package>.cli``: ``kedro serve``, ``kedro retrain``
and ``kedro generate-data``, and ``kedro run`` (Kedro's own, plus one-line errors).

``kedro serve --shadow`` (or ``deployment.local.shadow: true``) also asks the registry's
challenger every query, off the response path, and logs both answers to the catalog's
``shadow_log`` (``geo_busyness.serving.shadow``); ``kedro run --pipelines shadow`` scores them.

Every command here reports a mistake the user can fix (``errors.USER_ERRORS``, a parameter,
an unknown pipeline) in one line plus a ``Next:`` line, without a traceback and without
Kedro's ``--from-nodes`` resume hint; ``--verbose`` (or ``GEO_BUSYNESS_TRACEBACK=1``) shows the
traceback. ``run`` is Kedro's ``run`` with that, and with ``--pipelines`` names checked first (a
project's ``cli.py`` may redefine ``run``: Kedro's "add or modify CLI commands" use case).
Kedro also takes this module's ``run`` for ``python -m geo_busyness`` and the ``geo-busyness``
script.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import PARAMS_ARG_HELP
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import KedroCliError, _split_params

from geo_busyness.errors import TRACEBACK_VARIABLE, explained_errors, traceback_requested
from geo_busyness.pipeline_registry import check_pipeline_names
from geo_busyness.redaction import redact

__all__ = [
    "champion_location",
    "cli",
    "generation_decision",
    "registry_names",
    "run",
    "shadow_refusal",
]

RECORD_DATASET = "deployment_record"
SHADOW_LOG_DATASET = "shadow_log"
#: The ingestion pipeline's published counts state, which a served model follows.
COUNTS_STATE_DATASET = "counts_state"


def registry_names(config_globals: dict[str, Any]) -> tuple[str, str]:
    """The registered model name and the champion alias, from the project's globals."""
    return config_globals["registered_model_name"], config_globals["aliases"]["champion"]


def champion_location(record: dict[str, Any] | None, model_name: str, champion_alias: str) -> str:
    """What to serve: the local store's model of the latest local deployment, else the registry's champion."""
    if record and record.get("target") == "local":
        model_dir = Path(record["deployment"]["model_dir"])
        if model_dir.is_dir():
            return str(model_dir)
    name = (record or {}).get("model_name", model_name)
    return f"models:/{name}@{champion_alias}"


def shadow_refusal(champion_version: str | None, challenger_version: str | None) -> str | None:
    """Why shadow mode has nothing to compare (None when the challenger is another version)."""
    if challenger_version is None:
        return "the registry has no challenger version"
    if challenger_version == champion_version:
        return f"the challenger is the champion (version {challenger_version})"
    return None


def refresh_environment(
    *,
    counts_state: str | None,
    follow: str | None,
    version: str | None,
    poll_interval: float,
    alerts: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The server's refresh settings as environment variables (``serving/refresh.py``): the
    counts state to follow, the alias to follow, the served version's label, how often to
    poll, and the alerts block with only the credentials entries it names."""
    from geo_busyness.operations.alerts.channels import AlertConfig  # noqa: PLC0415
    from geo_busyness.serving import refresh  # noqa: PLC0415

    values = {
        refresh.ENV_COUNTS_STATE: counts_state,
        refresh.ENV_FOLLOW: follow,
        refresh.ENV_MODEL_VERSION: version,
        refresh.ENV_COUNTS_INTERVAL: str(poll_interval),
        refresh.ENV_FOLLOW_INTERVAL: str(poll_interval),
    }
    if alerts and AlertConfig.from_params(alerts).enabled:
        keys = AlertConfig.from_params(alerts).credentials_keys()
        named = {key: (credentials or {})[key] for key in keys if key in (credentials or {})}
        values[refresh.ENV_ALERTS] = json.dumps({"alerts": alerts, "credentials": named})
    return {name: value for name, value in values.items() if value}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment while the server runs (worker processes inherit them),
    the previous values back afterwards."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _counts_state_location(catalog: Any, project_path: Path) -> str | None:
    """The catalog's counts state (absolute when local); None without such an entry."""
    if COUNTS_STATE_DATASET not in catalog:
        return None
    location = _location(catalog.get(COUNTS_STATE_DATASET))
    if location is None or "://" in location or Path(location).is_absolute():
        return location
    return str(project_path / location)


def _project_server_arguments(
    project_path: Path,
    env: str | None,
    model: str | None,
    shadow: bool | None,
    *,
    counts_state: str | None = None,
    poll_interval: float = 30.0,
) -> tuple[list[str], dict[str, str]]:
    """``--model`` (the champion of the latest deployment record, unless ``model`` is given)
    and, in shadow mode, the challenger's arguments, from the project's catalog and registry;
    and the server's refresh environment: the catalog's counts state (unless
    ``counts_state`` is given), the champion alias to follow (unless an explicit ``model`` is
    not an alias URI), the served version and the project's alerts."""
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415
    from kedro.io import DatasetError  # noqa: PLC0415

    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env) as session:
        context = session.load_context()
        catalog = context.catalog  # also sets the MLflow tracking URI
        try:
            record = catalog.load(RECORD_DATASET)
        except DatasetError:
            record = None
        config_globals = context.config_loader["globals"]
        name, alias = registry_names(config_globals)
        name = (record or {}).get("model_name", name)
        label = model  # an explicit --model is logged under its location
        follow = model  # an explicit alias URI is followed; a directory or version is not
        if model is None:
            follow = f"models:/{name}@{alias}"
            model = champion_location(record, name, alias)
            if model.startswith("models:/"):
                _require_champion(name, alias)
                label = _alias_version(name, alias)
            else:
                label = str(record["model_version"])
        local = context.params["deployment"]["local"]
        wanted = local.get("shadow", False) if shadow is None else shadow
        shadowing = (
            _shadow_arguments(catalog, name, config_globals["aliases"], label) if wanted else []
        )
        if shadowing:
            shadowing += ["--shadow-queue", str(local.get("shadow_queue_size", 100))]
        environment = refresh_environment(
            counts_state=counts_state or _counts_state_location(catalog, project_path),
            follow=follow if _is_alias_uri(follow) else None,
            version=None if label == model else label,
            poll_interval=poll_interval,
            alerts=context.params.get("alerts"),
            credentials=_credentials(context),
        )
        if _ENV_FOLLOW in environment:  # worker processes reach the same registry
            environment.setdefault("MLFLOW_TRACKING_URI", _tracking_uri())
        return ["--model", model, *shadowing], environment


#: ``serving.refresh.ENV_FOLLOW``, named here: the CLI imports no serving module at start.
_ENV_FOLLOW = "GEO_BUSYNESS_FOLLOW"


def _is_alias_uri(location: str | None) -> bool:
    """Whether ``location`` is ``models:/NAME@ALIAS`` (a served alias is followed)."""
    from geo_busyness.serving.refresh import alias_of  # noqa: PLC0415 - serve commands only

    return alias_of(location) is not None


def _credentials(context: Any) -> dict[str, Any]:
    from geo_busyness.operations.alerts.channels import read_credentials  # noqa: PLC0415

    return read_credentials(context.config_loader)


def _tracking_uri() -> str:
    import mlflow  # noqa: PLC0415 - the session already imported it

    return mlflow.get_tracking_uri()


def _alias_version(name: str, alias: str) -> str | None:
    from geo_busyness.registry import alias_version  # noqa: PLC0415

    return alias_version(name, alias)


def _shadow_arguments(
    catalog: Any, name: str, aliases: dict[str, str], champion_version: str | None
) -> list[str]:
    """The server's shadow arguments: the challenger version and the local shadow log (none,
    with a message, when there is nothing to compare)."""
    challenger_version = _alias_version(name, aliases["challenger"])
    refusal = shadow_refusal(champion_version, challenger_version)
    if refusal:
        click.echo(f"Shadow mode off: {refusal}.")
        return []
    log = _location(catalog.get(SHADOW_LOG_DATASET))
    if log is None or "://" in log:
        raise click.ClickException(
            f"Shadow mode appends to a local file; the catalog's {SHADOW_LOG_DATASET} is {log}."
        )
    click.echo(f"Shadow mode: challenger version {challenger_version} answers too, logged to {log}")
    return [
        "--shadow-model",
        f"models:/{name}/{challenger_version}",
        "--shadow-log",
        log,
        "--model-version",
        champion_version or "",
        "--shadow-version",
        challenger_version,
    ]


def _require_champion(name: str, alias: str) -> None:
    """One line saying what to run first when the registry has no ``alias`` version yet."""
    from geo_busyness.registry import ModelNotFound, resolve_version  # noqa: PLC0415

    try:
        resolve_version(name, aliases=[alias])
    except ModelNotFound:
        raise click.ClickException(
            f"Nothing to serve: registered model {name!r} has no {alias!r} version yet. Run"
            " `kedro run` (trains and registers a challenger if it passes the gate), then"
            " `kedro run --pipelines deployment` (deploys it and makes it the champion), or"
            " pass --model DIR_OR_URI."
        ) from None


@click.group(name="geo-busyness")
def cli() -> None:
    """geo-busyness project commands."""


def _set_verbose(_context: click.Context, _option: click.Parameter, value: bool) -> bool:
    """Kedro's own switch: an ``ExplainedError`` prints its traceback first when set."""
    KedroCliError.VERBOSE_ERROR = value or traceback_requested()
    return value


#: ``--verbose/-v``: the full traceback of any error.
VERBOSE_OPTION = {
    "is_flag": True,
    "callback": _set_verbose,
    "help": f"Show the full traceback of an error (also: {TRACEBACK_VARIABLE}=1).",
}


def explains_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command callback with ``--verbose`` whose user errors print in one line
    (``errors.explained_errors``)."""

    @functools.wraps(command)
    def explained(*args: Any, verbose: bool, **kwargs: Any) -> Any:
        with explained_errors(verbose):
            return command(*args, **kwargs)

    return click.option("--verbose", "-v", **VERBOSE_OPTION)(explained)


def _run(pipeline: str | None, pipelines: list[str], verbose: bool, **options: Any) -> Any:
    """Kedro's ``run``, its pipeline names checked first, user errors in one line."""
    with explained_errors(verbose):
        check_pipeline_names([*pipelines, *([pipeline] if pipeline else [])])
        return kedro_run.callback(pipeline=pipeline, pipelines=pipelines, **options)


run = click.Command(
    name="run",
    callback=_run,
    params=[*kedro_run.params, click.Option(["--verbose", "-v"], **VERBOSE_OPTION)],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    context_settings=kedro_run.context_settings,
)
cli.add_command(run)


@cli.command()
@click.option("--model", default=None, help="Model dir or MLflow URI [default: current champion].")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--env", "-e", default=None, help="Kedro environment whose catalog holds the record.")
@click.option(
    "--shadow/--no-shadow",
    default=None,
    help="Also ask the registry's challenger every query (off the response path) and log both"
    " answers to the catalog's shadow_log [default: deployment.local.shadow; off with --model].",
)
@click.option(
    "--counts-state",
    default=None,
    envvar="GEO_BUSYNESS_COUNTS_STATE",
    help="Counts state (path or s3:// URI) the server applies and follows as it is"
    " republished [default: the catalog's counts_state; none with --model].",
)
@click.option(
    "--poll-interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between looks at the counts state and at the champion alias.",
)
@click.pass_obj
@explains_errors
def serve(  # noqa: PLR0917 - click passes options positionally
    metadata: Any,
    model: str | None,
    host: str,
    port: int,
    workers: int,
    env: str | None,
    shadow: bool | None,
    counts_state: str | None,
    poll_interval: float,
):
    """Serve the current champion on http://HOST:PORT (GET /ping, POST /invocations)."""
    from geo_busyness.serving.threads import single_threaded_math  # noqa: PLC0415

    single_threaded_math()  # before the session imports MLflow and its math libraries
    from geo_busyness.serving.__main__ import serve as run_server  # noqa: PLC0415

    if model is None or shadow:
        project_path = Path(getattr(metadata, "project_path", Path.cwd()))
        arguments, environment = _project_server_arguments(
            project_path,
            env,
            model,
            shadow,
            counts_state=counts_state,
            poll_interval=poll_interval,
        )
    else:  # no Kedro session (whose hook bounds remote calls): bound them here
        from geo_busyness.remote import prepare_model_fetch  # noqa: PLC0415

        prepare_model_fetch(model)
        arguments = ["--model", model]
        environment = refresh_environment(
            counts_state=counts_state,
            follow=model if _is_alias_uri(model) else None,
            version=None,
            poll_interval=poll_interval,
        )
    click.echo(f"Serving {arguments[1]} on http://{host}:{port}")
    for name, value in sorted(environment.items()):
        if name.endswith(("COUNTS_STATE", "FOLLOW", "MODEL_VERSION")):
            click.echo(f"  {name}={redact(value)}")
    with _environment(environment):
        run_server([*arguments, "--host", host, "--port", str(port), "--workers", str(workers)])


@cli.command()
@click.option(
    "--force", is_flag=True, default=None, help="Retrain even if monitoring sees no reason."
)
@click.option(
    "--target",
    type=click.Choice(["local", "sagemaker"]),
    default=None,
    help="Where to deploy a promoted challenger [default: retraining.deployment_target].",
)
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.option(
    "--params", type=click.UNPROCESSED, default="", help=PARAMS_ARG_HELP, callback=_split_params
)
@click.pass_obj
@explains_errors
def retrain(  # noqa: PLR0917 - click passes options positionally
    metadata: Any, force: bool | None, target: str | None, env: str | None, params: dict[str, Any]
) -> None:
    """Monitoring -> retrain if recommended (or --force) -> gates, the champion included ->
    deploy -> record. One job at a time; a failed step leaves the champion serving. ``--params``
    reach every step, as in ``kedro run`` (e.g. the SageMaker settings of the deployment)."""
    from geo_busyness.operations.job import (  # noqa: PLC0415
        RetrainingFailed,
        RetrainingJob,
        RetrainingLocked,
    )
    from geo_busyness.operations.run_summary import retraining_summary  # noqa: PLC0415

    project_path = Path(getattr(metadata, "project_path", Path.cwd()))
    try:
        job = RetrainingJob(project_path, env=env, runtime_params=params)
        record = job.run(force=force, target=target)
    except RetrainingFailed as error:
        click.echo(retraining_summary(error.record))  # the steps up to the failure
        raise click.ClickException(str(error)) from None
    except RetrainingLocked as error:
        raise click.ClickException(str(error)) from None
    click.echo(retraining_summary(record))


#: The input data_generation stands in for, and the dataset it writes in its place.
RAW_INPUT, GENERATED_INPUT = "raw_events", "generated_events"
GENERATION_PIPELINE = "data_generation"


def _location(dataset: Any) -> str | None:
    described = dataset._describe() if hasattr(dataset, "_describe") else {}
    path = described.get("filepath")
    protocol = described.get("protocol") or "file"
    if path is None:
        return None
    return str(path) if protocol in ("file", "local") else f"{protocol}://{path}"


def generation_decision(catalog: Any) -> tuple[bool, str]:
    """Whether to generate the synthetic city, and why (given the project's catalog).

    Never when ``raw_events`` exists, wherever it points; and never when it points somewhere
    data_generation does not write (generating would not give it any data).
    """
    raw = catalog.get(RAW_INPUT)
    where = _location(raw) or RAW_INPUT
    if raw.exists():
        return False, f"raw_events exists at {where}: using it, nothing generated."
    generated = _location(catalog.get(GENERATED_INPUT))
    if generated != _location(raw):
        raise click.ClickException(
            f"raw_events points at {where}, which does not exist; data_generation writes"
            f" {generated} only. Put your file at {where}, or point raw_events at {generated}"
            " to use synthetic data."
        )
    return True, f"raw_events does not exist at {where}: generating the synthetic city there."


@cli.command(name="generate-data")
@click.option("--env", "-e", default=None, help="Kedro environment.")
@click.pass_obj
@explains_errors
def generate_data(metadata: Any, env: str | None) -> None:
    """Run data_generation only if the catalog's raw_events do not exist (make data/run).

    A failed generation removes the files it wrote: a synthetic history left behind would be
    taken for raw_events by the next call (and trained on beside the user's recent file)."""
    from kedro.framework.project import pipelines  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415
    from kedro.runner import SequentialRunner  # noqa: PLC0415

    from geo_busyness.pipelines.data_generation.cleanup import (  # noqa: PLC0415
        file_states,
        remove_written,
    )

    project_path = Path(getattr(metadata, "project_path", Path.cwd()))
    bootstrap_project(project_path)
    with KedroSession.create(project_path=project_path, env=env) as session:
        catalog = session.load_context().catalog
        generate, why = generation_decision(catalog)
        click.echo(why)
        if not generate:
            return
        before = file_states(catalog, pipelines[GENERATION_PIPELINE].all_outputs())
        try:
            # A runner instance, as `kedro run` passes one: kedro-viz's hook warns on a run
            # whose recorded runner is not a SequentialRunner instance.
            session.run(pipeline_names=[GENERATION_PIPELINE], runner=SequentialRunner())
        except BaseException:
            removed = remove_written(catalog, before)
            if removed:
                click.echo(f"Generation failed; removed what it wrote: {', '.join(removed)}")
            raise

"""The project CLI: ``kedro serve`` exists, picks the champion, ``run`` still works, and a
user's mistake is one line (the real ``kedro`` in a subprocess: tests/test_cli_errors.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from kedro.config import OmegaConfigLoader
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import KedroCliError, find_run_command

from geo_busyness.cli import champion_location, cli, registry_names, run, shadow_refusal
from geo_busyness.pipeline_registry import pipeline_names
from geo_busyness.testing import PROJECT_ROOT, use_own_mlflow_store
from tests.conftest import inside, make_project_copy

#: The registered model name and champion alias, as `kedro serve` reads them (conf globals).
NAMES = registry_names(OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base")["globals"])


def test_serve_command_is_registered():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--model" in result.output


def test_python_m_geo_busyness_still_finds_kedro_run():
    assert find_run_command("geo_busyness").name == "run"


def test_run_is_kedros_run_with_verbose():
    """The project's `run` (Kedro's "add or modify CLI commands" use case) keeps every option
    of Kedro's own and adds --verbose; `python -m geo_busyness` takes it too."""
    ours = {name for param in run.params for name in param.opts}
    kedros = {name for param in kedro_run.params for name in param.opts}
    assert ours == kedros | {"--verbose", "-v"}
    assert find_run_command("geo_busyness") is run
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert "GEO_BUSYNESS_TRACEBACK=1" in result.output


def test_an_unknown_pipeline_is_one_line_naming_the_closest():
    """Issue #26: `kedro run --pipelines modelling` was a 110-line ImportError."""
    result = CliRunner().invoke(cli, ["run", "--pipelines", "modelling"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: Unknown pipeline 'modelling' (did you mean 'modeling'?); the pipelines are"
        f" {', '.join(pipeline_names())}."
    ]


def test_verbose_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(KedroCliError, "VERBOSE_ERROR", False)  # --verbose sets it: restored after
    result = CliRunner().invoke(cli, ["run", "--pipelines", "modelling", "--verbose"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.output
    assert result.output.rstrip().endswith("shadow.")


def test_champion_location(tmp_path):
    record = {
        "target": "local",
        "model_name": "geo-busyness",
        "deployment": {"model_dir": str(tmp_path)},
    }
    assert champion_location(record, *NAMES) == str(tmp_path)
    assert (
        champion_location({**record, "target": "sagemaker"}, *NAMES)
        == "models:/geo-busyness@champion"
    )
    gone = {**record, "deployment": {"model_dir": str(tmp_path / "gone")}}
    assert champion_location(gone, *NAMES) == "models:/geo-busyness@champion"
    assert champion_location(None, *NAMES) == "models:/geo-busyness@champion"


@pytest.mark.slow
def test_serve_before_any_deployment_says_what_to_run_first(tmp_path):
    """Issue #15 item 15: `kedro serve` before any deployment ended in a long traceback."""
    project = make_project_copy(tmp_path / "project")
    use_own_mlflow_store(project)
    with inside(project):
        result = CliRunner().invoke(cli, ["serve"], obj=SimpleNamespace(project_path=project))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "kedro run --pipelines deployment" in result.output
    assert "champion" in result.output


def test_serving_an_unknown_registry_uri_fails_in_one_line(monkeypatch, tmp_path):
    from geo_busyness.serving import __main__ as serving_main  # noqa: PLC0415 - sets thread env

    def missing(location, dst=None):
        raise RuntimeError("version 7 not found\nlong MLflow detail")

    monkeypatch.setattr("geo_busyness.model.loading.fetch_model", missing)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(SystemExit) as stopped:
        serving_main.serve(["--model", "models:/geo-busyness/7"])
    assert str(stopped.value).count("\n") == 0
    assert "version 7 not found" in str(stopped.value)
    # An alias is pinned to its version first (the server then follows it): one line too.
    with pytest.raises(SystemExit) as stopped:
        serving_main.serve(["--model", "models:/geo-busyness@champion"])
    assert str(stopped.value) == "No version of 'geo-busyness' carries the alias 'champion'."


# ---------------------------------------------------------------- issue #17 item 6: shadow mode


def test_shadow_refusal():
    assert shadow_refusal("3", "4") is None
    assert "no challenger" in shadow_refusal("3", None)
    assert "is the champion (version 3)" in shadow_refusal("3", "3")


def _register_versions(project, aliases: dict[str, str]) -> None:
    """Register the small test model twice (versions 1 and 2) and set ``aliases``."""
    import mlflow  # noqa: PLC0415
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    from geo_busyness.model.loading import DIGEST_TAG, artifact_digest  # noqa: PLC0415
    from geo_busyness.testing import tracking_uri  # noqa: PLC0415
    from tests.serving.model_fixture import fit_model, save_model  # noqa: PLC0415

    model_dir = save_model(fit_model(), project / "saved_model")
    digest = {DIGEST_TAG: artifact_digest(model_dir)}  # registration's second phase
    with inside(project):
        mlflow.set_tracking_uri(tracking_uri(project))
        try:
            mlflow.set_experiment("cli-tests")
            client = MlflowClient()
            client.create_registered_model(NAMES[0])
            for _ in range(2):
                with mlflow.start_run() as run:
                    mlflow.log_artifacts(str(model_dir), artifact_path="model")
                client.create_model_version(
                    NAMES[0], f"runs:/{run.info.run_id}/model", run.info.run_id, tags=digest
                )
            for alias, version in aliases.items():
                client.set_registered_model_alias(NAMES[0], alias, version)
        finally:
            mlflow.set_tracking_uri(None)


def _serve(tmp_path, monkeypatch, aliases: dict[str, str], *commands: list[str]):
    """``kedro serve`` with each of ``commands`` in a project whose registry has ``aliases``:
    the CLI results, and the arguments each handed to the server (which is not started)."""
    from geo_busyness.serving import __main__ as serving_main  # noqa: PLC0415

    project = make_project_copy(tmp_path / "project")
    _register_versions(project, aliases)
    calls = []
    monkeypatch.setattr(serving_main, "serve", calls.append)
    with inside(project):
        results = [
            CliRunner().invoke(cli, command, obj=SimpleNamespace(project_path=project))
            for command in commands
        ]
    for result in results:
        assert result.exit_code == 0, result.output
    return results, calls


@pytest.mark.slow  # a real KedroSession and MLflow registry
def test_serve_shadow_passes_the_challenger_and_the_catalogs_shadow_log(tmp_path, monkeypatch):
    (result, _), (arguments, plain) = _serve(
        tmp_path,
        monkeypatch,
        {"champion": "1", "challenger": "2"},
        ["serve", "--shadow"],
        ["serve", "--model", "some/dir"],
    )
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert options["--model"] == "models:/geo-busyness@champion"
    assert options["--shadow-model"] == "models:/geo-busyness/2"
    assert (options["--model-version"], options["--shadow-version"]) == ("1", "2")
    assert options["--shadow-log"].endswith("data/07_model_output/shadow/shadow_predictions.jsonl")
    assert options["--shadow-queue"] == "100"
    assert "Shadow mode: challenger version 2" in result.output
    assert "--shadow-model" not in plain  # shadow mode is asked for, or set in parameters


@pytest.mark.slow  # a real KedroSession and MLflow registry
def test_serve_shadow_with_the_champion_as_challenger_serves_without_shadow(tmp_path, monkeypatch):
    (result,), calls = _serve(
        tmp_path, monkeypatch, {"champion": "2", "challenger": "2"}, ["serve", "--shadow"]
    )
    assert "Shadow mode off: the challenger is the champion (version 2)" in result.output
    assert "--shadow-model" not in calls[0]

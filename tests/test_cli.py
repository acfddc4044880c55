"""The project CLI: ``kedro serve`` exists, picks the champion, and ``run`` still works."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from kedro.config import OmegaConfigLoader
from kedro.framework.cli.utils import find_run_command

from geo_busyness.cli import champion_location, cli, registry_names
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
        raise RuntimeError("alias champion not found\nlong MLflow detail")

    monkeypatch.setattr("geo_busyness.model.loading.fetch_model", missing)
    with pytest.raises(SystemExit) as stopped:
        serving_main.serve(["--model", "models:/geo-busyness@champion"])
    assert str(stopped.value).count("\n") == 0
    assert "alias champion not found" in str(stopped.value)

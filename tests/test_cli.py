"""The project CLI: ``kedro serve`` exists, picks the champion, and ``run`` still works."""

from __future__ import annotations

from click.testing import CliRunner
from kedro.config import OmegaConfigLoader
from kedro.framework.cli.utils import find_run_command

from geo_busyness.cli import champion_location, cli, registry_names
from geo_busyness.testing import PROJECT_ROOT

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

"""settings.py: one package holds every hook, the parameter check first; `--params a.b=c`
merges key by key."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

from geo_busyness import hooks, settings
from geo_busyness.testing import PROJECT_ROOT

#: What `kedro run --params feature_engineering.h3_resolution=8` passes to the config loader.
RUNTIME = OmegaConf.to_container(OmegaConf.from_dotlist(["feature_engineering.h3_resolution=8"]))


def _conf_with_local_parameters(tmp_path: Path) -> Path:
    """The project's conf/base plus a `local` env holding a parameters file (the pitfall's
    trigger: an environment with parameters of its own)."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / "parameters.yml").write_text(
        yaml.safe_dump({"reporting": {"max_scatter_points": 100}})
    )
    return conf


def _parameters(conf: Path, loader_args: dict[str, Any]) -> dict[str, Any]:
    loader = OmegaConfigLoader(
        conf_source=str(conf), env="local", runtime_params=RUNTIME, **loader_args
    )
    return loader["parameters"]


def test_a_runtime_param_leaves_the_other_keys_of_its_block_in_place(tmp_path: Path) -> None:
    conf = _conf_with_local_parameters(tmp_path)
    base = yaml.safe_load((conf / "base" / "parameters_feature_engineering.yml").read_text())
    params = _parameters(conf, settings.CONFIG_LOADER_ARGS)
    assert params["feature_engineering"] == {**base["feature_engineering"], "h3_resolution": 8}
    assert params["reporting"]["max_scatter_points"] == 100  # the env's own value wins
    assert params["reporting"]["random_state"] == 42  # base keys stay


def test_without_the_soft_merge_the_block_would_be_replaced(tmp_path: Path) -> None:
    """The pitfall the setting guards against, so the test above means something."""
    conf = _conf_with_local_parameters(tmp_path)
    destructive = {k: v for k, v in settings.CONFIG_LOADER_ARGS.items() if k != "merge_strategy"}
    params = _parameters(conf, destructive)
    assert params["feature_engineering"] == {"h3_resolution": 8}


@pytest.mark.parametrize("name", ["HOOKS"])
def test_every_registered_hook_comes_from_the_hooks_package(name: str) -> None:
    """One module per concern under hooks/; the package exports exactly what settings registers."""
    registered = getattr(settings, name)
    assert {type(hook).__module__.rpartition(".")[0] for hook in registered} == {hooks.__name__}
    assert sorted(hooks.__all__) == sorted(type(hook).__name__ for hook in registered)
    assert {type(hook).__name__ for hook in registered} == {
        "TrackingServerHook",
        "StorageErrorHook",
        "MemoryBudgetHook",
        "RunSummaryHook",
        "SparkHooks",
        "AlertHook",
        "ParameterCheckHook",
        "ProjectPathsHook",
    }


def test_parameters_are_checked_first():
    """Hooks run last-registered first: paths are made absolute from the project first (it
    only rewrites path strings), then the check precedes every other tryfirst hook that reads
    parameters at context creation (AlertHook's typo check would raise a ValueError)."""
    last = [type(hook).__name__ for hook in settings.HOOKS[-2:]]
    assert last == ["ParameterCheckHook", "ProjectPathsHook"]


def test_kedros_no_typed_parameters_line_is_dropped(caplog):
    """No node takes a typed parameter model (the schema checks every block instead): Kedro's
    validator said so on every run."""
    from kedro.validation.parameter_validator import ParameterValidator  # noqa: PLC0415

    caplog.set_level(logging.INFO, logger="kedro.validation.parameter_validator")
    assert ParameterValidator({}).validate_raw_params({"a": 1}) == {"a": 1}
    assert not [r for r in caplog.records if "typed parameter" in r.getMessage()]

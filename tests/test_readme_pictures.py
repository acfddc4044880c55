"""The README's pipeline pictures are drawn from the pipelines as they are, not as they were."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from geo_busyness.testing import PROJECT_ROOT


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_pipeline_flow", PROJECT_ROOT / "docs" / "make_pipeline_flow.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def pipelines(script: ModuleType) -> dict:
    return script.registered_pipelines()


@pytest.mark.slow  # imports every pipeline (pandera, pyspark): seconds
def test_the_readme_shows_every_node_of_todays_pipelines_and_no_other(
    script: ModuleType, pipelines: dict
) -> None:
    text = (PROJECT_ROOT / "README.md").read_text()
    assert script.replaced(text, script.block(pipelines)) == text, (
        "README.md's pipeline pictures are stale: uv run python docs/make_pipeline_flow.py"
    )
    shown = text[text.index(script.START) : text.index(script.END)]
    for node in pipelines["__default__"].nodes:
        assert f'["{node.name.split(".")[-1]}"]' in shown


@pytest.mark.slow
def test_a_node_that_no_longer_exists_makes_the_pictures_stale(
    script: ModuleType, pipelines: dict
) -> None:
    default = pipelines["__default__"]
    gone = default.nodes[-1].name
    fewer = {**pipelines, "__default__": default.only_nodes(*[n.name for n in default.nodes[:-1]])}
    text = (PROJECT_ROOT / "README.md").read_text()
    assert script.replaced(text, script.block(fewer)) != text
    assert f'["{gone.split(".")[-1]}"]' not in script.training_flow(fewer["__default__"])


@pytest.mark.slow
def test_every_pipeline_is_a_box_in_the_map(script: ModuleType, pipelines: dict) -> None:
    drawn = script.pipeline_map(pipelines)
    for name in pipelines:
        if name != "__default__":
            assert f"  {name}([{name}])" in drawn
    assert "data_processing -- clean_events" in drawn

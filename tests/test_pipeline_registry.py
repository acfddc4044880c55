"""The registry: every pipeline can be combined with any other in one `kedro run --pipelines`."""

from __future__ import annotations

from collections import Counter

from kedro.framework.project import configure_project
from kedro.pipeline import Pipeline

from geo_busyness.pipeline_registry import NOT_IN_DEFAULT, register_pipelines


def test_node_names_are_unique_across_pipelines():
    """Kedro refuses to add pipelines sharing a node name (`--pipelines a,b` would fail)."""
    configure_project("geo_busyness")
    pipelines = {k: v for k, v in register_pipelines().items() if k != "__default__"}
    counts = Counter(node.name for pipe in pipelines.values() for node in pipe.nodes)
    assert [name for name, n in counts.items() if n > 1] == []
    assert sum(pipelines.values(), Pipeline([])).nodes  # the sum itself succeeds


def test_default_is_the_training_job():
    configure_project("geo_busyness")
    pipelines = register_pipelines()
    default = {node.name for node in pipelines["__default__"].nodes}
    for name, pipe in pipelines.items():
        names = {node.name for node in pipe.nodes}
        if name in NOT_IN_DEFAULT:
            assert not names & default, name
        elif name != "__default__":
            assert names <= default, name

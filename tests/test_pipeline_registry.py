"""The registry: every pipeline can be combined with any other in one `kedro run --pipelines`;
an unknown name is refused in one line."""

from __future__ import annotations

from collections import Counter

import pytest
from kedro.framework.project import configure_project
from kedro.pipeline import Pipeline

from geo_busyness.pipeline_registry import (
    NOT_IN_DEFAULT,
    UnknownPipelineError,
    check_pipeline_names,
    pipeline_names,
    register_pipelines,
)

#: The training job again on other raw input: it repeats the training nodes by design.
VARIANTS = ("__default__", "retraining")


def test_node_names_are_unique_across_pipelines():
    """Kedro refuses to add pipelines sharing a node name (`--pipelines a,b` would fail)."""
    configure_project("geo_busyness")
    pipelines = {k: v for k, v in register_pipelines().items() if k not in VARIANTS}
    counts = Counter(node.name for pipe in pipelines.values() for node in pipe.nodes)
    assert [name for name, n in counts.items() if n > 1] == []
    assert sum(pipelines.values(), Pipeline([])).nodes  # the sum itself succeeds


def test_default_is_the_training_job():
    configure_project("geo_busyness")
    pipelines = register_pipelines()
    default = {node.name for node in pipelines["__default__"].nodes}
    for name, pipe in pipelines.items():
        names = {node.name for node in pipe.nodes}
        if name == "retraining":
            assert names == default | {"combine_event_batches"}
        elif name in NOT_IN_DEFAULT:
            assert not names & default, name
        elif name != "__default__":
            assert names <= default, name


def test_retraining_feeds_the_training_job_the_history_plus_the_recent_batch():
    configure_project("geo_busyness")
    retraining = register_pipelines()["retraining"]
    assert retraining.inputs() >= {"raw_events", "recent_raw_events"}
    readers = {node.name for node in retraining.nodes if "raw_events" in node.inputs}
    assert readers == {"combine_event_batches"}  # data_processing reads the combined table
    assert {"evaluation_report", "busyness_model"} <= retraining.all_outputs()


def test_pipeline_names_are_the_registered_ones_without_importing_them():
    configure_project("geo_busyness")
    assert pipeline_names() == sorted(register_pipelines())


def test_an_unknown_pipeline_is_one_line_with_the_names_and_the_closest():
    """Issue #26: `--pipelines modelling` was a 110-line ImportError from find_pipelines."""
    with pytest.raises(UnknownPipelineError) as raised:
        check_pipeline_names(["modeling", "modelling"])
    message = raised.value.message
    assert message.startswith("Unknown pipeline 'modelling' (did you mean 'modeling'?); ")
    assert message.endswith(f"the pipelines are {', '.join(pipeline_names())}.")
    assert "\n" not in message
    check_pipeline_names(["__default__", "modeling", "inference"])  # known names pass

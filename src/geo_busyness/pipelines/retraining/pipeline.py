"""raw history + recent batch -> data_processing -> feature_engineering -> modeling (the
challenger, gated against the baselines and the serving champion) -> reporting."""

from collections.abc import Callable

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines import data_processing, feature_engineering, modeling, reporting

from .nodes import combine_event_batches


def create_pipeline(**kwargs) -> Pipeline:
    """The training job with ``raw_events`` replaced by the history plus the recent batch.

    Every other dataset keeps its name, so a retrain writes the same catalog entries as
    ``kedro run`` (the latest training's outputs) and registers through the same gate.
    """
    return retraining_pipeline(
        combine_event_batches,
        "recent_raw_events",
        data_processing.create_pipeline() + feature_engineering.create_pipeline(),
    )


def retraining_pipeline(combine: Callable, recent: str, processing: Pipeline) -> Pipeline:
    """``combine`` (history, ``recent``) -> ``processing`` (data_processing and
    feature_engineering, on either engine) -> modeling -> reporting."""
    training = processing + modeling.create_pipeline() + reporting.create_pipeline()
    return Pipeline(
        [
            Node(
                combine,
                ["raw_events", recent],
                "retraining_raw_events",
                name="combine_event_batches",
            ),
            pipeline(training, inputs={"raw_events": "retraining_raw_events"}),
        ],
        tags="retraining",
    )

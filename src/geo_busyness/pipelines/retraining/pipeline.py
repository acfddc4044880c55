"""raw history + recent batch (+ the ingested batches) -> data_processing ->
feature_engineering -> modeling (the challenger, gated against the baselines and the serving
champion) -> reporting."""

from collections.abc import Callable, Sequence

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines import data_processing, feature_engineering, modeling, reporting

from .nodes import combine_with_ingested

#: What the pandas retraining reads besides the two raw batches: the ingested history.
INGESTED = ("ingested_event_history", "params:data_processing")


def create_pipeline(**kwargs) -> Pipeline:
    """The training job with ``raw_events`` replaced by the history plus the recent batch and
    every ingested batch (``combine_with_ingested``).

    Every other dataset keeps its name, so a retrain writes the same catalog entries as
    ``kedro run`` (the latest training's outputs) and registers through the same gate.
    """
    return retraining_pipeline(
        combine_with_ingested,
        "recent_raw_events",
        data_processing.create_pipeline() + feature_engineering.create_pipeline(),
        INGESTED,
    )


def retraining_pipeline(
    combine: Callable, recent: str, processing: Pipeline, extra: Sequence[str] = ()
) -> Pipeline:
    """``combine`` (history, ``recent``, ``extra``...) -> ``processing`` (data_processing and
    feature_engineering, on either engine) -> modeling -> reporting."""
    training = processing + modeling.create_pipeline() + reporting.create_pipeline()
    return Pipeline(
        [
            Node(
                combine,
                ["raw_events", recent, *extra],
                "retraining_raw_events",
                name="combine_event_batches",
            ),
            pipeline(training, inputs={"raw_events": "retraining_raw_events"}),
        ],
        tags="retraining",
    )

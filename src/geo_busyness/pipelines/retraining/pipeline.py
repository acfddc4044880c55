"""raw history + recent batch -> data_processing -> feature_engineering -> modeling (the
challenger, gated against the baselines and the serving champion) -> reporting."""

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines import data_processing, feature_engineering, modeling, reporting

from .nodes import combine_event_batches


def create_pipeline(**kwargs) -> Pipeline:
    """The training job with ``raw_events`` replaced by the history plus the recent batch.

    Every other dataset keeps its name, so a retrain writes the same catalog entries as
    ``kedro run`` (the latest training's outputs) and registers through the same gate.
    """
    training = (
        data_processing.create_pipeline()
        + feature_engineering.create_pipeline()
        + modeling.create_pipeline()
        + reporting.create_pipeline()
    )
    return Pipeline(
        [
            Node(
                combine_event_batches,
                ["raw_events", "recent_raw_events"],
                "retraining_raw_events",
                name="combine_event_batches",
            ),
            pipeline(training, inputs={"raw_events": "retraining_raw_events"}),
        ],
        tags="retraining",
    )

"""Writes synthetic raw events (and the labels of the faults injected into them), and a recent
window after them with query rows for batch inference."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_events, generate_recent_events


def create_pipeline(**kwargs) -> Pipeline:
    """The history (raw events, fault labels, summary); the recent window and its queries."""
    return Pipeline(
        [
            Node(
                func=generate_events,
                inputs="params:data_generation",
                outputs=["raw_events", "raw_fault_labels", "raw_generation_summary"],
                name="generate_events",
            ),
            Node(
                func=generate_recent_events,
                inputs=["params:data_generation", "params:data_processing.source_timezone"],
                outputs=["recent_raw_events", "inference_queries"],
                name="generate_recent_events",
            ),
        ],
        tags="data_generation",
    )

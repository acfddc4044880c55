"""Writes synthetic raw events (and the labels of the faults injected into them), and a recent
window after them with query rows for batch inference.

Its outputs have their own names (``generated_*``), never the inputs' (``raw_events``...): by
default they are the same files, so a fresh clone runs end to end, but pointing ``raw_events``
at your data never makes generation write there, and a generated dataset refuses to overwrite
a file it did not write."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_events, generate_recent_events


def create_pipeline(**kwargs) -> Pipeline:
    """The history (raw events, fault labels, summary); the recent window and its queries."""
    return Pipeline(
        [
            Node(
                func=generate_events,
                inputs="params:data_generation",
                outputs=["generated_events", "generated_fault_labels", "generated_summary"],
                name="generate_events",
            ),
            Node(
                func=generate_recent_events,
                inputs=["params:data_generation", "params:data_processing.source_timezone"],
                outputs=["generated_recent_events", "generated_inference_queries"],
                name="generate_recent_events",
            ),
        ],
        tags="data_generation",
    )

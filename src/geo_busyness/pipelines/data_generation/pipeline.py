"""Writes synthetic raw events (and the labels of the faults injected into them)."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_events


def create_pipeline(**kwargs) -> Pipeline:
    """One node: parameters in, raw events, fault labels and a summary out."""
    return Pipeline(
        [
            Node(
                func=generate_events,
                inputs="params:data_generation",
                outputs=["raw_events", "raw_fault_labels", "raw_generation_summary"],
                name="generate_events",
            )
        ],
        tags="data_generation",
    )

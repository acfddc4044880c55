"""data_processing on Spark: raw_events -> canonical_events -> service area -> labelled events
(written once) -> repeated orders -> quarantine, then the gate and clean_events. Selected by the
`spark` environment (``geo_busyness.spark_pipeline_registry``)."""

from kedro.pipeline import Node, Pipeline

from .spark_nodes import (
    enforce_rejected_share,
    find_duplicate_orders,
    map_to_canonical,
    quarantine_rejected,
    service_area,
    split_clean_and_rejected,
)


def create_pipeline(**kwargs) -> Pipeline:
    """The pandas pipeline's datasets and node names, with the labelled table in between."""
    return Pipeline(
        [
            Node(
                func=map_to_canonical,
                inputs=["raw_events", "params:data_processing.column_mapping"],
                outputs="canonical_events",
                name="map_to_canonical",
            ),
            Node(
                func=service_area,
                inputs=["canonical_events", "params:data_processing"],
                outputs="service_area",
                name="resolve_service_area",
            ),
            Node(
                func=split_clean_and_rejected,
                inputs=["canonical_events", "params:data_processing", "service_area"],
                outputs="clean_event_candidates",
                name="split_clean_and_rejected",
            ),
            Node(
                func=find_duplicate_orders,
                inputs="clean_event_candidates",
                outputs="repeated_orders",
                name="find_duplicate_orders",
            ),
            Node(
                func=quarantine_rejected,
                inputs=["clean_event_candidates", "repeated_orders"],
                outputs="rejected_events",
                name="quarantine_rejected",
            ),
            Node(
                func=enforce_rejected_share,
                inputs=[
                    "clean_event_candidates",
                    "repeated_orders",
                    "rejected_events",
                    "params:data_processing.max_rejected_fraction",
                    "service_area",
                ],
                outputs=["clean_events", "data_quality_report"],
                name="enforce_rejected_share",
            ),
        ],
        tags=["data_processing", "spark"],
    )

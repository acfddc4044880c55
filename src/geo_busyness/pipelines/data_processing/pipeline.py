"""raw_events -> canonical_events -> clean_events, with rejected rows quarantined."""

from kedro.pipeline import Node, Pipeline

from .nodes import enforce_rejected_share, map_to_canonical, service_area, split_clean_and_rejected


def create_pipeline(**kwargs) -> Pipeline:
    """Map onto the canonical schema (validated, held in memory), find the service area (the
    configured one, else learned from the events), clean with a quarantine, then gate on the
    rejected share (after the quarantine is saved); the report records the area."""
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
                outputs=["clean_event_candidates", "rejected_events"],
                name="split_clean_and_rejected",
            ),
            Node(
                func=enforce_rejected_share,
                inputs=[
                    "clean_event_candidates",
                    "rejected_events",
                    "params:data_processing.max_rejected_fraction",
                    "service_area",
                ],
                outputs=["clean_events", "data_quality_report"],
                name="enforce_rejected_share",
            ),
        ],
        tags="data_processing",
    )

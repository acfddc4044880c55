"""raw_events -> canonical_events -> clean_events, with rejected rows quarantined."""

from kedro.pipeline import Node, Pipeline

from .nodes import enforce_rejected_share, map_and_clean


def create_pipeline(**kwargs) -> Pipeline:
    """Map and clean (one read of the raw table), then gate on the rejected share (after the
    quarantine is saved)."""
    return Pipeline(
        [
            Node(
                func=map_and_clean,
                inputs=["raw_events", "params:data_processing"],
                outputs=["canonical_events", "clean_event_candidates", "rejected_events"],
                name="map_and_clean",
            ),
            Node(
                func=enforce_rejected_share,
                inputs=[
                    "clean_event_candidates",
                    "rejected_events",
                    "params:data_processing.max_rejected_fraction",
                ],
                outputs=["clean_events", "data_quality_report"],
                name="enforce_rejected_share",
            ),
        ],
        tags="data_processing",
    )

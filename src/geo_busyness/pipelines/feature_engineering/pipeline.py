"""clean_events -> time windows, cell-hour counts and event summaries -> per-cell statistics,
the dense count history and panels."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_count_history,
    build_panels,
    fit_busyness_features,
    fit_reference_features,
    window_and_summarise_events,
)

#: The node that reads the events (the Spark engine's pipeline replaces it, and only it).
SUMMARY_NODE = "window_and_summarise_events"


def summary_node(func=window_and_summarise_events) -> Node:
    """Windows, counts and the two event summaries from clean_events (``func``: either engine's)."""
    return Node(
        func,
        ["clean_events", "params:feature_engineering", "params:data_processing.source_timezone"],
        ["time_windows", "cell_hour_counts", "train_event_summary", "event_summary"],
        name=SUMMARY_NODE,
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Windows, counts and summaries (one read of clean_events), cell statistics on train (and
    on all events for the leaky reference protocol), history, panels."""
    return Pipeline(
        [
            summary_node(),
            Node(
                fit_busyness_features,
                ["train_event_summary", "params:feature_engineering"],
                "busyness_features",
                name="fit_busyness_features",
            ),
            Node(
                fit_reference_features,
                ["event_summary", "params:feature_engineering"],
                "leaky_reference_features",
                name="fit_reference_features",
            ),
            Node(
                build_count_history,
                [
                    "cell_hour_counts",
                    "busyness_features",
                    "time_windows",
                    "params:data_processing.source_timezone",
                ],
                "count_history",
                name="build_count_history",
            ),
            Node(
                build_panels,
                ["cell_hour_counts", "busyness_features", "time_windows"],
                ["train_panel", "validation_panel", "test_panel", "feature_engineering_report"],
                name="build_panels",
            ),
        ],
        tags="feature_engineering",
    )

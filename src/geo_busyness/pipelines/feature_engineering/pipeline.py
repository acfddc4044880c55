"""clean_events -> time windows -> cell-hour counts -> the dense count history, panels, cell statistics."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_count_history,
    build_panels,
    fit_busyness_features,
    window_and_count_events,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Windows and counts (one read of clean_events), cell statistics on train, history, panels."""
    return Pipeline(
        [
            Node(
                window_and_count_events,
                [
                    "clean_events",
                    "params:feature_engineering",
                    "params:data_processing.source_timezone",
                ],
                [
                    "time_windows",
                    "train_events",
                    "validation_events",
                    "test_events",
                    "cell_hour_counts",
                ],
                name="window_and_count_events",
            ),
            Node(
                fit_busyness_features,
                ["train_events", "time_windows", "params:feature_engineering"],
                "busyness_features",
                name="fit_busyness_features",
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

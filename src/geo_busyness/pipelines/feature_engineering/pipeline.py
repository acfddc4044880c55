"""clean_events -> time windows -> dense cell x hour panels -> model-input tables + transformer."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_panels,
    extend_known_history,
    fit_busyness_features,
    make_model_input,
    window_and_count_events,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Windows and counts (one read of clean_events), fit on train, panels, then features."""
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
                "busyness_features_train",
                name="fit_busyness_features",
            ),
            Node(
                extend_known_history,
                ["busyness_features_train", "validation_events", "time_windows"],
                "busyness_features",
                name="extend_known_history",
            ),
            Node(
                build_panels,
                ["cell_hour_counts", "busyness_features_train", "time_windows"],
                ["train_panel", "validation_panel", "test_panel", "feature_engineering_report"],
                name="build_panels",
            ),
            Node(
                make_model_input,
                ["train_panel", "busyness_features_train"],
                "model_input_train",
                name="make_model_input_train",
            ),
            Node(
                make_model_input,
                ["validation_panel", "busyness_features_train"],
                "model_input_validation",
                name="make_model_input_validation",
            ),
            Node(
                make_model_input,
                ["test_panel", "busyness_features"],
                "model_input_test",
                name="make_model_input_test",
            ),
        ],
        tags="feature_engineering",
    )

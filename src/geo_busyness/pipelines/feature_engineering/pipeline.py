"""clean_events -> time windows -> dense cell x hour panels -> model-input tables + transformer."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_panels,
    count_events_per_cell_hour,
    define_time_windows,
    extend_known_history,
    fit_busyness_features,
    make_model_input,
    split_events_by_window,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Windows, counts, fit on train, panels, then features for each window."""
    return Pipeline(
        [
            Node(
                define_time_windows,
                ["clean_events", "params:feature_engineering"],
                "time_windows",
                name="define_time_windows",
            ),
            Node(
                split_events_by_window,
                ["clean_events", "time_windows"],
                ["train_events", "validation_events", "test_events"],
                name="split_events_by_window",
            ),
            Node(
                count_events_per_cell_hour,
                ["clean_events", "time_windows", "params:feature_engineering.h3_resolution"],
                "cell_hour_counts",
                name="count_events_per_cell_hour",
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

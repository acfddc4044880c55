"""Model-input tables -> candidates -> chosen model -> test metrics -> gate -> registry (or not)."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_evaluation_report,
    compose_model,
    evaluate_leaky_reference_protocol,
    evaluate_test_window,
    fit_gradient_boosting,
    gate_and_register,
    permutation_feature_importance,
    predict_test_window,
    seasonal_naive_baseline,
    select_regressor,
    tune_random_forest,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Tune and fit candidates on train, select on validation, evaluate on test, gate."""
    return Pipeline(
        [
            Node(
                tune_random_forest,
                ["model_input_train", "busyness_features", "params:modeling"],
                ["random_forest_candidate", "random_forest_search"],
                name="tune_random_forest",
            ),
            Node(
                fit_gradient_boosting,
                ["model_input_train", "busyness_features", "params:modeling"],
                "gradient_boosting_candidate",
                name="fit_gradient_boosting",
            ),
            Node(
                select_regressor,
                {
                    "random_forest": "random_forest_candidate",
                    "gradient_boosting": "gradient_boosting_candidate",
                    "model_input_train": "model_input_train",
                    "model_input_validation": "model_input_validation",
                    "features": "busyness_features",
                    "params": "params:modeling",
                },
                ["busyness_regressor", "model_selection"],
                name="select_regressor",
            ),
            Node(
                compose_model,
                ["busyness_features", "busyness_regressor"],
                "busyness_model",
                name="compose_model",
            ),
            Node(
                predict_test_window,
                ["busyness_model", "model_input_test"],
                "test_predictions",
                name="predict_test_window",
            ),
            Node(
                seasonal_naive_baseline,
                ["model_input_train", "model_input_test"],
                "baseline_test_predictions",
                name="seasonal_naive_baseline",
            ),
            Node(
                evaluate_test_window,
                ["test_predictions", "baseline_test_predictions"],
                "test_metrics",
                name="evaluate_test_window",
            ),
            Node(
                evaluate_leaky_reference_protocol,
                [
                    "clean_events",
                    "params:feature_engineering",
                    "random_forest_search",
                    "params:modeling",
                ],
                "leaky_reference_protocol",
                name="evaluate_leaky_reference_protocol",
            ),
            Node(
                build_evaluation_report,
                {
                    "test_metrics": "test_metrics",
                    "selection": "model_selection",
                    "rf_search": "random_forest_search",
                    "leaky": "leaky_reference_protocol",
                    "windows": "time_windows",
                    "feature_engineering_report": "feature_engineering_report",
                    "params": "params:modeling",
                },
                ["evaluation_report_draft", "evaluation_metrics"],
                name="build_evaluation_report",
            ),
            Node(
                permutation_feature_importance,
                ["busyness_model", "model_input_test", "params:modeling"],
                "feature_importance",
                name="permutation_feature_importance",
            ),
            Node(
                gate_and_register,
                [
                    "busyness_model",
                    "evaluation_report_draft",
                    "model_input_test",
                    "params:feature_engineering",
                    "params:modeling",
                ],
                "evaluation_report",
                name="gate_and_register",
            ),
        ],
        tags="modeling",
    )

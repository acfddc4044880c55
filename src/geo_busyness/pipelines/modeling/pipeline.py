"""Count history -> candidates per validation fold -> choice -> refit before the test window
-> test backtest beside the baselines and the serving champion -> gate -> refit through the
end -> registry."""

from kedro.pipeline import Node, Pipeline

from .candidates import fit_candidates, select_forecaster
from .champion import load_champion
from .nodes import (
    backtest_test_window,
    build_evaluation_report,
    evaluate_leaky_reference_protocol,
    permutation_feature_importance,
    refit_chosen,
    refit_through_end,
)
from .registration import gate_and_register


def create_pipeline(**kwargs) -> Pipeline:
    """Fit candidates before each validation fold, choose, refit before test, backtest, gate,
    refit through the end of the data, register."""
    return Pipeline(
        [
            Node(
                fit_candidates,
                ["count_history", "busyness_features", "time_windows", "params:modeling"],
                "forecast_candidates",
                name="fit_candidates",
            ),
            Node(
                select_forecaster,
                ["forecast_candidates", "params:modeling"],
                "model_selection",
                name="select_forecaster",
            ),
            Node(
                refit_chosen,
                [
                    "model_selection",
                    "count_history",
                    "busyness_features",
                    "time_windows",
                    "params:modeling",
                ],
                "evaluated_model",
                name="refit_chosen",
            ),
            Node(
                refit_through_end,
                ["evaluated_model", "model_selection"],
                "busyness_model",
                name="refit_through_end",
            ),
            Node(
                load_champion,
                "params:modeling",
                "serving_champion",
                name="load_champion",
            ),
            Node(
                backtest_test_window,
                [
                    "evaluated_model",
                    "model_selection",
                    "serving_champion",
                    "time_windows",
                    "params:modeling",
                ],
                ["test_metrics", "test_predictions", "baseline_test_predictions"],
                name="backtest_test_window",
            ),
            Node(
                evaluate_leaky_reference_protocol,
                ["cell_hour_counts", "leaky_reference_features", "params:modeling"],
                "leaky_reference_protocol",
                name="evaluate_leaky_reference_protocol",
            ),
            Node(
                build_evaluation_report,
                {
                    "test_metrics": "test_metrics",
                    "selection": "model_selection",
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
                ["evaluated_model", "time_windows", "params:modeling"],
                "feature_importance",
                name="permutation_feature_importance",
            ),
            Node(
                gate_and_register,
                [
                    "busyness_model",
                    "evaluation_report_draft",
                    "test_predictions",
                    "params:feature_engineering",
                    "params:modeling",
                ],
                "evaluation_report",
                name="gate_and_register",
            ),
        ],
        tags="modeling",
    )

"""Test predictions, feature importance, the train panel and the model -> figures, a map, a
SHAP summary and a report page."""

from kedro.pipeline import Node, Pipeline

from .explanations import shap_summary
from .nodes import (
    busyness_by_hour_of_week_figure,
    busyness_map,
    error_by_cell_figure,
    error_by_hour_figure,
    feature_importance_figure,
    figures_page,
    forecast_timeline_figure,
    predicted_vs_actual_figure,
)

#: Figure datasets (plotly JSON, previewed by kedro-viz) gathered into the MLflow report page.
FIGURES = (
    "predicted_vs_actual_figure",
    "forecast_timeline_figure",
    "error_by_hour_figure",
    "error_by_cell_figure",
    "feature_importance_figure",
    "busyness_by_hour_of_week_figure",
)


def create_pipeline(**kwargs) -> Pipeline:
    """Draw the evaluation figures and the busyness map; log the map, the SHAP summary and a
    report page to MLflow."""
    baseline = "baseline_test_predictions"
    return Pipeline(
        [
            Node(
                predicted_vs_actual_figure,
                ["test_predictions", "params:reporting"],
                "predicted_vs_actual_figure",
                name="plot_predicted_vs_actual",
            ),
            Node(
                forecast_timeline_figure,
                ["test_predictions", baseline],
                "forecast_timeline_figure",
                name="plot_forecast_timeline",
            ),
            Node(
                error_by_hour_figure,
                ["test_predictions", baseline, "params:reporting"],
                "error_by_hour_figure",
                name="plot_error_by_hour",
            ),
            Node(
                error_by_cell_figure,
                ["test_predictions", baseline],
                "error_by_cell_figure",
                name="map_error_by_cell",
            ),
            Node(
                feature_importance_figure,
                "feature_importance",
                "feature_importance_figure",
                name="plot_feature_importance",
            ),
            Node(
                busyness_by_hour_of_week_figure,
                ["train_panel", "params:reporting"],
                "busyness_by_hour_of_week_figure",
                name="plot_busyness_by_hour_of_week",
            ),
            Node(
                busyness_map,
                ["test_predictions", "params:reporting"],
                "busyness_map",
                name="map_busyness",
            ),
            Node(
                shap_summary,
                ["busyness_model", "time_windows", "params:reporting"],
                ["shap_summary", "shap_summary_figure"],
                name="explain_test_window",
            ),
            Node(
                figures_page,
                {name: name for name in FIGURES},
                "reporting_page",
                name="build_reporting_page",
            ),
        ],
        tags="reporting",
    )

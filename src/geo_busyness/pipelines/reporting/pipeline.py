"""Test predictions, feature importance, the train panel and the model -> figures, a street
map, a SHAP summary and a report page (each opening with the model version, data window, time
zone, gate verdict and headline metrics), kept under the run and logged to its MLflow run ->
the current reports, the champion's."""

from kedro.pipeline import Node, Pipeline

from .explanations import shap_summary
from .nodes import (
    busyness_by_hour_of_week_figure,
    busyness_map,
    error_by_cell_figure,
    error_by_hour_figure,
    feature_importance_figure,
    forecast_timeline_figure,
    predicted_vs_actual_figure,
    run_context,
)
from .outputs import log_run_outputs, publish_champion_outputs, saved_figure
from .page import map_page, report_page

#: Figure datasets (plotly JSON, previewed by kedro-viz) gathered into the MLflow report page.
FIGURES = (
    "predicted_vs_actual_figure",
    "forecast_timeline_figure",
    "error_by_hour_figure",
    "error_by_cell_figure",
    "feature_importance_figure",
    "busyness_by_hour_of_week_figure",
)
#: The nodes that talk to MLflow (logging the run's outputs, publishing the champion's).
MLFLOW_NODES = ("log_run_outputs", "publish_champion_outputs")


def create_pipeline(**kwargs) -> Pipeline:
    """Draw the evaluation figures and the busyness map; log every output to the run's MLflow
    run; publish the champion's as the current reports when the champion changed."""
    baseline = "baseline_test_predictions"
    caption, timezone = "figure_caption", "report_timezone"
    return Pipeline(
        [
            Node(
                run_context,
                ["evaluation_report", "time_windows", "busyness_model", "params:reporting"],
                ["report_context", caption, timezone],
                name="describe_run",
            ),
            Node(
                predicted_vs_actual_figure,
                ["test_predictions", "params:reporting", caption],
                "predicted_vs_actual_figure",
                name="plot_predicted_vs_actual",
            ),
            Node(
                forecast_timeline_figure,
                ["test_predictions", baseline, timezone, caption],
                "forecast_timeline_figure",
                name="plot_forecast_timeline",
            ),
            Node(
                error_by_hour_figure,
                ["test_predictions", baseline, timezone, caption],
                "error_by_hour_figure",
                name="plot_error_by_hour",
            ),
            Node(
                error_by_cell_figure,
                ["test_predictions", baseline, caption],
                "error_by_cell_figure",
                name="map_error_by_cell",
            ),
            Node(
                feature_importance_figure,
                ["feature_importance", caption],
                "feature_importance_figure",
                name="plot_feature_importance",
            ),
            Node(
                busyness_by_hour_of_week_figure,
                ["train_panel", timezone, caption],
                "busyness_by_hour_of_week_figure",
                name="plot_busyness_by_hour_of_week",
            ),
            Node(
                busyness_map,
                ["test_predictions", "params:reporting", timezone, caption],
                "busyness_map_plot",
                name="map_busyness",
            ),
            Node(
                map_page,
                ["report_context", "busyness_map_plot"],
                "busyness_map",
                name="build_busyness_map_page",
            ),
            Node(
                shap_summary,
                ["busyness_model", "time_windows", "params:reporting", caption],
                ["shap_summary", "shap_summary_plot"],
                name="explain_test_window",
            ),
            Node(saved_figure, "shap_summary_plot", "shap_summary_figure", name="save_shap_figure"),
            Node(
                report_page,
                {
                    "context": "report_context",
                    "shap_summary": "shap_summary",
                    **{name: name for name in FIGURES},
                },
                "reporting_page",
                name="build_reporting_page",
            ),
            Node(
                log_run_outputs,
                {
                    "evaluation_report": "evaluation_report",
                    "shap_summary": "shap_summary",
                    "shap_summary_plot": "shap_summary_plot",
                    "reporting_page": "reporting_page",
                    "busyness_map": "busyness_map",
                    "params": "params:reporting",
                    **{name: name for name in FIGURES},
                },
                "run_outputs",
                name="log_run_outputs",
            ),
            *champion_outputs_pipeline("run_outputs").nodes,
        ],
        tags="reporting",
    )


def champion_outputs_pipeline(after: str = "run_outputs") -> Pipeline:
    """The publication of the champion's outputs as the current reports, once ``after`` is
    written: the last training run's ``run_outputs`` here; deployment adds it after its
    ``deployment_record`` (the moment a new version becomes champion)."""
    return Pipeline(
        [
            Node(
                publish_champion_outputs,
                [after, "params:reporting"],
                "champion_outputs",
                name="publish_champion_outputs",
            )
        ],
        tags="reporting",
    )

"""Registry version -> loaded model -> told the latest counts -> cell x hour forecast from the
latest hour, scored queries (+ quarantine), report."""

from kedro.pipeline import Node, Pipeline

from geo_busyness.registry import check_model_parameters, load_version, select_model_version

from .nodes import (
    accept_inference_queries,
    describe_explanations,
    extend_with_recent_counts,
    forecast_known_cells,
    plan_forecast_window,
    report_inference,
    score_inference_queries,
    split_inference_queries,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Not in the default run: ``kedro run --pipelines inference``."""
    return Pipeline(
        [
            Node(
                select_model_version,
                "params:inference",
                "inference_model_version",
                name="resolve_inference_model",
            ),
            Node(
                load_version,
                "inference_model_version",
                "inference_model",
                name="load_inference_model",
            ),
            Node(
                check_model_parameters,
                [
                    "inference_model",
                    "inference_model_version",
                    "params:feature_engineering.h3_resolution",
                    "params:data_processing.source_timezone",
                ],
                "inference_model_parameter_mismatch",
                name="check_inference_model_parameters",
            ),
            Node(
                plan_forecast_window,
                ["clean_events", "params:inference", "params:data_processing.source_timezone"],
                "forecast_window",
                name="plan_forecast_window",
            ),
            Node(
                extend_with_recent_counts,
                ["inference_model", "clean_events", "forecast_window"],
                ["inference_forecaster", "forecast_origin"],
                name="extend_with_recent_counts",
            ),
            Node(
                forecast_known_cells,
                [
                    "inference_forecaster",
                    "inference_model_version",
                    "forecast_window",
                    "params:inference.explain_top_k",
                ],
                "busyness_forecast",
                name="forecast_known_cells",
            ),
            Node(
                split_inference_queries,
                [
                    "inference_queries",
                    "params:inference",
                    "params:data_processing.column_mapping",
                    "inference_model",
                ],
                ["valid_inference_queries", "rejected_inference_queries", "query_validation"],
                name="split_inference_queries",
            ),
            Node(
                accept_inference_queries,
                ["valid_inference_queries", "query_validation"],
                "accepted_inference_queries",
                name="accept_inference_queries",
            ),
            Node(
                score_inference_queries,
                [
                    "inference_forecaster",
                    "inference_model_version",
                    "accepted_inference_queries",
                    "params:inference.explain_top_k",
                ],
                "scored_queries",
                name="score_inference_queries",
            ),
            Node(
                describe_explanations,
                ["inference_forecaster", "params:inference.explain_top_k"],
                "inference_explanations",
                name="describe_inference_explanations",
            ),
            Node(
                report_inference,
                {
                    "model_version": "inference_model_version",
                    "window": "forecast_window",
                    "forecast": "busyness_forecast",
                    "scored": "scored_queries",
                    "validation": "query_validation",
                    "parameter_mismatch": "inference_model_parameter_mismatch",
                    "extension": "forecast_origin",
                    "explanations": "inference_explanations",
                },
                "inference_report",
                name="report_inference",
            ),
        ],
        tags="inference",
    )

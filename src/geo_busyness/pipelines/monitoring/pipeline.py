"""the newest ingested batch (else recent_raw_events, else the newest week of clean_events) ->
cleaned like the history -> compared with the model's train window."""

from kedro.pipeline import Node, Pipeline, pipeline

from geo_busyness.pipelines import data_processing
from geo_busyness.registry import check_model_parameters, load_version, select_model_version

from .decision import assemble_report
from .level import compare_level
from .nodes import (
    compare_cell_hours,
    compare_data_quality,
    compare_event_features,
    describe_events,
    evaluate_recent_performance,
    extend_monitored_model,
    score_recent_cell_hours,
    score_reference_cell_hours,
    score_reference_forecasts,
    select_reference_events,
)
from .recent_window import choose_recent_batch, known_events
from .report_html import render_report_html

#: The share gate's parameter in data_processing, and what the recent batch reads instead.
_GATE = "params:data_processing.max_rejected_fraction"
_RECENT_GATE = "params:monitoring.recent_max_rejected_fraction"


def clean_recent_events() -> Pipeline:
    """The recent batch (the newest ingested batch, else ``recent_raw_events``, else the newest
    week of ``clean_events``, in the source's columns: ``recent_window.choose_recent_batch``),
    then the data_processing pipeline on it, under the ``recent`` namespace.

    It reads the history's cleaning parameters, except the share gate:
    ``monitoring.recent_max_rejected_fraction`` (1.0 by default), since a bad recent batch is
    what monitoring reports, not a reason to stop.
    """
    choose = Node(
        choose_recent_batch,
        [
            "recent_raw_events",
            "clean_events",
            "params:data_processing.column_mapping",
            "ingestion_record",
            "event_history",
        ],
        ["recent_raw_batch", "recent_window"],
        name="choose_recent_batch",
    )
    cleaning = data_processing.create_pipeline()
    shared = {name: name for name in cleaning.inputs() if name.startswith("params:")}
    return Pipeline([choose]) + pipeline(
        cleaning,
        namespace="recent",
        inputs={"raw_events": "recent_raw_batch"},
        outputs={
            "clean_events": "recent_clean_events",
            "data_quality_report": "recent_data_quality_report",
        },
        parameters=shared | {_GATE: _RECENT_GATE},
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Clean the recent batch; find the model and its reference; compare; report."""
    compare = Pipeline(
        [
            Node(
                select_model_version,
                "params:monitoring",
                "monitored_model_version",
                name="select_monitored_version",
            ),
            Node(
                load_version,
                "monitored_model_version",
                "monitored_model",
                name="load_monitored_model",
            ),
            Node(
                check_model_parameters,
                [
                    "monitored_model",
                    "monitored_model_version",
                    "params:feature_engineering.h3_resolution",
                    "params:data_processing.source_timezone",
                ],
                "monitored_model_parameter_mismatch",
                name="check_monitored_model_parameters",
            ),
            Node(
                select_reference_events,
                ["clean_events", "monitored_model_version"],
                "reference_events",
                name="select_reference_events",
            ),
            Node(
                describe_events,
                ["reference_events", "monitored_model"],
                "reference_event_features",
                name="describe_reference_events",
            ),
            Node(
                describe_events,
                ["recent_clean_events", "monitored_model"],
                "recent_event_features",
                name="describe_recent_events",
            ),
            Node(
                compare_event_features,
                [
                    "reference_event_features",
                    "recent_event_features",
                    "monitored_model",
                    "params:monitoring",
                ],
                "event_feature_drift",
                name="compare_event_features",
            ),
            Node(
                score_reference_cell_hours,
                ["reference_events", "monitored_model", "monitored_model_version"],
                "reference_cell_hours",
                name="score_reference_cell_hours",
            ),
            Node(
                score_reference_forecasts,
                ["monitored_model", "monitored_model_version"],
                "reference_forecasts",
                name="score_reference_forecasts",
            ),
            Node(
                known_events,
                ["clean_events", "ingestion_record", "event_history"],
                "monitoring_known_events",
                name="gather_known_events",
            ),
            Node(
                extend_monitored_model,
                ["monitored_model", "monitoring_known_events", "recent_clean_events"],
                ["monitored_forecaster", "monitoring_forecast_origin"],
                name="extend_monitored_model",
            ),
            Node(
                score_recent_cell_hours,
                ["recent_clean_events", "monitored_forecaster"],
                "recent_cell_hours",
                name="score_recent_cell_hours",
            ),
            Node(
                compare_cell_hours,
                [
                    "reference_cell_hours",
                    "reference_forecasts",
                    "recent_cell_hours",
                    "params:monitoring",
                ],
                "cell_hour_drift",
                name="compare_cell_hours",
            ),
            Node(
                evaluate_recent_performance,
                [
                    "recent_cell_hours",
                    "monitored_model_version",
                    "params:monitoring",
                    "monitoring_forecast_origin",
                ],
                "recent_performance",
                name="evaluate_recent_performance",
            ),
            Node(
                compare_level,
                [
                    "monitored_forecaster",
                    "monitoring_forecast_origin",
                    "recent_cell_hours",
                    "params:monitoring",
                ],
                "recent_level",
                name="compare_level",
            ),
            Node(
                compare_data_quality,
                [
                    "data_quality_report",
                    "recent_data_quality_report",
                    "params:monitoring",
                    "recent_window",
                ],
                "data_quality_drift",
                name="compare_data_quality",
            ),
            Node(
                assemble_report,
                {
                    "model_version": "monitored_model_version",
                    "event_drift": "event_feature_drift",
                    "cell_hour_drift": "cell_hour_drift",
                    "performance": "recent_performance",
                    "level": "recent_level",
                    "data_quality": "data_quality_drift",
                    "params": "params:monitoring",
                    "parameter_mismatch": "monitored_model_parameter_mismatch",
                    "recent_window": "recent_window",
                },
                ["monitoring_report", "retrain_recommended", "monitoring_metrics"],
                name="assemble_monitoring_report",
            ),
            Node(
                render_report_html,
                ["monitoring_report", "params:data_processing.source_timezone"],
                "monitoring_report_html",
                name="render_monitoring_report_html",
            ),
        ]
    )
    return Pipeline([clean_recent_events(), compare], tags="monitoring")

"""feature_engineering on Spark: clean_events -> cell_hour_counts and time_windows (one Spark
job), then the dense panels from the counts. Selected by the `spark` environment
(``geo_busyness.spark.pipeline_registry``)."""

from kedro.pipeline import Node, Pipeline

from .spark_nodes import build_panels_from_counts, window_and_count_events


def create_pipeline(**kwargs) -> Pipeline:
    """Counts and windows on Spark; panels (pandas, small) as the pandas pipeline builds them."""
    return Pipeline(
        [
            Node(
                window_and_count_events,
                ["clean_events", "params:feature_engineering"],
                ["time_windows", "cell_hour_counts"],
                name="window_and_count_events",
            ),
            Node(
                build_panels_from_counts,
                ["cell_hour_counts", "time_windows"],
                ["train_panel", "validation_panel", "test_panel", "feature_engineering_report"],
                name="build_panels",
            ),
        ],
        tags=["feature_engineering", "spark"],
    )

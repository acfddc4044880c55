"""The retraining pipeline on Spark: the batches combined, processed and summarised on Spark,
then modeling and reporting on the small panels as in the pandas pipeline. Selected by the
`spark` environment (``geo_busyness.spark.pipeline_registry``)."""

from kedro.pipeline import Pipeline

from geo_busyness.pipelines.data_processing import spark_pipeline as spark_data_processing
from geo_busyness.pipelines.feature_engineering import (
    spark_pipeline as spark_feature_engineering,
)

from .pipeline import retraining_pipeline
from .spark_nodes import combine_event_batches


def create_pipeline(**kwargs) -> Pipeline:
    """The pandas retraining pipeline's datasets; the recent batch read by Spark."""
    return retraining_pipeline(
        combine_event_batches,
        "recent_raw_events_on_spark",
        spark_data_processing.create_pipeline() + spark_feature_engineering.create_pipeline(),
    )

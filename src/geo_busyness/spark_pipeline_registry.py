"""Pipelines of the `spark` environment: the project's own, with data_processing,
feature_engineering and retraining's event-reading part replaced by their Spark variants (same
dataset names where they mean the same thing). ``SparkHooks`` selects this registry when the
run's environment has Spark settings. It lives beside ``pipeline_registry``, above both
``spark/`` (the engine) and the pipelines it assembles.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, pipeline

from geo_busyness.pipeline_registry import register_pipelines as pandas_pipelines
from geo_busyness.pipelines.data_processing.spark_pipeline import (
    create_pipeline as spark_data_processing,
)
from geo_busyness.pipelines.feature_engineering.spark_pipeline import (
    create_pipeline as spark_feature_engineering,
)
from geo_busyness.pipelines.retraining.pipeline import retraining_pipeline
from geo_busyness.pipelines.retraining.spark_nodes import combine_event_batches

#: The pipelines that run on Spark in this environment (retraining: its event-reading part).
SPARK_PIPELINES = ("data_processing", "feature_engineering", "retraining")
#: Pandas pipelines that read clean events (the latest hours before a forecast, the training
#: window's events): here they read the Spark run's Parquet folder, ``clean_events_for_pandas``.
EVENT_READERS = ("inference", "monitoring", "shadow")


def register_pipelines() -> dict[str, Pipeline]:
    """The project's pipelines, with SPARK_PIPELINES on Spark; the default runs data_processing
    and feature_engineering.

    The Spark feature_engineering writes every dataset the pandas one does (counts, panels,
    count history, per-cell statistics: small, read with pandas), so `modeling` runs after it
    in either environment. EVENT_READERS read the clean events the Spark run wrote; retraining
    combines the batches, processes and summarises them on Spark (``kedro retrain --env spark``).
    """
    pipelines = pandas_pipelines()
    pipelines["data_processing"] = spark_data_processing()
    pipelines["feature_engineering"] = spark_feature_engineering()
    pipelines["retraining"] = retraining_pipeline(
        combine_event_batches,
        "recent_raw_events_on_spark",
        pipelines["data_processing"] + pipelines["feature_engineering"],
    )
    for name in EVENT_READERS:
        pipelines[name] = pipeline(
            pipelines[name], inputs={"clean_events": "clean_events_for_pandas"}
        )
    pipelines["__default__"] = pipelines["data_processing"] + pipelines["feature_engineering"]
    return pipelines

"""Pipelines of the `spark` environment: the project's own, with data_processing and
feature_engineering replaced by their Spark variants (same dataset names where they mean the
same thing). ``SparkHooks`` selects this registry when the run's environment has Spark settings.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from geo_busyness.pipeline_registry import register_pipelines as pandas_pipelines
from geo_busyness.pipelines.data_processing.spark_pipeline import (
    create_pipeline as spark_data_processing,
)
from geo_busyness.pipelines.feature_engineering.spark_pipeline import (
    create_pipeline as spark_feature_engineering,
)

#: The pipelines that run on Spark in this environment.
SPARK_PIPELINES = ("data_processing", "feature_engineering")


def register_pipelines() -> dict[str, Pipeline]:
    """The project's pipelines, with SPARK_PIPELINES on Spark; the default runs those two.

    The Spark feature_engineering writes every dataset the pandas one does (counts, panels,
    count history, per-cell statistics: small, read with pandas), so `modeling` runs after it
    in the default environment.
    """
    pipelines = pandas_pipelines()
    pipelines["data_processing"] = spark_data_processing()
    pipelines["feature_engineering"] = spark_feature_engineering()
    pipelines["__default__"] = pipelines["data_processing"] + pipelines["feature_engineering"]
    return pipelines

"""feature_engineering on Spark: the pandas pipeline with its one event-reading node,
``window_and_summarise_events``, on Spark (one Spark job over the clean events); every later
node reads only the small counts and summaries, with the pandas pipeline's own code. Selected by
the `spark` environment (``geo_busyness.spark_pipeline_registry``)."""

from kedro.pipeline import Pipeline

from .pipeline import SUMMARY_NODE, summary_node
from .pipeline import create_pipeline as pandas_pipeline
from .spark_nodes import window_and_summarise_events


def create_pipeline(**kwargs) -> Pipeline:
    """The same datasets as the pandas pipeline (everything modeling reads)."""
    pandas = pandas_pipeline()
    on_spark = Pipeline([summary_node(window_and_summarise_events)])
    return Pipeline(
        [on_spark, pandas - pandas.only_nodes(SUMMARY_NODE)],
        tags=["feature_engineering", "spark"],
    )

"""``SparkHooks``: the `spark` environment's SparkSession and Spark pipelines."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl


class SparkHooks:
    """The `spark` environment's SparkSession (Kedro's PySpark guide) and Spark pipelines."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Start the session and select the Spark pipelines where Spark settings exist."""
        from geo_busyness.spark.session import activate_engine  # noqa: PLC0415 - keeps pyspark optional

        activate_engine(context)

    @hook_impl(trylast=True)
    def before_pipeline_run(self) -> None:
        """Wait for the session started in the background, after the other hooks' work (an
        earlier hook that reads a Spark dataset waits on pyspark's own lock for the same
        session) and before any node runs."""
        from geo_busyness.spark.session import wait_for_session  # noqa: PLC0415 - no pyspark import

        wait_for_session()

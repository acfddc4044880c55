"""The Spark engine (`kedro run --env spark`): the session the hook starts, Spark's timestamp
parsing and H3 indexing and the cleaning rules' Spark primitives. The Spark pipelines use it;
it imports none of them (the environment's pipelines: ``spark_pipeline_registry`` at the root).

Nothing here is imported by the default (pandas) path: pyspark is an optional extra
(`make install-spark`, `uv sync --extra spark`).
"""

"""The Spark engine (`kedro run --env spark`): the session hook, Spark's timestamp parsing and
H3 indexing, the cleaning rules' Spark primitives and the pipelines the environment runs.

Nothing here is imported by the default (pandas) path: pyspark is an optional extra
(`make install-spark`, `uv sync --extra spark`).
"""

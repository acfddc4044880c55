"""The project's hooks, one module per concern (``settings.HOOKS`` registers them from here).

- ``paths.ProjectPathsHook``: make the SQLite MLflow store, its artifacts and every path
  parameter absolute from the project path, whatever the working directory.
- ``parameters.ParameterCheckHook``: check every parameter block against ``parameter_schema``
  before anything runs.
- ``tracking.TrackingServerHook``: deadlines on every remote call (``remote``); fail early on a
  cloud run with no tracking server, or one that does not answer; close runs left RUNNING by a
  killed process.
- ``memory_budget.MemoryBudgetHook``: refuse a raw file too large for memory before anything
  reads it (the estimate lives beside it).
- ``storage.StorageErrorHook``: explain storage faults in one sentence.
- ``spark.SparkHooks``: in an environment with Spark settings (``conf/spark``), start the
  SparkSession and run the Spark pipelines (``spark.session``; pyspark is imported only then).
- ``summary.RunSummaryHook``: end a run with a short summary of its reports (rendered by
  ``operations.run_summary``).
- ``alerts.AlertHook``: with ``alerts.enabled``, send an alert (``operations.alerts``) when
  monitoring recommends retraining, the quality gate fails, a deployment rolls back or the run
  fails.
"""

from geo_busyness.hooks.alerts import AlertHook
from geo_busyness.hooks.memory_budget import MemoryBudgetHook
from geo_busyness.hooks.parameters import ParameterCheckHook
from geo_busyness.hooks.paths import ProjectPathsHook
from geo_busyness.hooks.spark import SparkHooks
from geo_busyness.hooks.storage import StorageErrorHook
from geo_busyness.hooks.summary import RunSummaryHook
from geo_busyness.hooks.tracking import TrackingServerHook

__all__ = [
    "AlertHook",
    "MemoryBudgetHook",
    "ParameterCheckHook",
    "ProjectPathsHook",
    "RunSummaryHook",
    "SparkHooks",
    "StorageErrorHook",
    "TrackingServerHook",
]

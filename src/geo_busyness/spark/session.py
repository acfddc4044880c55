"""The SparkSession of the `spark` environment, started by a Kedro hook (Kedro's PySpark guide).

``hooks.SparkHooks.after_context_created`` (``activate_engine``) reads ``spark*.yml`` of the
run's environment (``conf/spark/spark.yml``: every key is a Spark property, ``spark.master``
included, so any master, YARN, Kubernetes, ``spark://`` or Databricks Connect, is set through
configuration alone) and starts the session, or takes the one already running in the process
(tests share one). The session starts in a background thread while Kedro builds the catalog and
the other hooks run (the JVM takes seconds to launch); ``SparkHooks.before_pipeline_run`` waits
for it (``wait_for_session``) before any node runs. An environment without Spark settings runs
the pandas pipelines and never imports pyspark. In the Spark environment it also selects the
Spark variants of data_processing and feature_engineering
(``geo_busyness.spark_pipeline_registry``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from typing import Any

from kedro.config import MissingConfigException

logger = logging.getLogger(__name__)

#: Settings every Spark run of this project needs, whatever spark.yml says: the nodes compute
#: UTC hours and compare UTC instants, so the session's time zone must be UTC (a source's own
#: zone is `data_processing.source_timezone`, applied when timestamps are parsed).
REQUIRED_SETTINGS = {"spark.sql.session.timeZone": "UTC"}
#: Used where spark.yml does not say otherwise.
DEFAULT_SETTINGS = {
    "spark.master": "local[*]",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.showConsoleProgress": "false",
}
SPARK_REGISTRY = "geo_busyness.spark_pipeline_registry"
PANDAS_REGISTRY = "geo_busyness.pipeline_registry"


def quiet_pyspark_import() -> None:
    """Silence pyspark's warning that pandas 3 is 'not yet fully supported' (raised on import
    of pyspark.pandas, which kedro-datasets and ``toPandas`` load): the project's Spark code
    hands pandas only small, plain results (counts), checked equal to pandas' own by the tests.
    """
    warnings.filterwarnings(
        "ignore",
        message="PySpark does not yet fully support pandas",
        category=FutureWarning,
        module=r"pyspark\.",
    )


def spark_settings(config_loader: Any) -> dict[str, str]:
    """The run's Spark properties (spark*.yml of its environments); {} when there are none."""
    try:
        settings = config_loader["spark"]
    except (KeyError, MissingConfigException):
        return {}
    return {str(key): str(value) for key, value in (settings or {}).items()}


def start_session(settings: dict[str, str], app_name: str = "geo-busyness"):
    """The active SparkSession with ``settings`` (plus the required ones), started if needed."""
    quiet_pyspark_import()
    from pyspark import SparkConf  # noqa: PLC0415 - optional extra
    from pyspark.sql import SparkSession  # noqa: PLC0415

    merged = {**DEFAULT_SETTINGS, **settings, **REQUIRED_SETTINGS}
    if merged["spark.master"].startswith("local"):
        # Local Python workers run this interpreter, where geo_busyness is installed (on a
        # cluster, its executors need the package: docs/scale.md).
        # PySpark reads the workers' interpreter from PYSPARK_PYTHON, not from the conf.
        os.environ.setdefault("PYSPARK_PYTHON", merged.get("spark.pyspark.python", sys.executable))
    session = (
        SparkSession.builder.appName(app_name)
        .config(conf=SparkConf().setAll(list(merged.items())))
        .getOrCreate()
    )
    for key, value in REQUIRED_SETTINGS.items():  # a session already running keeps its own
        session.conf.set(key, value)
    session.sparkContext.setLogLevel(settings.get("geo_busyness.log_level", "WARN"))
    logger.info(
        "Spark %s session on %s (%s cores)",
        session.version,
        session.sparkContext.master,
        session.sparkContext.defaultParallelism,
    )
    return session


def get_spark():
    """The running SparkSession (the hook's), or a new one with the defaults."""
    wait_for_session()
    quiet_pyspark_import()
    from pyspark.sql import SparkSession  # noqa: PLC0415 - optional extra

    return SparkSession.getActiveSession() or start_session({})


class _Starting(threading.Thread):
    """``start_session`` in the background; ``result`` re-raises what it raised."""

    def __init__(self, settings: dict[str, str], app_name: str) -> None:
        super().__init__(name="spark-session-start", daemon=True)
        self.settings, self.app_name = settings, app_name
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start_session(self.settings, app_name=self.app_name)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            self.error = error

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


_starting: _Starting | None = None


def start_session_in_background(settings: dict[str, str], app_name: str) -> None:
    """Begin ``start_session`` in a thread (``wait_for_session`` ends it). Nothing else may
    touch Spark before that wait: the hooks wait before the pipeline runs."""
    global _starting  # noqa: PLW0603 - one session start per process at a time
    wait_for_session()  # an earlier start (another run in this process) ends first
    _starting = _Starting(settings, app_name)
    _starting.start()


def wait_for_session() -> None:
    """Wait for a background session start, raising its error if it failed."""
    global _starting  # noqa: PLW0603
    starting, _starting = _starting, None
    if starting is not None:
        starting.result()


def use_pipelines(module: str) -> None:
    """Point Kedro's pipeline registry at ``module`` (only when it changes: a reset reloads)."""
    from kedro.framework.project import pipelines  # noqa: PLC0415

    if getattr(pipelines, "_pipelines_module", None) != module:
        pipelines.configure(module)


def activate_engine(context: Any) -> None:
    """``hooks.SparkHooks``: before any pipeline is looked up, the Spark pipelines and a
    session when the run's environment has Spark settings, else the pandas pipelines."""
    settings = spark_settings(context.config_loader)
    if not settings:
        if getattr(_registry(), "_pipelines_module", None) == SPARK_REGISTRY:
            use_pipelines(PANDAS_REGISTRY)  # an earlier Spark session in this process
        return
    start_session_in_background(settings, app_name=context.project_path.name)
    use_pipelines(SPARK_REGISTRY)


def _registry() -> Any:
    from kedro.framework.project import pipelines  # noqa: PLC0415

    return pipelines

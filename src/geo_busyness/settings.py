"""Project settings. There is no need to edit this file unless you want to change values
from the Kedro defaults. For further information, including these default values, see
https://docs.kedro.org/en/stable/configure/configuration_basics/#configuration"""

import logging

from omegaconf.resolvers import oc

from geo_busyness.known_warnings import DropMessage, silence_known_warnings

# The library warnings the project cannot fix (each with its reason in known_warnings); Kedro
# imports this module before its plugins. The filters go in before the hooks are imported (some
# import pyspark); the definition warnings after (their import needs Kedro's logging set up).
silence_known_warnings(definitions=False)

from geo_busyness.hooks import (  # noqa: E402 - after the filters above
    AlertHook,
    MemoryBudgetHook,
    ParameterCheckHook,
    ProjectPathsHook,
    RunSummaryHook,
    SparkHooks,
    StorageErrorHook,
    TrackingServerHook,
)

silence_known_warnings()
# ParameterCheckHook checks every block against one schema (parameter_schema); no node takes a
# typed parameter model, so Kedro's own validator would say so on every run.
_NO_TYPED_PARAMETERS = DropMessage(r"No typed parameter requirements found")
if _NO_TYPED_PARAMETERS not in logging.getLogger("kedro.validation.parameter_validator").filters:
    logging.getLogger("kedro.validation.parameter_validator").addFilter(_NO_TYPED_PARAMETERS)

# Every project hook lives in geo_busyness.hooks (one module per concern). Hooks run
# Last-In-First-Out; these also set tryfirst/trylast. ProjectPathsHook (last here, so the first
# of the tryfirst hooks) makes the MLflow store and path parameters absolute from the project
# path before anything reads them (an Airflow worker runs elsewhere); ParameterCheckHook (next)
# refuses parameters that do not fit the schema before any other hook reads them; MemoryBudgetHook
# refuses a raw file too large for memory before anything reads it; RunSummaryHook prints the
# run's summary once everything else is done.
# SparkHooks starts a SparkSession only in an environment with Spark settings (conf/spark).
# AlertHook sends alerts (SNS, webhook) only when the `alerts` parameters enable them.
HOOKS = (
    TrackingServerHook(),
    StorageErrorHook(),
    MemoryBudgetHook(),
    RunSummaryHook(),
    SparkHooks(),
    AlertHook(),
    ParameterCheckHook(),
    ProjectPathsHook(),
)

# Installed plugins for which to disable hook auto-registration.
# DISABLE_HOOKS_FOR_PLUGINS = ("kedro-viz",)

# Class that manages the KedroSession.
# from kedro.framework.session import KedroSession
# SESSION_CLASS = KedroSession

# Class that manages storing KedroSession data.
# from kedro.framework.session.store import BaseSessionStore
# SESSION_STORE_CLASS = BaseSessionStore
# Keyword arguments to pass to the `SESSION_STORE_CLASS` constructor.
# SESSION_STORE_ARGS = {
#     "path": "./sessions"
# }

# Directory that holds configuration.
# CONF_SOURCE = "conf"

# Class that manages how configuration is loaded.
# from kedro.config import OmegaConfigLoader

# CONFIG_LOADER_CLASS = OmegaConfigLoader

# Keyword arguments to pass to the `CONFIG_LOADER_CLASS` constructor.
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments and `--params a.b=c` merge parameters key by key: with the default
    # destructive merge, a runtime `a.b` replaces the whole `a` block when the run's
    # environment has a parameters file (other keys of `a` vanish: KeyError).
    "merge_strategy": {"parameters": "soft"},
    # Spark properties of the `spark` environment (conf/spark/spark.yml; SparkHooks).
    "config_patterns": {"spark": ["spark*", "spark*/**"]},
    # `${oc.env:NAME,default}` in every file, not only credentials: conf/cloud takes its bucket
    # (globals.yml) and SNS topic (parameters_alerts.yml) from the environment, e.g. the GitHub
    # workflow's repository variables.
    "custom_resolvers": {"oc.env": oc.env},
    # "config_patterns": {
    #     "spark" : ["spark*/"],
    #     "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    # }
}

# Class that manages Kedro's library components.
# from kedro.framework.context import KedroContext
# CONTEXT_CLASS = KedroContext

# Class that manages the Data Catalog.
# from kedro.io import DataCatalog
# DATA_CATALOG_CLASS = DataCatalog

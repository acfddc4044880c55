"""Library warnings this project cannot fix, silenced one by one, each with its reason.

Everything else a run warns about is a finding to fix, not to filter. ``settings`` calls
``silence_known_warnings()``; Kedro imports settings before it loads plugins, so the filters
are in place before kedro-mlflow is imported.
"""

from __future__ import annotations

import importlib
import logging
import re
import warnings
from dataclasses import dataclass

#: Python warnings: (message pattern, emitting module pattern, category, why it cannot be
#: fixed here).
PYTHON_WARNINGS = (
    (
        r"register_new_resolver\(\) is deprecated",
        r"kedro(_mlflow)?\.",
        UserWarning,
        "kedro 1.7.0's OmegaConfigLoader and kedro-mlflow 2.0.3's hook register their resolvers "
        "(oc.env, globals, runtime_params, km.random_name) with the call omegaconf 2.4 "
        "deprecated; the project registers none. Gone once they call register_resolver().",
    ),
    (
        r"PySpark does not yet fully support pandas >= 3",
        r"pyspark\.",
        FutureWarning,
        "Kedro's pandera validator imports pandera.pyspark, which imports pyspark.pandas when "
        "the spark extra is installed, in every run, Spark or not. The project never uses "
        "pyspark.pandas (its Spark code is pyspark.sql with Arrow batches).",
    ),
)

#: Log records: (logger, message pattern, why it cannot be fixed here).
LOG_MESSAGES = (
    (
        "mlflow.utils.environment",
        r"Failed to resolve installed pip version",
        "uv environments carry no pip. MLflow then lists pip unpinned in the model's "
        "conda.yaml; the model's pip requirements are pinned explicitly and no conda env "
        "serves it.",
    ),
)

#: Warned when kedro-mlflow defines KedroPipelineModel (a PythonModel whose predict has no
#: type hints: kedro-mlflow 2.0.3's code). MLflow raises it under its own
#: ``simplefilter("once")``, which overrides any filter set here, so the import is made under
#: a recording ``catch_warnings`` that drops this warning and re-issues any other.
DEFINITION_WARNINGS = {
    "kedro_mlflow.mlflow": r"Add type hints to the `predict` method",
}


@dataclass(frozen=True)
class DropMessage(logging.Filter):
    """A logging filter dropping the records whose message matches ``pattern``."""

    pattern: str

    def filter(self, record: logging.LogRecord) -> bool:
        """False (drop) for a matching record."""
        return re.search(self.pattern, record.getMessage()) is None


def import_dropping_warning(module: str, pattern: str) -> None:
    """Import ``module``, dropping warnings that match ``pattern`` and re-issuing the others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importlib.import_module(module)
        except ImportError:  # not installed: nothing to define, nothing to silence
            return
    for warning in caught:
        if not re.search(pattern, str(warning.message)):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def silence_known_warnings(*, definitions: bool = True) -> None:
    """Install every filter above (idempotent); ``definitions=False`` leaves out the imports
    of ``DEFINITION_WARNINGS`` (their import configures Kedro's logging, which must happen
    outside their recording ``catch_warnings``)."""
    for message, module, category, _reason in PYTHON_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name, message, _reason in LOG_MESSAGES:
        logger = logging.getLogger(name)
        if DropMessage(message) not in logger.filters:
            logger.addFilter(DropMessage(message))
    for module, pattern in DEFINITION_WARNINGS.items() if definitions else ():
        import_dropping_warning(module, pattern)

"""The model's MLflow pyfunc flavour: what ``mlflow.pyfunc.load_model``, ``mlflow models serve``
and ``mlflow.pyfunc.spark_udf`` call.

The registered artifact is the BusynessForecaster; its ``python_function`` flavour names this
module as its loader, so a pyfunc user gets the server's behaviour instead of the bare
regressor: query rows in any form the server takes (UTC-aware or naive timestamps, ISO 8601
text, Unix seconds; a DataFrame, a list of row dicts or one dict), checked by the same rules
(``validate_queries``: a broken row is refused naming the column and the rule), and the same
answer columns (``h3_cell``, ``hour`` as ISO 8601 UTC text, ``predicted_busyness``, plus any
column ``predict_busyness`` adds), one row per query row, in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.queries import RequestError, validate_queries
from geo_busyness.schemas import HOUR, OPTIONAL_QUERY_COLUMNS, QUERY_COLUMNS

#: The ``loader_module`` written into the registered model's ``python_function`` flavour.
LOADER_MODULE = __name__
_KEPT = (*QUERY_COLUMNS, *OPTIONAL_QUERY_COLUMNS)


class BusynessPyfunc:
    """The busyness forecaster behind MLflow's pyfunc interface (``predict(data, params)``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        """The BusynessForecaster (what MLflow's ``PyFuncModel.get_raw_model`` returns)."""
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Answers to query rows, as the server answers them."""
        from geo_busyness.model.predict import predict_busyness  # noqa: PLC0415

        try:
            queries = validate_queries(as_frame(data))
        except RequestError as error:
            raise _invalid(error.message) from None
        answers = predict_busyness(self.model, queries).reset_index(drop=True)
        answers[HOUR] = iso_hours(answers[HOUR])
        return answers


def as_frame(data: Any) -> pd.DataFrame:
    """Query rows as a raw frame: a DataFrame as is, a dict of one row or of columns, a list of
    row dicts (only the query fields are kept)."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, dict):
        if data and all(
            isinstance(value, list | np.ndarray | pd.Series) for value in data.values()
        ):
            return pd.DataFrame(data)
        data = [data]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return pd.DataFrame([{key: row[key] for key in _KEPT if key in row} for row in data])
    raise _invalid(
        f"Expected query rows (a DataFrame, or dicts) with fields {list(QUERY_COLUMNS)};"
        f" got {type(data).__name__}."
    )


def iso_hours(hours: pd.Series) -> list[str]:
    """UTC hour starts as ISO 8601 text ('2026-01-05T12:00:00Z'), as the server writes them."""
    index = pd.DatetimeIndex(hours)
    values = index.asi8.astype(f"datetime64[{index.unit}]").astype("datetime64[s]")
    return np.datetime_as_string(values, unit="s", timezone="UTC").tolist()


def _invalid(message: str) -> Exception:
    """MLflow's "invalid input" error (``mlflow models serve`` answers it with 400)."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE  # noqa: PLC0415

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _load_pyfunc(path: str) -> BusynessPyfunc:
    """MLflow's pyfunc entry point: the pickled forecaster (loaded by the sklearn flavour's own
    loader, with its pickle policy) behind ``BusynessPyfunc``."""
    import mlflow.sklearn  # noqa: PLC0415

    return BusynessPyfunc(mlflow.sklearn._load_pyfunc(path).sklearn_model)  # noqa: SLF001

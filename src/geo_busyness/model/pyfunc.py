"""The model's MLflow pyfunc flavour: what ``mlflow.pyfunc.load_model``, ``mlflow models serve``
and ``mlflow.pyfunc.spark_udf`` call.

The registered artifact is the BusynessForecaster; its ``python_function`` flavour names this
module as its loader, so a pyfunc user gets the server's behaviour instead of the bare
regressor: query rows in any form the server takes (UTC-aware or naive timestamps, ISO 8601
text, Unix seconds; a DataFrame, a list of row dicts or one dict), checked by the same rules
(``validate_queries``: a broken row is refused naming the column and the rule), and the same
answer columns (``h3_cell``, ``hour`` as ISO 8601 UTC text, ``predicted_busyness``, plus any
column ``predict_busyness`` adds), one row per query row, in order.

Explanations as the server gives them: ``{"instances": [...], "explain": true}`` (or a query
dict holding ``"explain"``) or ``params={"explain": k}`` (the model's signature declares that
parameter, so ``mlflow models serve`` passes it on) add the top ``k`` SHAP contributions of
each answer as the server's CSV answer has them (``true``: ``EXPLAIN_TOP_K``; 0 to
``MAX_EXPLAIN``). The artifact is read by ``geo_busyness.model.loading`` (verified, never
unpickled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo_busyness.model.queries import RequestError, validate_model_queries
from geo_busyness.schemas import (
    EXPLAIN_FIELD,
    EXPLAIN_TOP_K,
    HOUR,
    MAX_EXPLAIN,
    OPTIONAL_QUERY_COLUMNS,
    QUERY_COLUMNS,
)

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

        data, asked = split_explain(data)
        # The signature fills params with the default (0): the body's own option comes first.
        top_k = explain_option((params or {}).get(EXPLAIN_FIELD) if asked is None else asked)
        try:
            queries = validate_model_queries(as_frame(data), self.model)
        except RequestError as error:
            raise _invalid(error.message) from None
        answers = predict_busyness(self.model, queries).reset_index(drop=True)
        if top_k:
            from geo_busyness.model.explain import explain_busyness  # noqa: PLC0415 - loads shap

            table = explain_busyness(self.model, queries, top_k).set_axis(answers.index)
            answers = pd.concat([answers, table], axis=1)
        answers[HOUR] = iso_hours(answers[HOUR])
        return answers


def split_explain(data: Any) -> tuple[Any, Any]:
    """The query rows of ``data`` and the explain option it carries (None when none): a dict
    ``{"instances": [...], "explain": ...}`` or a query dict holding ``"explain"``, as the
    server reads a JSON body."""
    if not isinstance(data, dict) or EXPLAIN_FIELD not in data:
        return data, None
    rest = {key: value for key, value in data.items() if key != EXPLAIN_FIELD}
    return rest.get("instances", rest), data[EXPLAIN_FIELD]


def explain_option(value: Any) -> int:
    """Contributions per answer asked by an explain value: ``True`` means ``EXPLAIN_TOP_K``,
    ``False``/None none, a whole number 0..``MAX_EXPLAIN`` that many."""
    if value is None or value is False:
        return 0
    if value is True:
        return EXPLAIN_TOP_K
    if isinstance(value, int | np.integer) and 0 <= value <= MAX_EXPLAIN:
        return int(value)
    raise _invalid(
        f"Invalid '{EXPLAIN_FIELD}' option {value!r}: send true (the top {EXPLAIN_TOP_K} feature"
        f" contributions of each answer), false, or a whole number from 0 to {MAX_EXPLAIN}."
    )


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


#: What MLflow writes beside a model it downloads from the registry (its name and version).
REGISTERED_MODEL_META = "registered_model_meta"


def _load_pyfunc(path: str) -> BusynessPyfunc:
    """MLflow's pyfunc entry point (``path``: the artifact folder): the forecaster, verified
    against its own record and against what MLflow recorded (``recorded_digest``)."""
    from geo_busyness.model.artifact import load_forecaster  # noqa: PLC0415

    folder = Path(path)
    return BusynessPyfunc(load_forecaster(folder, recorded_digest(folder.parent)))


def recorded_digest(model_dir: Path) -> str | None:
    """The digest MLflow recorded for a downloaded model directory: its registry version's
    (``registered_model_meta``, written by a ``models:/name/N`` or ``@alias`` download; a
    version without one is refused), else its logged model's (``model_id`` in ``MLmodel``)
    when the tracking store knows it and it carries one (a local save, a copy taken elsewhere
    or a model being logged has none: its own record is checked)."""
    import yaml  # noqa: PLC0415

    from geo_busyness.model.loading import DIGEST_TAG, MLMODEL, registry_digest  # noqa: PLC0415

    meta = model_dir / REGISTERED_MODEL_META
    if meta.is_file():
        registered = yaml.safe_load(meta.read_text()) or {}
        name, version = registered.get("model_name"), registered.get("model_version")
        if name and version:
            return registry_digest(f"models:/{name}/{version}")
    mlmodel = model_dir / MLMODEL
    model_id = (
        (yaml.safe_load(mlmodel.read_text()) or {}).get("model_id") if mlmodel.is_file() else None
    )
    if not model_id:
        return None
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    try:
        tags = MlflowClient().get_logged_model(model_id).tags or {}
    except Exception:  # noqa: BLE001 - another store, or none reachable: the own record stands
        return None
    return tags.get(DIGEST_TAG) or None

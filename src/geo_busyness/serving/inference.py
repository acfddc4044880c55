"""Entry points for AWS's prebuilt SKLearn container; packaged as ``code/inference.py``.

The container calls ``model_fn(model_dir)`` once, then per request
``output_fn(predict_fn(input_fn(body, content_type), model), accept)``. Each function only
delegates to the project's modules (bundled beside this file under ``code/geo_busyness``), so
the container parses, predicts and answers exactly as the project's own server does, including
the ``"explain"`` option of a JSON body (the top SHAP contributions of each answer).
"""

from __future__ import annotations

import os
import sys
from typing import Any

# The container puts code/ on sys.path; make sure of it when this file is loaded by path.
_CODE_DIR = os.path.dirname(os.path.abspath(__file__))
if _CODE_DIR not in sys.path:
    sys.path.append(_CODE_DIR)

import pandas as pd  # noqa: E402

from geo_busyness.model.counts_state import CountsFollower  # noqa: E402
from geo_busyness.model.loading import ENV_ARTIFACT_SHA256, load_model  # noqa: E402
from geo_busyness.model.predict import predict_busyness  # noqa: E402
from geo_busyness.model.queries import (  # noqa: E402
    DEFAULT_MAX_DISTANCE_KM,
    check_known_area,
    known_cells,
)
from geo_busyness.serving.config import ENV_MAX_DISTANCE_KM  # noqa: E402
from geo_busyness.serving.refresh import ENV_COUNTS_INTERVAL, ENV_COUNTS_STATE  # noqa: E402
from geo_busyness.serving.requests import (  # noqa: E402
    Invocation,
    RequestError,
    parse_invocation,
)
from geo_busyness.serving.responses import (  # noqa: E402
    Explained,
    encode_error,
    encode_predictions,
    explain_answers,
    response_type,
)

try:  # the SageMaker inference toolkit answers this error with its own status (4xx, not 500)
    from sagemaker_inference.errors import BaseInferenceToolkitError
except ImportError:  # outside the container
    BaseInferenceToolkitError = None


def model_fn(model_dir: str) -> CountsFollower:
    """The busyness model from the unpacked model.tar.gz (MLflow model files at its root):
    its sha256 checked (against ``ENV_ARTIFACT_SHA256`` too, when set) before any model state
    is read, and read without unpickling (``ArtifactIntegrityError`` when changed); it follows
    the counts state named by ``GEO_BUSYNESS_COUNTS_STATE`` (an ``s3://`` URI), looked at
    every ``GEO_BUSYNESS_COUNTS_INTERVAL`` seconds (60) in the request's own thread."""
    model = load_model(model_dir, os.environ.get(ENV_ARTIFACT_SHA256) or None)
    interval = float(os.environ.get(ENV_COUNTS_INTERVAL) or 60)
    return CountsFollower(model, os.environ.get(ENV_COUNTS_STATE) or None, interval)


def input_fn(request_body: bytes | str, request_content_type: str) -> Invocation:
    """Validated query rows and the request's ``explain`` option; a bad request raises an
    error carrying its 4xx status."""
    return _as_toolkit_error(parse_invocation, request_body, request_content_type)


def _as_toolkit_error(check: Any, *args: Any) -> Any:
    """``check(*args)``; a ``RequestError`` re-raised as the toolkit's error with its 4xx
    status (the toolkit answers with its body) inside the container."""
    try:
        return check(*args)
    except RequestError as exc:
        if BaseInferenceToolkitError is None:
            raise
        body = encode_error(exc.status, exc.message).decode()
        raise BaseInferenceToolkitError(exc.status, exc.message, body) from exc


def predict_fn(input_data: Invocation | pd.DataFrame, model: Any) -> pd.DataFrame | Explained:
    """``h3_cell``, ``hour``, ``predicted_busyness``, ``p10``/``p50``/``p90`` and
    ``horizon_hours`` per query row (forecast from the artifact's origin), with the top
    contributions of each when the request asked for them."""
    invocation = input_data if isinstance(input_data, Invocation) else Invocation(input_data)
    current = model.model() if isinstance(model, CountsFollower) else model
    # The server's area check (swapped coordinates, too far from every known cell), as 4xx.
    distance = float(os.environ.get(ENV_MAX_DISTANCE_KM) or DEFAULT_MAX_DISTANCE_KM)
    _as_toolkit_error(check_known_area, invocation.queries, known_cells(current), distance)
    answers = predict_busyness(current, invocation.queries)
    if not invocation.explain:
        return answers
    return explain_answers(current, invocation.queries, answers, invocation.explain)


def output_fn(prediction: pd.DataFrame | Explained, accept: str) -> tuple[bytes, str]:
    """The answer body and its media type (JSON ``{"predictions": [...]}`` or CSV)."""
    media = response_type(accept)
    if isinstance(prediction, Explained):
        return encode_predictions(prediction.answers, media, prediction.explanations), media
    return encode_predictions(prediction, media), media


__all__ = ["RequestError", "input_fn", "model_fn", "output_fn", "predict_fn"]

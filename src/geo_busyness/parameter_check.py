"""The run's parameters checked against ``parameter_schema`` (``hooks.ParameterCheckHook``,
before anything runs): ``check_parameters`` raises one ``ParameterError`` with a line per
wrong key (type, range, an unknown key with the closest known one). The estimators' keyword
arguments (``modeling.*.params``, ``grid``, ``forest``) are checked against scikit-learn's
signatures, imported only when a block names some.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from geo_busyness.errors import ExplainedError, one_line
from geo_busyness.parameter_schema import MOVED, Parameters

__all__ = ["ParameterError", "check_parameters", "parameter_problems"]

#: Where a user fixes a parameter; the keys themselves are listed in docs/configuration.md.
NEXT_STEP = (
    "fix it in conf/<env>/parameters_<block>.yml or in --params"
    " (every file and key: docs/configuration.md)."
)


class ParameterError(ExplainedError):
    """Parameters that do not fit the schema; the message names every wrong key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems), NEXT_STEP)
        self.problems = [one_line(problem) for problem in problems]

    @property
    def lines(self) -> list[str]:
        """One line per wrong key."""
        return self.problems


# ---------------------------------------------------------------- messages
def _path(location: tuple[Any, ...]) -> str:
    """``("modeling", "candidates", 2)`` -> ``modeling.candidates[2]``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text


def _inner(annotation: Any) -> Any:
    """What ``Annotated[X, ...]`` and ``X | None`` hold (a union of several: itself)."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
        return annotation


def _model_at(location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The block model holding the key at ``location`` (None inside a free-form mapping)."""
    current: Any = Parameters
    for part in location[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            current = _inner(field.annotation) if field else None
        elif get_origin(current) in (list, dict):
            current = _inner(get_args(current)[-1])
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def closest(word: str, candidates: list[str]) -> str | None:
    """The candidate most like ``word`` (difflib), if any is alike enough."""
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key(location: tuple[Any, ...], known: list[str]) -> str:
    """``Unknown parameter a.b (did you mean a.c?)``, or where a moved key went."""
    path = _path(location)
    if path in MOVED:
        return f"Unknown parameter {path}: it moved to {MOVED[path]}."
    guess = closest(str(location[-1]), known)
    if guess:
        hint = f" (did you mean {_path((*location[:-1], guess))}?)"
    else:
        hint = f" (known: {', '.join(known)})" if known else ""
    return f"Unknown parameter {path}{hint}."


def _choices(expected: str) -> list[str]:
    """``"'a', 'b' or 'c'"`` (a literal error's context) -> ``["a", "b", "c"]``."""
    return re.findall(r"'([^']*)'", expected)


def _shown(value: Any) -> str:
    """``=value`` as YAML would write it; nothing for a mapping or a long value."""
    if isinstance(value, Mapping):
        return ""
    if value is None or isinstance(value, bool):
        text = "null" if value is None else str(value).lower()
    else:
        text = repr(value)
    return f"={text}" if len(text) <= 60 else ""


#: pydantic's wording -> the schema's, for a block given where a mapping belongs.
_MAPPING_EXPECTED = ("model_type", "model_attributes_type", "dict_type")


def describe(error: Mapping[str, Any]) -> str:
    """One sentence for one pydantic error, naming the key."""
    location, kind = tuple(error["loc"]), error["type"]
    if kind == "extra_forbidden":
        model = _model_at(location)
        return unknown_key(location, list(model.model_fields) if model else [])
    if location and location[-1] == "[key]":  # a key of a mapping whose keys are fixed
        return unknown_key(location[:-1], _choices(error.get("ctx", {}).get("expected", "")))
    if kind == "missing":
        return f"Parameter {_path(location)} is missing."
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in _MAPPING_EXPECTED:
        message = "should be a mapping of keys to values"
    elif message.startswith("Input should be "):
        message = "should be " + message.removeprefix("Input should be ")
    if kind == "literal_error" and isinstance(error.get("input"), str):
        guess = closest(error["input"], _choices(error["ctx"]["expected"]))
        message += f" (did you mean {guess!r}?)" if guess else ""
    return f"Parameter {_path(location)}{_shown(error.get('input'))} {message}."


# ---------------------------------------------------------------- estimators
#: Estimator keyword arguments: the parameters path -> (scikit-learn class, keys the project
#: sets itself). Checked against the class's signature (scikit-learn is imported only here).
ESTIMATOR_ARGUMENTS = {
    ("modeling", "gradient_boosting", "params"): (
        "HistGradientBoostingRegressor",
        ("loss", "early_stopping", "random_state"),
    ),
    ("modeling", "random_forest", "params"): (
        "RandomForestRegressor",
        ("criterion", "random_state"),
    ),
    ("modeling", "random_forest", "grid"): ("RandomForestRegressor", ("criterion", "random_state")),
    ("modeling", "leaky_reference_protocol", "forest"): (
        "RandomForestRegressor",
        ("random_state", "n_jobs"),
    ),
}


def _estimator_keys(class_name: str) -> list[str]:
    from sklearn import ensemble  # noqa: PLC0415 - ~1 s; only when a block names arguments

    return list(inspect.signature(getattr(ensemble, class_name)).parameters)


def estimator_problems(params: Mapping[str, Any]) -> list[str]:
    """Unknown or project-set keyword arguments of the estimators, one sentence each."""
    problems = []
    for location, (class_name, reserved) in ESTIMATOR_ARGUMENTS.items():
        arguments: Any = params
        for part in location:
            arguments = arguments.get(part) if isinstance(arguments, Mapping) else None
        if not isinstance(arguments, Mapping):
            continue  # absent, or not a mapping (the schema names that)
        known = [key for key in _estimator_keys(class_name) if key not in reserved]
        for key in arguments:
            path = f"{_path(location)}.{key}"
            if key in reserved:
                problems.append(f"Parameter {path} is set by the project; leave it out.")
            elif key not in known:
                guess = closest(str(key), known)
                hint = f" (did you mean {_path(location)}.{guess}?)" if guess else ""
                problems.append(f"Unknown {class_name} argument {path}{hint}.")
    return problems


# ---------------------------------------------------------------- the check
def parameter_problems(params: Mapping[str, Any]) -> list[str]:
    """Every problem of ``params`` (the merged parameters), one sentence each; [] if none."""
    try:
        Parameters.model_validate(dict(params))
    except ValidationError as error:
        problems = [describe(item) for item in error.errors(include_url=False)]
    else:
        problems = []
    return problems + estimator_problems(params)


def check_parameters(params: Mapping[str, Any]) -> None:
    """Raise ``ParameterError`` naming every wrong key of ``params``; nothing if all fit."""
    problems = parameter_problems(params)
    if problems:
        raise ParameterError(problems)

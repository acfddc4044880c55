"""parameter_schema / parameter_check: every block checked before anything runs, each wrong
key named in one line (type, range, an unknown key with the closest known one)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, get_args

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from geo_busyness import parameter_schema as schema
from geo_busyness import settings
from geo_busyness.parameter_check import ParameterError, check_parameters, parameter_problems
from geo_busyness.testing import PROJECT_ROOT


def _load(env: str) -> dict[str, Any]:
    """The project's merged parameters in ``env``, as a run loads them."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS)
    return loader["parameters"]


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return _load("local")


def _with(params: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``params`` with the dotted ``key`` set to ``value`` (as ``--params key=value`` does)."""
    changed = copy.deepcopy(params)
    *parents, leaf = key.split(".")
    block = changed
    for part in parents:
        block = block.setdefault(part, {})
    block[leaf] = value
    return changed


@pytest.mark.parametrize("env", ["local", "cloud", "spark"])
def test_every_environment_passes(env):
    """conf/base and each environment on top of it (a new parameter needs its schema field)."""
    assert parameter_problems(_load(env)) == []


def test_the_runtime_data_root_passes(base):
    assert parameter_problems({**base, "data_root": "s3://bucket/prefix"}) == []


@pytest.mark.parametrize("version", [2, "2"])
def test_a_model_version_is_a_number_or_the_registrys_digits(base, version):
    """MLflow's client gives versions as strings: the retraining job passes them on as given."""
    assert parameter_problems(_with(base, "deployment.model_version", version)) == []
    assert parameter_problems(_with(base, "deployment.model_version", "v2")) != []


# ---------------------------------------------------------------- issue #26's mistakes
@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        (
            "feature_engineering.h3_resolution",
            "abc",
            "Parameter feature_engineering.h3_resolution='abc' should be a valid integer.",
        ),
        (
            "data_processing.max_rejected_fraction",
            "high",
            "Parameter data_processing.max_rejected_fraction='high' should be a valid number.",
        ),
        (
            "inference.horizon_hour",
            48,
            "Unknown parameter inference.horizon_hour (did you mean inference.horizon_hours?).",
        ),
    ],
)
def test_the_issues_mistakes_name_their_key(base, key, value, line):
    assert parameter_problems(_with(base, key, value)) == [line]


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        (
            "feature_engineering.h3_resolution",
            16,
            "Parameter feature_engineering.h3_resolution=16 should be less than or equal to 15.",
        ),
        (
            "data_processing.max_rejected_fraction",
            1.5,
            "Parameter data_processing.max_rejected_fraction=1.5 should be less than or equal"
            " to 1.",
        ),
        (
            "feature_engineering.validation_days",
            True,
            "Parameter feature_engineering.validation_days=true should be a valid integer.",
        ),
        (
            "modelling",
            {"min_r2": 0.5},
            "Unknown parameter modelling (did you mean modeling?).",
        ),
        (
            "deployment.target",
            "sagemakr",
            "Parameter deployment.target='sagemakr' should be 'local' or 'sagemaker'"
            " (did you mean 'sagemaker'?).",
        ),
        (
            "modeling.candidates",
            ["seasonal_naive", "random_forrest"],
            "Parameter modeling.candidates[1]='random_forrest' should be",
        ),
        (
            "monitoring.thresholds.psi_by_feature",
            {"hour_of_dy": 0.05},
            "Unknown parameter monitoring.thresholds.psi_by_feature.hour_of_dy"
            " (did you mean monitoring.thresholds.psi_by_feature.hour_of_day?).",
        ),
        (
            "deployment.sagemaker.termination_wait_seconds",
            60,
            "Unknown parameter deployment.sagemaker.termination_wait_seconds: it moved to"
            " deployment.sagemaker.rollout.termination_wait_seconds.",
        ),
        (
            "data_processing.source_timezone",
            "Mars/Base",
            "Parameter data_processing.source_timezone='Mars/Base' is not a time zone name",
        ),
        (
            "inference.start",
            "yesterday",
            "Parameter inference.start='yesterday' is not an ISO 8601 time",
        ),
        (
            "data_processing.column_mapping.courier_lat",
            None,
            "Parameter data_processing.column_mapping.courier_lat=null should be a valid string.",
        ),
        (
            "data_generation.pickup_delay_minutes",
            [40, 5],
            "Parameter data_generation.pickup_delay_minutes=[40, 5] needs [low, high] with"
            " low <= high.",
        ),
        ("modeling.n_jobs", 0, "Parameter modeling.n_jobs=0 must be a whole number other than 0"),
        ("reporting", 5, "Parameter reporting=5 should be a mapping of keys to values."),
        (
            "modeling.random_forest.params.n_estimator",
            5,
            "Unknown RandomForestRegressor argument modeling.random_forest.params.n_estimator"
            " (did you mean modeling.random_forest.params.n_estimators?).",
        ),
        (
            "modeling.gradient_boosting.params.loss",
            "squared_error",
            "Parameter modeling.gradient_boosting.params.loss is set by the project; leave it out.",
        ),
    ],
)
def test_types_ranges_and_unknown_keys_name_the_key(base, key, value, line):
    (problem,) = parameter_problems(_with(base, key, value))
    assert problem.startswith(line)


def test_a_missing_required_key_is_named(base):
    params = copy.deepcopy(base)
    del params["inference"]["horizon_hours"]
    assert parameter_problems(params) == ["Parameter inference.horizon_hours is missing."]


def test_every_wrong_key_gets_its_own_line(base, capsys):
    params = _with(_with(base, "inference.horizon_hour", 48), "reporting.max_scatter_points", -1)
    with pytest.raises(ParameterError) as raised:
        check_parameters(params)
    raised.value.show()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("Error: Unknown parameter inference.horizon_hour ")
    assert lines[1].startswith("Error: Parameter reporting.max_scatter_points=-1 should be")
    assert lines[2].startswith("Next: fix it in conf/<env>/parameters_<block>.yml")
    assert len(lines) == 3


def test_the_shipped_parameters_raise_nothing(base):
    check_parameters(base)


# ---------------------------------------------------------------- lists kept in step
def _literal(annotation: Any) -> set[str]:
    return set(get_args(annotation))


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def _dataclass_fields(kind: type) -> set[str]:
    return {item.name for item in dataclasses.fields(kind)}


def test_the_schemas_names_match_the_code_that_reads_them():
    """The schema repeats names so that it imports no pipeline; these must stay equal."""
    from geo_busyness.model.forecaster import EXPOSURES, METHODS  # noqa: PLC0415
    from geo_busyness.operations.alerts.channels import (  # noqa: PLC0415
        AlertConfig,
        SnsSettings,
        WebhookSettings,
    )
    from geo_busyness.operations.alerts.message import EVENTS  # noqa: PLC0415
    from geo_busyness.pipelines.data_generation.faults import FAULT_TO_REASON  # noqa: PLC0415
    from geo_busyness.pipelines.deployment.nodes import TARGETS  # noqa: PLC0415
    from geo_busyness.pipelines.deployment.rollout import STRATEGIES  # noqa: PLC0415
    from geo_busyness.pipelines.deployment.sagemaker import MOVED, SageMakerConfig  # noqa: PLC0415
    from geo_busyness.pipelines.monitoring.nodes import (  # noqa: PLC0415
        CATEGORICAL_FEATURES,
        NUMERIC_FEATURES,
    )
    from geo_busyness.schemas import CANONICAL_COLUMNS, REQUIRED_COLUMNS  # noqa: PLC0415

    assert _literal(schema.Method) == set(METHODS)
    assert _literal(schema.Exposure) == set(EXPOSURES)
    assert _literal(schema.EventFeature) == {*NUMERIC_FEATURES, *CATEGORICAL_FEATURES}
    assert _literal(schema.AlertEvent) == set(EVENTS)
    assert _literal(schema.Target) == set(TARGETS)
    assert _literal(schema.Rollout.model_fields["strategy"].annotation) == set(STRATEGIES)
    assert _fields(schema.DirtyMix) == set(FAULT_TO_REASON)
    assert _fields(schema.ColumnMapping) == set(CANONICAL_COLUMNS)
    required = {n for n, f in schema.ColumnMapping.model_fields.items() if f.is_required()}
    assert required == set(REQUIRED_COLUMNS)
    assert _fields(schema.SageMaker) == _dataclass_fields(SageMakerConfig)
    assert schema.MOVED == {
        f"deployment.sagemaker.{old}": f"deployment.sagemaker.{new}" for old, new in MOVED.items()
    }
    assert _fields(schema.Alerts) == _dataclass_fields(AlertConfig)
    assert _fields(schema.SnsAlerts) == _dataclass_fields(SnsSettings)
    assert _fields(schema.WebhookAlerts) == _dataclass_fields(WebhookSettings)

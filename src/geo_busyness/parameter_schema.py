"""One schema for every parameter block (``conf/<env>/parameters_*.yml`` merged with
``--params``): a pydantic model per block, each refusing unknown keys and checking types
strictly (the nodes get the values as written, so a string where a number belongs is an error
here, not a ``TypeError`` in a node) and ranges. ``parameter_check`` checks a run's
parameters against it before anything runs.

A new parameter needs its field here: ``tests/test_parameter_schema.py`` loads every
environment's parameters and fails until it has one. Lists of names that live elsewhere
(forecasters, monitoring features, alert events...) are repeated here so that this module
imports no pipeline; the same test keeps them in step.
"""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["MOVED", "Block", "Parameters"]


# ---------------------------------------------------------------- value types
def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a time zone name (IANA, e.g. America/Regina or UTC)") from None
    return value


def _moment(value: str) -> str:
    import pandas as pd  # noqa: PLC0415 - parsed as the nodes parse it; pandas is loaded by then

    try:
        parsed = pd.Timestamp(value.strip())
    except ValueError:
        parsed = None
    if parsed is None or pd.isna(parsed):
        raise ValueError("is not an ISO 8601 time (e.g. 2026-03-02T12:00:00Z or 2026-03-02 12:00)")
    return value


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("must be a whole number other than 0 (-1: every core)")
    return value


def _low_to_high(value: list[float]) -> list[float]:
    if value[0] > value[1]:
        raise ValueError("needs [low, high] with low <= high")
    return value


Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=1)]
NonNegativeCount = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]
Moment = Annotated[str, AfterValidator(_moment)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
#: A registered model version: a number, or its digits as MLflow's client gives them ("2").
Version = Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[1-9][0-9]*$")]

#: Forecasters (``model.forecaster.METHODS``; a test keeps the lists in step).
Method = Literal[
    "seasonal_naive",
    "level_adjusted",
    "recent_level",
    "pooled_level",
    "gradient_boosting",
    "random_forest",
]
Exposure = Literal["profile", "level_adjusted"]
ChallengeMetric = Literal["gate_loss", "mae", "rmse", "mean_poisson_deviance", "r2"]
#: Monitoring's event features (``pipelines/monitoring/nodes.py``).
EventFeature = Literal[
    "courier_lat",
    "courier_lon",
    "Hdist_to_restaurant",
    "dist_to_restaurant",
    "hour_of_day",
    "day_of_week",
    "cell",
]
Target = Literal["local", "sagemaker"]
AlertEvent = Literal[
    "retrain_recommended",
    "gate_failed",
    "deployment_rolled_back",
    "pipeline_failed",
    "retraining_failed",
    "challenger_promoted",
    "challenger_rejected",
    "serving_swap_refused",
]


class Block(BaseModel):
    """A parameter block: unknown keys refused, values taken as written (no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Area(Block):
    lat_min: Latitude
    lat_max: Latitude
    lon_min: Longitude
    lon_max: Longitude

    @model_validator(mode="after")
    def _ordered(self) -> Area:
        if self.lat_min >= self.lat_max or self.lon_min >= self.lon_max:
            raise ValueError("needs lat_min < lat_max and lon_min < lon_max")
        return self


# ---------------------------------------------------------------- data_generation
class Demand(Block):
    dispersion: Positive
    day_shock_sigma: NonNegative
    day_shock_persistence: Annotated[float, Field(ge=0, lt=1)] = 0.0
    trend_per_week: float
    night_level: NonNegative


class DirtyMix(Block):
    """Relative weights of the injected faults (``data_generation.faults.FAULT_TO_REASON``)."""

    missing_value: NonNegative = 0
    coordinates_out_of_range: NonNegative = 0
    swapped_coordinates: NonNegative = 0
    unparsable_timestamp: NonNegative = 0
    future_timestamp: NonNegative = 0
    ping_before_order_creation: NonNegative = 0
    duplicate_order: NonNegative = 0


class NewDistrict(Block):
    share: Annotated[float, Field(gt=0, le=1)] = 0.15
    n_restaurants: Count = 15
    centre: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None


class Shift(Block):
    new_district: NewDistrict | None = None
    evening_demand_factor: NonNegative = 1.0
    evening_hours: Annotated[
        list[Annotated[int, Field(ge=0, le=24)]], Field(min_length=2, max_length=2)
    ] = [17, 22]
    level_factor: Positive = 1.0
    swapped_coordinates_share: Fraction = 0.0


class DataGeneration(Block):
    """``data_generation``: conf/base/parameters_data_generation.yml."""

    seed: Seed
    start: Moment
    weeks: Count
    n_events: Count
    city: Area
    n_restaurants: Count
    n_districts: Count
    district_spread_deg: Positive
    n_couriers: Count
    demand: Demand
    pickup_delay_minutes: Annotated[
        list[NonNegative], Field(min_length=2, max_length=2), AfterValidator(_low_to_high)
    ]
    ping_jitter_m: NonNegative
    dirty_fraction: Fraction
    dirty_mix: DirtyMix
    recent_weeks: Count = 1
    n_queries: NonNegativeCount = 2000
    shift: Shift | None = None


# ---------------------------------------------------------------- data_processing
class ColumnMapping(Block):
    """Canonical column -> the raw table's column (``schemas.CANONICAL_COLUMNS``); the first
    three are required, the others null when the source lacks them."""

    courier_location_timestamp: Name
    courier_lat: Name
    courier_lon: Name
    courier_id: Name | None = None
    order_number: Name | None = None
    order_created_timestamp: Name | None = None
    restaurant_lat: Name | None = None
    restaurant_lon: Name | None = None


class AreaLearning(Block):
    """``data_processing.learned_service_area`` (``cleaning_rules.SERVICE_AREA_RULE``)."""

    quantile: Annotated[float, Field(ge=0, lt=0.5)]
    margin_km: NonNegative


class DataProcessing(Block):
    """``data_processing``: conf/base/parameters_data_processing.yml."""

    column_mapping: ColumnMapping
    source_timezone: TimeZone
    timestamp_format: Name
    service_area: Area | None = None
    learned_service_area: AreaLearning | None = None
    as_of: Moment | None = None
    max_rejected_fraction: Fraction
    memory_limit_mb: Positive | None = None


# ---------------------------------------------------------------- feature_engineering
class FeatureEngineering(Block):
    """``feature_engineering``: conf/base/parameters_feature_engineering.yml."""

    h3_resolution: Annotated[int, Field(ge=0, le=15)]
    validation_days: Count
    test_days: Count
    start: Moment | None = None
    end: Moment | None = None
    n_clusters: Count
    random_state: Seed
    # Read when present (model.features.feature_params); not in the shipped file.
    lags_hours: list[Count] | None = None
    exclude_features: list[Name] | None = None
    horizon_hours: Count | None = None


# ---------------------------------------------------------------- modeling
class ChampionChallenge(Block):
    alias: Name
    metric: ChallengeMetric
    min_improvement: float  # relative; below 0 accepts a slightly worse challenger


class ForecasterSettings(Block):
    shrink_weeks: NonNegative
    base_floor: Positive
    exposure: Exposure = "profile"
    max_train_rows: Count
    exclude_features: list[Name] | None = None


class LearnedSettings(Block):
    """A learned candidate: its estimator's keyword arguments, grid and sample size."""

    max_train_rows: Count | None = None
    cv_splits: Annotated[int, Field(ge=2)] = 3
    params: dict[str, Any] | None = None
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None


class LeakyReferenceProtocol(Block):
    test_size: Annotated[float, Field(gt=0, lt=1)]
    max_rows: Count | None = None
    forest: dict[str, Any]


class Modeling(Block):
    """``modeling``: conf/base/parameters_modeling.yml."""

    registered_model_name: Name
    registry_alias: Name
    min_r2: float  # above 1 no model passes (tests use it to force a failed gate)
    gate_noise_z: NonNegative = 2.0
    gate_min_bucket_rows: NonNegativeCount = 1000
    register_rejected: bool = False
    champion_challenge: ChampionChallenge
    candidates: Annotated[list[Method], Field(min_length=1)]
    validation_folds: Count = 3
    learned_min_train_days: NonNegativeCount = 7
    selection_margin: NonNegative = 0.005
    tuning_noise_z: NonNegative = 1.0
    holidays_country: Annotated[str, Field(min_length=2)] | None = None
    random_state: Seed
    n_jobs: Annotated[int, AfterValidator(_not_zero)]
    forecaster: ForecasterSettings
    gradient_boosting: LearnedSettings | None = None
    random_forest: LearnedSettings | None = None
    permutation_repeats: Count
    leaky_reference_protocol: LeakyReferenceProtocol


# ---------------------------------------------------------------- registry readers
class RegistryChoice(Block):
    """The version to use: ``model_version`` if set, else the first alias that exists."""

    registered_model_name: Name
    model_version: Version | None = None
    aliases: list[Name]


class Inference(RegistryChoice):
    """``inference``: conf/base/parameters_inference.yml."""

    horizon_hours: Count
    start: Moment | None = None
    max_rejected_fraction: Fraction
    explain_top_k: NonNegativeCount = 0


class MonitoringThresholds(Block):
    psi: NonNegative
    psi_by_feature: dict[EventFeature, NonNegative] | None = None
    ks_d: Fraction | None = None
    unseen_cell_event_share: Fraction
    busyness_psi: NonNegative
    prediction_psi: NonNegative
    reject_share_increase_pp: NonNegative
    mae_increase: NonNegative
    r2_drop: NonNegative
    level_change: NonNegative
    level_p_value: Fraction
    prediction_bias: NonNegative


class Monitoring(RegistryChoice):
    """``monitoring``: conf/base/parameters_monitoring.yml."""

    recent_max_rejected_fraction: Fraction
    bins: Annotated[int, Field(ge=2)]
    event_features: list[EventFeature]
    thresholds: MonitoringThresholds


# ---------------------------------------------------------------- reporting
class Explanations(Block):
    rows: Count
    features: Count


class ReportingOutputs(Block):
    current_dir: Name
    registered_model_name: Name
    champion_alias: Name
    png_dpi: Count = 110


class Reporting(Block):
    """``reporting``: conf/base/parameters_reporting.yml."""

    display_timezone: TimeZone | None = None
    map_hour: Moment | None = None
    max_scatter_points: Count
    random_state: Seed
    explanations: Explanations
    outputs: ReportingOutputs


# ---------------------------------------------------------------- deployment
class Rollout(Block):
    strategy: Literal["canary", "linear", "all_at_once"] = "canary"
    canary_size_percent: Annotated[int, Field(ge=1, le=50)] = 10
    linear_step_percent: Annotated[int, Field(ge=10, le=50)] = 20
    wait_interval_seconds: Annotated[int, Field(ge=0, le=3600)] = 600
    termination_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    alarms: list[Name] = []


class SageMaker(Block):
    region: Name | None = None
    bucket: Name | None = None
    prefix: str = "geo-busyness/models"
    role_arn: Name | None = None
    image_uri: Name | None = None
    framework: Name | None = "SKLEARN"
    framework_version: Name | None = None
    model_package_group: Name = "geo-busyness"
    endpoint_name: Name = "geo-busyness"
    instance_type: Name = "ml.m5.large"
    initial_instance_count: Count = 1
    wait_timeout_seconds: Positive = 1800
    poll_seconds: NonNegative = 15
    environment: dict[str, str] = {}
    rollout: Rollout = Rollout()


class LocalTarget(Block):
    model_store: Name
    shadow: bool = False
    shadow_queue_size: Count = 100


class Deployment(Block):
    """``deployment``: conf/base/parameters_deployment.yml."""

    target: Target
    registered_model_name: Name
    aliases: list[Name]
    model_version: Version | None = None
    champion_alias: Name
    gate_tag: Name
    gate_passed_value: Name
    package_dir: Name
    smoke_test_query: dict[str, Any] | Literal["model"] | None = None
    local: LocalTarget
    sagemaker: SageMaker
    fail_on_rollback: bool = False


# ---------------------------------------------------------------- the rest
class Shadow(Block):
    """``shadow``: conf/base/parameters_shadow.yml."""

    distinct_cell_hours: bool = True


class Ingestion(Block):
    """``ingestion``: conf/base/parameters_ingestion.yml."""

    max_rejected_fraction: Fraction
    counts_state_weeks: Count


class Retraining(Block):
    """``retraining``: conf/base/parameters_retraining.yml."""

    force: bool = False
    deployment_target: Target | None = None
    lock_file: Name


class SnsAlerts(Block):
    topic_arn: Name | None = None
    region: Name | None = None
    endpoint_url: Name | None = None
    credentials_key: Name | None = None
    timeout_seconds: Positive = 5


class WebhookAlerts(Block):
    credentials_key: Name | None = "alerts_webhook"
    timeout_seconds: Positive = 5
    retries: NonNegativeCount = 1
    retry_wait_seconds: NonNegative = 1


class Alerts(Block):
    """``alerts``: conf/base/parameters_alerts.yml."""

    enabled: bool = False
    project: Name = "geo-busyness"
    events: list[AlertEvent] | None = None
    sns: SnsAlerts = SnsAlerts()
    webhook: WebhookAlerts = WebhookAlerts()


class Parameters(Block):
    """Every block; a block that is absent is not checked (its pipeline fails on its own)."""

    data_generation: DataGeneration | None = None
    data_processing: DataProcessing | None = None
    feature_engineering: FeatureEngineering | None = None
    modeling: Modeling | None = None
    inference: Inference | None = None
    monitoring: Monitoring | None = None
    reporting: Reporting | None = None
    deployment: Deployment | None = None
    shadow: Shadow | None = None
    retraining: Retraining | None = None
    ingestion: Ingestion | None = None
    alerts: Alerts | None = None
    # Runtime only: where every file dataset lives (`--params data_root=s3://...`).
    data_root: Name | None = None


#: Keys that moved: the old path -> the new one (named in the error instead of a guess).
MOVED = {
    "deployment.sagemaker.rollback_alarms": "deployment.sagemaker.rollout.alarms",
    "deployment.sagemaker.termination_wait_seconds": (
        "deployment.sagemaker.rollout.termination_wait_seconds"
    ),
}

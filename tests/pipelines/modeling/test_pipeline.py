"""The modeling pipeline end to end: the gate both ways, the registered artifact, reproducibility."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.geo import cell_centres, cell_ids
from geo_busyness.model.loading import load_model
from geo_busyness.model.predict import predict_busyness
from geo_busyness.pipelines.deployment.nodes import DeploymentRefused, check_deployable
from geo_busyness.pipelines.modeling.candidates import fit_candidates, select_forecaster
from geo_busyness.pipelines.modeling.nodes import backtest_test_window, refit_chosen
from geo_busyness.pipelines.modeling.registration import REJECTED_OVERRIDE
from geo_busyness.testing import run_report
from tests.conftest import (
    SMALL_TRAINING,
    TrainedProject,
    copy_project,
    project_mlflow,
    run_kedro,
)
from tests.pipelines.conftest import NO_CHAMPION

MODEL_NAME = "geo-busyness"


def latest_model_dir(data: Path) -> Path:
    """The last run's model folder (``busyness_model`` is versioned: one folder per run)."""
    return sorted((data / "06_models" / "busyness_model").glob("*/busyness_model"))[-1]


@pytest.fixture(scope="module")
def failed_gate(trained_project: TrainedProject, tmp_path_factory: pytest.TempPathFactory):
    """The modeling pipeline again on a copy of the trained project, with an unreachable min_r2."""
    project = copy_project(
        trained_project.path, tmp_path_factory.mktemp("failed") / "project", with_mlflow=True
    )
    params = {**SMALL_TRAINING, "modeling": {**SMALL_TRAINING["modeling"], "min_r2": 1.01}}
    run_kedro(project, ["modeling"], params)
    return project, run_report(project)


def test_passing_gate_registers_a_challenger_with_tags(trained_project):
    report = trained_project.report
    assert report["gate"]["passed"], report["gate"]
    assert report["gate"]["min_r2"] == 0.6  # the conf/base gate, not an override
    assert report["test"]["model"]["r2"] >= 0.6
    assert all(row["model"]["gate"] != "worse" for row in report["test"]["backtest"])
    model_mae, naive_mae = (report["test"][k]["mae"] for k in ("model", "seasonal_naive_baseline"))
    chosen = report["model_selection"]["chosen"]
    assert model_mae < naive_mae or (model_mae == naive_mae and chosen == "seasonal_naive")
    assert {b["verdict"] for b in report["gate"]["buckets"]} <= {"ok", "not judged"}
    registration = report["registration"]
    assert registration["registered"] and registration["alias"] == "challenger"
    with project_mlflow(trained_project.path) as client:
        version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
        run = client.get_run(registration["run_id"])
    assert str(version.version) == registration["version"]
    assert float(version.tags["test_r2"]) == pytest.approx(report["test"]["model"]["r2"])
    assert float(version.tags["baseline_mae"]) == pytest.approx(
        report["test"]["seasonal_naive_baseline"]["mae"]
    )
    assert version.tags["window_test_start"] == report["time_windows"]["test_start"]
    assert version.tags["window_train_end"] == report["time_windows"]["train_end"]
    assert version.tags["git_revision"]  # "unknown" in the temp copy, a sha in the repo
    assert version.tags["origin"] == report["time_windows"]["test_end"]
    assert re.fullmatch(r"[0-9a-f]{64}", version.tags["params_sha256"])
    assert run.data.tags["gate"] == "passed"
    assert run.data.metrics["evaluation_metrics.test_r2"] == pytest.approx(
        report["test"]["model"]["r2"]
    )
    assert "evaluation_metrics.leaky_reference_protocol_r2" in run.data.metrics
    # The run keeps its own report (versioned); the reporting pipeline logs it to MLflow with
    # the run's other outputs (tests/pipelines/reporting/test_versioned_outputs.py).
    runs = trained_project.path / "data/08_reporting/runs/evaluation_report.json"
    (kept,) = runs.glob("*/evaluation_report.json")
    assert json.loads(kept.read_text())["registration"] == registration


def test_registered_version_has_a_model_card(trained_project):
    """The card (JSON + markdown) is a run artifact and the version's description in the UI."""
    report = trained_project.report
    version_number = report["registration"]["version"]
    with project_mlflow(trained_project.path) as client:
        run_id = report["registration"]["run_id"]
        card_files = {a.path for a in client.list_artifacts(run_id, "model_card")}
        card = mlflow.artifacts.load_dict(f"runs:/{run_id}/model_card/model_card.json")
        description = client.get_model_version(MODEL_NAME, version_number).description
    assert card_files == {"model_card/model_card.json", "model_card/model_card.md"}
    assert card["model"]["version"] == version_number
    assert card["data_windows"] == report["time_windows"]
    assert card["metrics_test_window"]["model"] == report["test"]["model"]
    assert card["metrics_test_window"]["seasonal_naive_baseline"]["mae"] == pytest.approx(
        report["test"]["seasonal_naive_baseline"]["mae"]
    )
    assert card["gate"]["passed"] is True and card["limits"] and card["intended_use"]
    assert report["time_windows"]["test_end"] in card["data_used"]["served"]
    assert report["time_windows"]["test_start"] in card["data_used"]["evidence"]
    assert f"version {version_number}" in description and "Data each step used" in description
    assert "seasonal-naive baseline" in description


def test_feature_importance_covers_every_model_feature(trained_project):
    data = trained_project.path / "data"
    table = pd.read_parquet(data / "08_reporting" / "modeling" / "feature_importance.parquet")
    model = load_model(latest_model_dir(data))
    if model.regressor_ is None:  # a statistical baseline won: nothing to permute
        assert table.empty
        return
    assert set(table["feature"]) == set(model.feature_names_)
    assert table["importance_mean"].is_monotonic_decreasing


def test_leaky_reference_protocol_is_reported_beside_the_honest_score(trained_project):
    report = trained_project.report
    leaky = report["leaky_reference_protocol"]
    assert set(leaky["metrics"]) == {"r2", "mae", "rmse", "mean_poisson_deviance"}
    assert leaky["metrics"]["r2"] > report["test"]["model"]["r2"]  # leakage flatters
    assert "date_day_number" in leaky["features"]


def test_failed_gate_registers_nothing_and_says_so(trained_project, failed_gate):
    project, report = failed_gate
    assert report["gate"]["passed"] is False
    assert any("min_r2 1.01" in reason for reason in report["gate"]["reasons"])
    assert report["registration"]["registered"] is False
    with project_mlflow(project) as client:
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
        run = client.get_run(report["registration"]["run_id"])
    assert [str(v.version) for v in versions] == [trained_project.report["registration"]["version"]]
    assert run.data.tags["gate"] == "failed"
    assert "min_r2" in run.data.tags["gate_reasons"]


def test_a_rejected_model_registers_only_by_the_explicit_override(
    trained_project, tmp_path_factory
):
    """``register_rejected: true`` registers the failed model, tagged so that deployment
    refuses it: it can be explored, never promoted by anything automatic."""
    project = copy_project(
        trained_project.path, tmp_path_factory.mktemp("override") / "project", with_mlflow=True
    )
    modeling = {**SMALL_TRAINING["modeling"], "min_r2": 1.01, "register_rejected": True}
    run_kedro(project, ["modeling"], {**SMALL_TRAINING, "modeling": modeling})
    report = run_report(project)
    assert report["gate"]["passed"] is False
    registration = report["registration"]
    assert registration["registered"] and registration["override"] is True
    with project_mlflow(project) as client:
        version = client.get_model_version(MODEL_NAME, registration["version"])
        run = client.get_run(registration["run_id"])
    assert version.tags["gate"] == REJECTED_OVERRIDE
    assert version.tags["fitted_through"] == report["time_windows"]["test_end"]
    assert run.data.tags["gate"] == "failed" and run.data.tags["gate_override"]
    candidate = {
        "model_name": MODEL_NAME,
        "version": registration["version"],
        "tags": dict(version.tags),
        "run_id": None,
        "chosen_by": "alias challenger",
    }
    deployment = {"target": "local", "gate_tag": "gate", "gate_passed_value": "passed"}
    with pytest.raises(DeploymentRefused, match="did not pass the quality gate"):
        check_deployable(candidate, deployment)


def test_registered_artifact_answers_raw_queries_like_the_pipeline(trained_project):
    """models:/geo-busyness@challenger (sklearn and pyfunc flavours) answers raw query rows
    exactly as the run's own model does, through the one predict function."""
    expected = trained_project.test_predictions
    rng = np.random.default_rng(0)
    lat, lon = cell_centres(cell_ids(expected["h3_cell"].to_numpy()))
    # Raw rows: any minute of the hour, naive UTC timestamps, shuffled.
    minutes = pd.to_timedelta(rng.integers(0, 60, len(expected)), unit="min")
    queries = pd.DataFrame(
        {
            "courier_location_timestamp": (expected["hour"] + minutes).dt.tz_localize(None),
            "courier_lat": lat,
            "courier_lon": lon,
        }
    )
    order = rng.permutation(len(queries))
    with project_mlflow(trained_project.path):
        model = load_model(f"models:/{MODEL_NAME}@challenger")
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@challenger")
    answers = predict_busyness(model, queries.iloc[order]).sort_index()
    pd.testing.assert_frame_equal(
        predict_busyness(pyfunc, queries.iloc[order]).sort_index(), answers
    )
    saved = load_model(latest_model_dir(trained_project.path / "data"))
    pd.testing.assert_frame_equal(predict_busyness(saved, queries), answers)
    assert answers["h3_cell"].tolist() == expected["h3_cell"].tolist()
    assert (answers["hour"].to_numpy() == expected["hour"].to_numpy()).all()
    assert np.isfinite(answers["predicted_busyness"]).all()
    assert answers["predicted_busyness"].std() > 0


def test_same_data_params_and_seed_give_identical_metrics(trained_project):
    """The modeling nodes again, outside Kedro, reproduce the run's choice and test metrics."""
    data = trained_project.path / "data"
    history = pd.read_pickle(data / "05_model_input" / "count_history.pkl")
    features = pd.read_pickle(data / "06_models" / "busyness_features.pkl")
    windows = trained_project.report["time_windows"]
    params = _modeling_params()
    candidates = fit_candidates(history, features, windows, params)
    selection = select_forecaster(candidates, params)
    model = refit_chosen(selection, history, features, windows, params)
    metrics, predictions, _ = backtest_test_window(model, selection, NO_CHAMPION, windows, params)
    report = trained_project.report
    assert selection["chosen"] == report["model_selection"]["chosen"]
    assert selection["validation_average"] == report["model_selection"]["validation_average"]
    assert metrics["model"] == report["test"]["model"]
    pd.testing.assert_frame_equal(predictions, trained_project.test_predictions)


def _modeling_params() -> dict:
    """conf/base modeling parameters deep-merged with the small-run overrides."""
    import yaml  # noqa: PLC0415

    base = yaml.safe_load(
        (Path(__file__).parents[3] / "conf/base/parameters_modeling.yml").read_text()
    )["modeling"]
    return _deep_merge(base, SMALL_TRAINING["modeling"])


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _deep_merge(base[key], value) if isinstance(value, dict) and key in base else value
        )
    return merged

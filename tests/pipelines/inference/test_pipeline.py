"""The inference pipeline in copies of the trained project: real registry, real server.

One run on the challenger serves most tests; its outputs are compared with the project's HTTP
server answering the same rows from the same registered version. The clean events end where the
model's history ends, so the pipeline's extended model has the artifact's origin and the two
must agree exactly (tests/pipelines/inference/test_nodes.py covers later counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.forecaster import LEARNED
from geo_busyness.model.geo import cell_centres, cell_ids, cell_names
from geo_busyness.model.loading import DIGEST_TAG, fetch_model, load_model
from geo_busyness.registry import ModelNotFound, select_model_version
from geo_busyness.schemas import (
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    H3_CELL,
    HORIZON,
    HOUR,
    INTERVAL_COLUMNS,
    PREDICTION,
    QUERY_COLUMNS,
    SOURCE_ROW,
    contribution_columns,
)
from geo_busyness.testing import running_server
from tests.conftest import TrainedProject, copy_project, project_mlflow, run_kedro

NAME = "geo-busyness"
HORIZON_HOURS = 6
#: Contributions per row in the challenger run's outputs (inference.explain_top_k).
EXPLAIN_TOP_K = 2
GOOD_ROWS = 120
#: Bad rows appended after the good ones: (column, value, reason).
BAD_ROWS = [
    (EVENT_LAT, 200.0, "coordinates_out_of_range"),
    (EVENT_TIME, "next tuesday", "unparsable_timestamp"),
    (EVENT_LON, None, "missing_value"),
]


@dataclass
class Outputs:
    forecast: pd.DataFrame
    scored: pd.DataFrame
    rejected: pd.DataFrame
    report: dict


def read_outputs(project: Path) -> Outputs:
    data = project / "data"
    return Outputs(
        pd.read_parquet(data / "07_model_output" / "busyness_forecast.parquet"),
        pd.read_parquet(data / "07_model_output" / "scored_queries.parquet"),
        pd.read_parquet(
            data / "02_intermediate" / "quarantine" / "rejected_inference_queries.parquet"
        ),
        json.loads((data / "08_reporting" / "inference" / "inference_report.json").read_text()),
    )


def last_clean_event(project: Path) -> pd.Timestamp:
    events = pd.read_parquet(project / "data" / "03_primary" / "clean_events.parquet")
    return events[EVENT_TIME].max()


def write_queries(project: Path) -> None:
    """Query rows in the days after the data (places from the events, text times with and
    without offsets), then one bad row per rule; written where the catalog reads them."""
    events = pd.read_parquet(project / "data" / "03_primary" / "clean_events.parquet")
    sample = events.sample(GOOD_ROWS, random_state=3).reset_index(drop=True)
    minutes = np.random.default_rng(3).integers(1, 48 * 60, GOOD_ROWS)
    offsets = pd.Series(pd.to_timedelta(minutes, "min"))
    times = (last_clean_event(project) + offsets).dt.tz_convert("America/Regina")
    text = times.dt.strftime("%Y-%m-%dT%H:%M:%S%z").where(
        np.arange(GOOD_ROWS) % 2 == 0, times.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    queries = pd.DataFrame(
        {EVENT_TIME: text, EVENT_LAT: sample[EVENT_LAT], EVENT_LON: sample[EVENT_LON]}
    ).astype({EVENT_LAT: object, EVENT_LON: object})
    bad = pd.DataFrame([queries.iloc[0].to_dict() | {col: value} for col, value, _ in BAD_ROWS])
    queries = pd.concat([queries, bad], ignore_index=True)
    queries.to_csv(project / "data" / "01_raw" / "inference_queries.csv", index=False)


def fresh_copy(trained: TrainedProject, tmp_path_factory, name: str, **kwargs) -> Path:
    project = copy_project(trained.path, tmp_path_factory.mktemp(name) / "project", **kwargs)
    write_queries(project)
    return project


@pytest.fixture(scope="module")
def challenger_run(trained_project, tmp_path_factory):
    """One inference run on a copy whose registry has only the challenger."""
    project = fresh_copy(trained_project, tmp_path_factory, "inference", with_mlflow=True)
    run_kedro(
        project,
        ["inference"],
        {"inference": {"horizon_hours": HORIZON_HOURS, "explain_top_k": EXPLAIN_TOP_K}},
    )
    with project_mlflow(project) as client:
        version = str(client.get_model_version_by_alias(NAME, "challenger").version)
    return project, version, read_outputs(project)


@pytest.fixture(scope="module")
def server(challenger_run, tmp_path_factory):
    """The project's HTTP server on the challenger's registered artifact."""
    project, version, _ = challenger_run
    with project_mlflow(project):
        model_dir = fetch_model(f"models:/{NAME}/{version}", tmp_path_factory.mktemp("served"))
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(model_dir, log=log) as url:
        yield url


def post_csv(url: str, rows: pd.DataFrame) -> httpx.Response:
    body = rows.to_csv(index=False).encode()
    return httpx.post(
        f"{url}/invocations", content=body, headers={"content-type": "text/csv"}, timeout=60
    )


def served(url: str, rows: pd.DataFrame) -> pd.DataFrame:
    answer = post_csv(url, rows)
    assert answer.status_code == 200, answer.text
    frame = pd.DataFrame(answer.json()["predictions"])
    return frame.assign(**{HOUR: pd.to_datetime(frame[HOUR], utc=True)})


def test_forecast_covers_every_known_cell_for_each_hour(challenger_run):
    project, version, outputs = challenger_run
    with project_mlflow(project):
        model = load_model(f"models:/{NAME}/{version}")
    cells = set(cell_names(model.history_.cells))
    start = last_clean_event(project).floor("h") + pd.Timedelta(hours=1)
    hours = pd.date_range(start, periods=HORIZON_HOURS, freq="h")
    forecast = outputs.forecast
    assert len(cells) > 5
    assert len(forecast) == len(cells) * HORIZON_HOURS
    assert not forecast.duplicated([H3_CELL, HOUR]).any()
    assert set(forecast[H3_CELL]) == cells
    assert sorted(forecast[HOUR].unique()) == list(hours)
    assert (forecast.groupby(HOUR)[H3_CELL].nunique() == len(cells)).all()
    assert (forecast["model_version"] == version).all()
    assert (forecast["model_name"] == NAME).all()
    assert (forecast[PREDICTION] >= 0).all() and forecast[PREDICTION].nunique() > 5
    # From the latest hour: the first forecast hour is one hour ahead, then one more each hour.
    assert (forecast[HORIZON] == (forecast[HOUR] - start) // pd.Timedelta(hours=1) + 1).all()
    p10, p50, p90 = (forecast[column] for column in INTERVAL_COLUMNS)
    assert (p10 <= p50).all() and (p50 <= p90).all() and (p90 > p10).any()
    report = outputs.report
    assert report["model"]["version"] == version
    assert report["model"]["chosen_by"] == "alias challenger"  # no champion yet
    assert report["forecast"]["start_utc"] == start.isoformat()
    assert report["forecast"]["start_from"] == "the hour after the last clean event"
    assert (report["forecast"]["cells"], report["forecast"]["hours"]) == (
        len(cells),
        HORIZON_HOURS,
    )
    # The clean events end where the model's history ends: nothing to add, same origin.
    origin = report["forecast"]["origin"]
    assert origin["origin_utc"] == origin["model_origin_utc"] == start.isoformat()
    assert (origin["hours_added"], origin["hours_after_last_clean_event"]) == (0, 0)
    products = report["forecast"]["products"]
    assert products["served"] == ["nowcast", "day_ahead"]
    assert products["nowcast"] == {"rows": 3 * len(cells), "hours": 3, "horizon_hours": "1-3"}
    assert products["day_ahead"]["hours"] == HORIZON_HOURS - 3


def test_scored_queries_equal_the_servers_answers(challenger_run, server):
    project, version, outputs = challenger_run
    queries = pd.read_csv(project / "data" / "01_raw" / "inference_queries.csv")
    scored = outputs.scored.sort_values(SOURCE_ROW)
    assert scored[SOURCE_ROW].tolist() == list(range(GOOD_ROWS))
    answers = served(server, queries.iloc[scored[SOURCE_ROW]])
    assert answers[H3_CELL].tolist() == scored[H3_CELL].tolist()
    assert (pd.DatetimeIndex(answers[HOUR]) == pd.DatetimeIndex(scored[HOUR])).all()
    for column in (PREDICTION, *INTERVAL_COLUMNS, HORIZON):
        np.testing.assert_allclose(
            answers[column].to_numpy(), scored[column].to_numpy(), rtol=0, atol=1e-9
        )
    assert (scored["model_version"] == version).all()
    assert list(scored.columns[:4]) == [SOURCE_ROW, *QUERY_COLUMNS]
    assert str(scored[EVENT_TIME].dtype) == "datetime64[ns, UTC]"


def test_scored_explanations_equal_the_servers(challenger_run, server):
    """inference.explain_top_k: the scored rows carry what the server answers to "explain"."""
    project, _, outputs = challenger_run
    queries = pd.read_csv(project / "data" / "01_raw" / "inference_queries.csv")
    scored = outputs.scored.sort_values(SOURCE_ROW).head(30)
    rows = queries.iloc[scored[SOURCE_ROW]].to_dict(orient="records")
    answer = httpx.post(
        f"{server}/invocations",
        json={"instances": rows, "explain": EXPLAIN_TOP_K},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    method = document["explanations"]["method"]
    assert (scored["shap_method"] == method).all()
    assert outputs.report["explanations"] == {"top_k": EXPLAIN_TOP_K, **document["explanations"]}
    for prediction, (_, row) in zip(document["predictions"], scored.iterrows(), strict=True):
        explanation = prediction["explanation"]
        top = [(item["feature"], item["contribution"]) for item in explanation["top"]]
        listed = [
            (row[feature], row[contribution])
            for feature, _, contribution in map(contribution_columns, (1, 2))
            if pd.notna(row[feature])
        ]
        assert top == listed
        assert len(top) == (EXPLAIN_TOP_K if method in LEARNED else 0)


def test_forecast_equals_the_servers_answers_for_cell_centres(challenger_run, server):
    _, _, outputs = challenger_run
    forecast = outputs.forecast.sample(60, random_state=0)
    lat, lon = cell_centres(cell_ids(forecast[H3_CELL]))
    rows = pd.DataFrame(
        {
            EVENT_TIME: forecast[HOUR].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            EVENT_LAT: lat,
            EVENT_LON: lon,
        }
    )
    answers = served(server, rows)
    assert answers[H3_CELL].tolist() == forecast[H3_CELL].tolist()
    for column in (PREDICTION, *INTERVAL_COLUMNS, HORIZON):
        np.testing.assert_allclose(
            answers[column].to_numpy(), forecast[column].to_numpy(), rtol=0, atol=1e-9
        )


def test_bad_rows_are_quarantined_with_the_servers_words(challenger_run, server):
    project, _, outputs = challenger_run
    queries = pd.read_csv(project / "data" / "01_raw" / "inference_queries.csv")
    rejected = outputs.rejected.sort_values(SOURCE_ROW)
    assert rejected[SOURCE_ROW].tolist() == list(range(GOOD_ROWS, GOOD_ROWS + len(BAD_ROWS)))
    assert rejected["reject_reason"].tolist() == [reason for _, _, reason in BAD_ROWS]
    assert rejected["reject_column"].tolist() == [column for column, _, _ in BAD_ROWS]
    for row, message in zip(rejected[SOURCE_ROW], rejected["reject_message"], strict=True):
        answer = post_csv(server, queries.iloc[[row]])
        assert answer.status_code == 400
        assert answer.json()["error"] == message
    assert rejected[EVENT_TIME].tolist()[1] == "next tuesday"  # raw values kept
    # Every input row is scored or quarantined, never both.
    assert len(outputs.scored) + len(rejected) == len(queries)
    counts = outputs.report["queries"]
    assert (counts["rows"], counts["scored"], counts["rejected"]) == (
        len(queries),
        GOOD_ROWS,
        len(BAD_ROWS),
    )
    assert {(r["reason"], r["column"]) for r in counts["rejected_by_reason_and_column"]} == {
        (reason, column) for column, _, reason in BAD_ROWS
    }


@pytest.fixture(scope="module")
def two_versions(trained_project, tmp_path_factory):
    """A copy whose registry holds the challenger (v1) and a second version aliased champion."""
    project = fresh_copy(trained_project, tmp_path_factory, "champion", with_mlflow=True)
    with project_mlflow(project) as client:
        challenger = client.get_model_version_by_alias(NAME, "challenger")
        digest = {DIGEST_TAG: challenger.tags[DIGEST_TAG]}  # registration's second phase
        champion = client.create_model_version(
            NAME, challenger.source, challenger.run_id, tags=digest
        )
        client.set_registered_model_alias(NAME, "champion", champion.version)
    return project, str(challenger.version), str(champion.version)


def test_champion_is_preferred_over_challenger(two_versions):
    project, _, champion = two_versions
    run_kedro(project, ["inference"], {"inference": {"horizon_hours": 2}})
    outputs = read_outputs(project)
    assert (outputs.forecast["model_version"] == champion).all()
    assert (outputs.scored["model_version"] == champion).all()
    assert outputs.report["model"]["chosen_by"] == "alias champion"


def test_an_explicit_version_wins_over_the_aliases(two_versions):
    project, challenger, _ = two_versions
    params = {"inference": {"horizon_hours": 2, "model_version": int(challenger)}}
    run_kedro(project, ["inference"], params)
    outputs = read_outputs(project)
    assert (outputs.forecast["model_version"] == challenger).all()
    assert outputs.report["model"]["chosen_by"] == f"version {challenger}"


def test_an_unknown_version_is_named(two_versions):
    project, _, _ = two_versions
    params = {"registered_model_name": NAME, "model_version": 99, "aliases": ["champion"]}
    with project_mlflow(project), pytest.raises(ModelNotFound, match="has no version 99"):
        select_model_version(params)


def test_without_a_registered_model_the_run_fails_naming_it(trained_project, tmp_path_factory):
    project = fresh_copy(trained_project, tmp_path_factory, "no_model", with_mlflow=False)
    with pytest.raises(ModelNotFound, match=f"No version of registered model '{NAME}'"):
        run_kedro(project, ["inference"])
    assert not (project / "data" / "07_model_output" / "busyness_forecast.parquet").exists()

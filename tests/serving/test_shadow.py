"""Shadow mode: the champion answers, the challenger's answers to the same queries are logged.

In process (the app's worker path, a challenger held up on purpose) and through the real
server as a subprocess (``python -m geo_busyness.serving --shadow-model ...``).
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.model.geo import h3_cells
from geo_busyness.model.predict import predict_busyness
from geo_busyness.serving.app import ServingApp, Settings
from geo_busyness.serving.responses import encode_predictions
from geo_busyness.serving.shadow import ShadowSettings, like_for_like_answers, shadow_lines
from geo_busyness.testing import running_server
from tests.serving.model_fixture import END, WEEKS, fit_model_on, save_model, synthetic_events

JSON = "application/json"


@pytest.fixture(scope="module")
def challenger():
    """Another real model: fitted on other events, so its numbers differ from the champion's."""
    return fit_model_on(synthetic_events(6000, seed=11))


@pytest.fixture(scope="module")
def queries() -> pd.DataFrame:
    events = synthetic_events(40, seed=5)
    return pd.DataFrame(
        {
            "courier_location_timestamp": (
                events["courier_location_timestamp"] + pd.Timedelta(weeks=WEEKS)
            ).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "courier_lat": events["courier_lat"],
            "courier_lon": events["courier_lon"],
        }
    )


def _body(frame: pd.DataFrame) -> bytes:
    return orjson.dumps(frame.to_dict(orient="records"))


def _read_log(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _check_logged(lines: list[dict], champion: pd.DataFrame, challenger: pd.DataFrame) -> None:
    """Each line holds the query's cell and hour and both models' answers, in query order."""
    assert len(lines) == len(champion)
    for line, (_, mine), (_, theirs) in zip(
        lines, champion.iterrows(), challenger.iterrows(), strict=True
    ):
        assert (line["h3_cell"], line["champion"]["h3_cell"]) == (mine["h3_cell"],) * 2
        assert pd.Timestamp(line["hour"]) == mine["hour"]
        assert line["champion"]["predicted_busyness"] == mine["predicted_busyness"]
        assert line["challenger"]["predicted_busyness"] == theirs["predicted_busyness"]
        assert line["challenger"]["p90"] == theirs["p90"]
        assert line["challenger"]["horizon_hours"] == theirs["horizon_hours"]
        assert (line["champion"]["version"], line["challenger"]["version"]) == ("1", "2")
        assert line["request_time"].endswith("Z")


def test_shadow_lines_hold_both_answers(busyness_model, challenger, queries):
    champion_answers = predict_busyness(busyness_model, queries)
    challenger_answers = predict_busyness(challenger, queries)
    text = shadow_lines(
        "2026-02-02T10:00:00.000Z", champion_answers, challenger_answers, ("1", "2")
    )
    _check_logged(
        [orjson.loads(line) for line in text.splitlines()], champion_answers, challenger_answers
    )


def _shadow_app(champion, challenger, log, queue_size=100, gate=None) -> ServingApp:
    """An app answering with ``champion`` and shadowing ``challenger`` (whose loading waits
    for ``gate`` when given: a challenger with no time for the traffic)."""

    def load(location):
        if location == "challenger" and gate is not None:
            gate.wait(60)
        return {"champion": champion, "challenger": challenger}[location]

    shadow = ShadowSettings("challenger", str(log), "1", "2", queue_size=queue_size)
    app = ServingApp(Settings(model="champion", shadow=shadow, loader=load))
    app.model = champion
    app.shadow.start()
    return app


def test_the_champion_answers_and_the_challenger_is_logged(
    busyness_model, challenger, queries, tmp_path
):
    log = tmp_path / "shadow" / "log.jsonl"
    app = _shadow_app(busyness_model, challenger, log)
    parts = [queries.iloc[:15], queries.iloc[15:]]
    answers = app.invoke_many([(_body(part), JSON, "") for part in parts])
    app.shadow.stop()
    champion = predict_busyness(busyness_model, queries)
    for (status, body, _), part in zip(answers, parts, strict=True):
        assert status == 200
        assert body == encode_predictions(predict_busyness(busyness_model, part))
    other = predict_busyness(challenger, queries)
    assert not np.allclose(other["predicted_busyness"], champion["predicted_busyness"])
    _check_logged(_read_log(log), champion, other)
    assert app.shadow.stats()["logged"] == len(queries)


def test_a_challenger_without_time_never_holds_the_champion_and_drops_are_counted(
    busyness_model, challenger, queries, tmp_path
):
    log = tmp_path / "log.jsonl"
    gate = threading.Event()  # the challenger is stuck until the gate opens
    app = _shadow_app(busyness_model, challenger, log, queue_size=2, gate=gate)
    request = (_body(queries.iloc[:10]), JSON, "")
    started = time.perf_counter()
    answers = [app.invoke(*request) for _ in range(5)]
    assert time.perf_counter() - started < 30  # all answered while the challenger is stuck
    assert [status for status, _, _ in answers] == [200] * 5
    stats = app.shadow.stats()
    assert (stats["queued_batches"], stats["dropped"], stats["logged"]) == (2, 30, 0)
    gate.set()
    app.shadow.stop()
    assert (app.shadow.stats()["logged"], app.shadow.stats()["dropped"]) == (20, 30)
    assert len(_read_log(log)) == 20


def test_a_challenger_that_fails_to_load_leaves_the_champion_serving(
    busyness_model, queries, tmp_path, caplog
):
    def load(location):
        raise FileNotFoundError("no such model")

    shadow = ShadowSettings("challenger", str(tmp_path / "log.jsonl"), "1", "2")
    app = ServingApp(Settings(model="champion", shadow=shadow, loader=load))
    app.model = busyness_model
    app.shadow.start()
    app.shadow._thread.join(10)
    assert app.invoke(_body(queries), JSON, "")[0] == 200
    assert app.shadow.stats()["state"] == "failed"
    assert "Shadow mode off" in caplog.text


@pytest.mark.slow  # a server subprocess
def test_the_real_server_in_shadow_mode(unpacked_package, challenger, queries, tmp_path):
    challenger_dir = save_model(challenger, tmp_path / "challenger")
    log = tmp_path / "shadow" / "shadow_predictions.jsonl"
    shadow = ["--shadow-model", str(challenger_dir), "--shadow-log", str(log)]
    versions = ["--model-version", "1", "--shadow-version", "2"]
    with running_server(unpacked_package, *shadow, *versions, log=tmp_path / "server.log") as url:
        answer = httpx.post(
            f"{url}/invocations", content=_body(queries), headers={"content-type": JSON}
        )
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while len(_read_log(log)) < len(queries) and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = httpx.get(f"{url}/shadow").json()
    from geo_busyness.model.loading import load_model  # noqa: PLC0415

    champion = predict_busyness(load_model(unpacked_package), queries)
    assert answer.content == encode_predictions(champion)
    _check_logged(_read_log(log), champion, predict_busyness(challenger, queries))
    assert stats["state"] == "shadowing"
    assert (stats["logged"], stats["dropped"], stats["failed"]) == (len(queries), 0, 0)


# ---------------------------------------------------------------- like for like (#24 item 6)
@pytest.fixture(scope="module")
def later_challenger():
    """A challenger that knows one more week of counts than the champion (refitted later)."""
    return fit_model_on(synthetic_events(7000, seed=11, weeks=WEEKS + 1), end=END + WEEK)


WEEK = pd.Timedelta(weeks=1)


@pytest.fixture(scope="module")
def week_after_champion() -> pd.DataFrame:
    """Queries for hours of the week after the champion's origin: future to the champion,
    already counted by the later challenger."""
    events = synthetic_events(40, seed=5, weeks=1)
    return pd.DataFrame(
        {
            "courier_location_timestamp": (
                events["courier_location_timestamp"] + pd.Timedelta(weeks=WEEKS)
            ).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "courier_lat": events["courier_lat"],
            "courier_lon": events["courier_lon"],
        }
    )


def test_the_challenger_answered_on_its_own_terms_is_not_like_for_like(
    busyness_model, later_challenger, week_after_champion
):
    """What shadow mode logged before: the challenger's own answer is 1 h ahead (it holds the
    counts of those hours), the champion's 1 h to 7 days ahead."""
    champion = predict_busyness(busyness_model, week_after_champion)
    own = predict_busyness(later_challenger, week_after_champion)
    assert (own["horizon_hours"] == 1).all()
    assert champion["horizon_hours"].max() > 24


def test_the_challenger_answers_from_the_champions_origin_and_horizon(
    busyness_model, later_challenger, week_after_champion, tmp_path
):
    log = tmp_path / "log.jsonl"
    app = _shadow_app(busyness_model, later_challenger, log)
    app.invoke_many([(_body(week_after_champion), JSON, "")])
    app.shadow.stop()
    lines = _read_log(log)
    assert len(lines) == len(week_after_champion)
    champion = predict_busyness(busyness_model, week_after_champion)
    origin = END.isoformat().replace("+00:00", "Z")
    for line, (_, answer) in zip(lines, champion.iterrows(), strict=True):
        mine, theirs = line["champion"], line["challenger"]
        assert mine["horizon_hours"] == theirs["horizon_hours"] == answer["horizon_hours"]
        assert mine["origin"] == theirs["origin"] == origin
    # The numbers are the later challenger's forecast from the champion's origin (a backtest
    # row), not its one-hour-ahead answer.
    history = later_challenger.history_
    rows, _, _ = later_challenger.serving_rows(
        h3_cells(week_after_champion["courier_lat"], week_after_champion["courier_lon"], 7),
        champion["hour"].astype("int64").to_numpy(),
    )
    start = int(history.positions(np.array([END.value]))[0])
    expected = later_challenger.predict_rows(
        rows, np.full(len(rows), start), champion["horizon_hours"].to_numpy()
    )
    logged = [line["challenger"]["predicted_busyness"] for line in lines]
    np.testing.assert_allclose(logged, np.clip(expected, 0, None))
    own = predict_busyness(later_challenger, week_after_champion)["predicted_busyness"]
    assert not np.allclose(logged, own)


def test_a_champion_origin_given_matches_beyond_a_week_ahead(busyness_model, queries):
    """Two and more weeks ahead the champion answers the same hour of its first week ahead: the
    origin taken from the answer alone would be weeks late; the given one is exact."""
    champion = predict_busyness(busyness_model, queries)
    assert (champion["hour"] >= END + 2 * WEEK).any()
    _, guessed, _ = like_for_like_answers(busyness_model, queries, champion)
    answers, exact, used = like_for_like_answers(busyness_model, queries, champion, END)
    assert (guessed > END.value).any()
    assert (exact == END.value).all() and (used == exact).all()
    same = predict_busyness(busyness_model, queries)
    np.testing.assert_allclose(answers["predicted_busyness"], same["predicted_busyness"])
    assert (answers["horizon_hours"].to_numpy() == same["horizon_hours"].to_numpy()).all()

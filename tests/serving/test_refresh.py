"""A running server follows fresh counts and its champion alias (issue #24 items 2 and 3): a
new counts state moves the nowcast without a restart, a bad one is refused; a moved alias is
loaded, checked and swapped with no failed request; a broken version is refused with an alert."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import threading
import time
from types import SimpleNamespace

import fsspec
import httpx
import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.cli import refresh_environment
from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.counts_state import (
    CountsFollower,
    CountsState,
    counts_state,
    write_counts_state,
)
from geo_busyness.model.geo import cell_centres
from geo_busyness.model.loading import DIGEST_TAG, load_model
from geo_busyness.model.predict import predict_busyness
from geo_busyness.schemas import PREDICTION
from geo_busyness.serving import refresh
from geo_busyness.serving.app import ServingApp, Settings, served_headers, serving_facts
from geo_busyness.serving.refresh import (
    SWAP_REFUSED_EVENT,
    Refresher,
    RefreshSettings,
    alias_of,
    followed_alias,
)
from geo_busyness.serving.requests import JSON
from geo_busyness.testing import running_server
from tests.alerting import SECRET_PATH, text_of
from tests.serving.model_fixture import RESOLUTION, fit_model_on, synthetic_events

NAME = "geo-busyness"
ALIAS_URI = f"models:/{NAME}@champion"


# ---------------------------------------------------------------- helpers
def fresh_state(model, days: int = 2, scale: float = 3.0, batch: str = "week-5") -> CountsState:
    """Counts of the ``days`` after the model's origin (synthetic events, ``scale`` times)."""
    events = synthetic_events(4000, seed=5, weeks=5)
    end = model.origin + pd.Timedelta(days=days)
    times = events["courier_location_timestamp"]
    counts = count_cell_hours(events[(times >= model.origin) & (times < end)], RESOLUTION)
    counts["busyness"] = counts["busyness"] * scale
    return counts_state(counts, end, [batch])


def nowcast_rows(model, at: pd.Timestamp) -> list[dict]:
    """One query at the centre of each of the model's first cells, 10 minutes into ``at``."""
    lat, lon = cell_centres(np.asarray(model.history_.cells[:6], dtype=np.uint64))
    moment = (at + pd.Timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {"courier_location_timestamp": moment, "courier_lat": a, "courier_lon": b}
        for a, b in zip(lat.tolist(), lon.tolist(), strict=True)
    ]


def started(model, **refresh_settings) -> ServingApp:
    """An app serving ``model`` (whatever location it is asked for), loaded as at start-up."""
    settings = Settings(
        model=refresh_settings.pop("model", "unused"),
        loader=lambda _location: model,
        refresh=RefreshSettings(**refresh_settings),
    )
    app = ServingApp(settings)
    app.served = app.refresher.first_served()
    return app


def following(app: ServingApp, models: dict[str, object], aliases: dict[str, str], alerts=None):
    """The app's refresher, over a registry of ``models`` (by location) and ``aliases``."""
    loads: list[str] = []

    def load(location: str):
        loads.append(location)
        found = models[location]
        if isinstance(found, Exception):
            raise found
        return found

    app.refresher = Refresher(
        app.settings.refresh,
        app.settings.model,
        load,
        lambda: app.served,
        lambda served: setattr(app, "served", served),
        resolve=lambda _name, alias: aliases.get(alias),
        alert=None if alerts is None else lambda *args: alerts.append(args),
    )
    app.served = app.refresher.first_served()
    return loads


def other_version(model, **changes):
    """Another version of the model: the same counts, other parameters."""
    changed = copy.copy(model)
    for name, value in {"size_": 0.5, **changes}.items():
        setattr(changed, name, value)
    return changed


# ---------------------------------------------------------------- settings
def test_refresh_settings_name_a_bad_value(monkeypatch):
    monkeypatch.setenv(refresh.ENV_COUNTS_INTERVAL, "soon")
    with pytest.raises(ValueError, match="GEO_BUSYNESS_COUNTS_INTERVAL must be a number"):
        RefreshSettings.from_env()
    monkeypatch.setenv(refresh.ENV_COUNTS_INTERVAL, "0")
    with pytest.raises(ValueError, match="counts_interval must be seconds > 0, not 0.0"):
        RefreshSettings.from_env()
    with pytest.raises(ValueError, match="follow must be an alias URI"):
        RefreshSettings(follow="models:/geo-busyness/3")
    monkeypatch.setenv(refresh.ENV_COUNTS_INTERVAL, "2.5")
    monkeypatch.setenv(refresh.ENV_FOLLOW, ALIAS_URI)
    assert RefreshSettings.from_env().counts_interval == 2.5
    assert alias_of(ALIAS_URI) == (NAME, "champion") and alias_of("/opt/ml/model") is None
    assert followed_alias(ALIAS_URI, RefreshSettings()) == ALIAS_URI
    assert followed_alias("/opt/ml/model", RefreshSettings()) is None


def test_kedro_serve_passes_only_the_credentials_the_alerts_name():
    alerts = {"enabled": True, "webhook": {"credentials_key": "hook"}}
    credentials = {"hook": {"url": "http://x/secret"}, "database": {"password": "p"}}
    environment = refresh_environment(
        counts_state="data/state.parquet",
        follow=ALIAS_URI,
        version="3",
        poll_interval=5.0,
        alerts=alerts,
        credentials=credentials,
    )
    assert json.loads(environment[refresh.ENV_ALERTS]) == {
        "alerts": alerts,
        "credentials": {"hook": {"url": "http://x/secret"}},
    }
    assert environment[refresh.ENV_FOLLOW] == ALIAS_URI
    assert environment[refresh.ENV_MODEL_VERSION] == "3"
    off = refresh_environment(
        counts_state=None, follow=None, version=None, poll_interval=30.0, alerts={"enabled": False}
    )
    assert set(off) == {refresh.ENV_COUNTS_INTERVAL, refresh.ENV_FOLLOW_INTERVAL}


@pytest.mark.slow  # a real KedroSession and MLflow registry
def test_kedro_serve_hands_the_server_its_alias_counts_state_and_version(tmp_path, monkeypatch):
    from click.testing import CliRunner  # noqa: PLC0415

    from geo_busyness.cli import cli  # noqa: PLC0415
    from geo_busyness.serving import __main__ as serving_main  # noqa: PLC0415
    from tests.conftest import inside, make_project_copy  # noqa: PLC0415
    from tests.test_cli import _register_versions  # noqa: PLC0415

    names = (
        refresh.ENV_FOLLOW,
        refresh.ENV_MODEL_VERSION,
        refresh.ENV_COUNTS_STATE,
        refresh.ENV_FOLLOW_INTERVAL,
        "MLFLOW_TRACKING_URI",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    project = make_project_copy(tmp_path / "project")
    _register_versions(project, {"champion": "2"})
    seen = []
    monkeypatch.setattr(
        serving_main, "serve", lambda argv: seen.append({n: os.environ.get(n) for n in names})
    )
    commands = [
        ["serve", "--counts-state", "s3://bucket/state.parquet", "--poll-interval", "2"],
        ["serve"],  # the catalog's counts state, the default interval
    ]
    with inside(project):
        for command in commands:
            result = CliRunner().invoke(cli, command, obj=SimpleNamespace(project_path=project))
            assert result.exit_code == 0, result.output
    same = {
        refresh.ENV_FOLLOW: ALIAS_URI,
        refresh.ENV_MODEL_VERSION: "2",
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
    }
    assert seen == [
        {
            **same,
            refresh.ENV_COUNTS_STATE: "s3://bucket/state.parquet",
            refresh.ENV_FOLLOW_INTERVAL: "2.0",
        },
        {
            **same,
            refresh.ENV_COUNTS_STATE: str(project / "data/05_model_input/counts_state.parquet"),
            refresh.ENV_FOLLOW_INTERVAL: "30.0",
        },
    ]
    assert all(os.environ.get(name) is None for name in names[:4])  # only while it serves


# ---------------------------------------------------------------- fresh counts
def test_a_new_counts_state_moves_the_nowcast_and_answers_say_its_age(busyness_model, tmp_path):
    path = tmp_path / "state" / "counts_state.parquet"
    app = started(busyness_model, counts_state=str(path), model_version="1")
    assert app.served.state is None and app.served.counts_end == busyness_model.origin
    assert not app.refresher.poll_counts()  # no state published yet

    state = fresh_state(busyness_model)
    write_counts_state(state, str(path))
    assert app.refresher.poll_counts()
    served = app.served
    assert served.counts_end == state.end and served.state.batches == ("week-5",)
    assert served.base is busyness_model and served.version == "1"
    assert not app.refresher.poll_counts()  # unchanged: not read again

    queries = pd.DataFrame(nowcast_rows(busyness_model, state.end))
    status, body, _ = app.invoke(orjson.dumps(queries.to_dict(orient="records")), JSON, "")
    answers = pd.DataFrame(orjson.loads(body)["predictions"])
    assert status == 200 and (answers["horizon_hours"] == 1).all()  # a nowcast now
    expected = predict_busyness(state.apply(busyness_model), queries)
    np.testing.assert_array_equal(answers["p50"], expected["p50"])
    before = predict_busyness(busyness_model, queries)  # the same hour, from the old origin
    assert (before["horizon_hours"] == 49).all()
    assert not np.array_equal(expected["predicted_busyness"], before["predicted_busyness"])

    headers = dict(served_headers(served, now=state.end.timestamp() + 90))
    assert headers == {
        b"x-model-version": b"1",
        b"x-counts-end": state.end.isoformat().encode(),
        b"x-counts-age-seconds": b"90",
    }


def test_a_corrupted_state_is_refused_in_one_line_and_the_old_answers_stay(
    busyness_model, tmp_path, caplog
):
    path = tmp_path / "counts_state.parquet"
    app = started(busyness_model, counts_state=str(path))
    write_counts_state(fresh_state(busyness_model), str(path))
    assert app.refresher.poll_counts()
    served = app.served
    body = orjson.dumps(nowcast_rows(busyness_model, served.counts_end))
    answer = app.invoke(body, JSON, "")

    path.write_bytes(b"PAR1 this is not a counts state PAR1")
    with caplog.at_level(logging.INFO, logger="geo_busyness.serving.refresh"):
        assert not app.refresher.poll_counts()
        assert not app.refresher.poll_counts()  # refused once, not re-read every poll
    assert app.served is served and app.invoke(body, JSON, "") == answer
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None
    assert "\n" not in refused[0].getMessage()
    assert str(path) in refused[0].getMessage() and "not a counts state" in refused[0].getMessage()


def test_a_bad_state_at_start_up_leaves_the_models_own_counts_serving(busyness_model, tmp_path):
    path = tmp_path / "counts_state.parquet"
    path.write_text("cell,hour\n")
    app = started(busyness_model, counts_state=str(path))
    assert app.served.state is None and app.served.model is busyness_model
    write_counts_state(fresh_state(busyness_model, days=1), str(path))
    assert app.refresher.poll_counts()  # the next good one is taken
    assert app.served.counts_end == busyness_model.origin + pd.Timedelta(days=1)


def test_the_sagemaker_path_follows_the_state_on_a_timer_in_its_own_thread(
    busyness_model, tmp_path
):
    """``CountsFollower``: what serving/inference.py's model_fn would return (docs/serving.md)."""
    path = tmp_path / "counts_state.parquet"
    follower = CountsFollower(busyness_model, str(path), interval_s=60)
    assert follower.model(now_s=0) is busyness_model  # no state yet
    state = fresh_state(busyness_model)
    write_counts_state(state, str(path))
    assert follower.model(now_s=30) is busyness_model  # not looked at before the interval
    fresh = follower.model(now_s=61)
    assert fresh.origin == state.end and follower.state.batches == ("week-5",)
    assert follower.model(now_s=200) is fresh  # unchanged file: not read again
    path.write_bytes(b"garbage")
    assert follower.model(now_s=300) is fresh  # a bad state keeps the last good one


@pytest.mark.slow  # the moto S3 server
def test_a_state_on_s3_is_followed_by_its_etag(busyness_model, monkeypatch):
    """The cloud env publishes the state under an S3 prefix: the same polls, through s3fs."""
    from geo_busyness.testing import start_moto  # noqa: PLC0415
    from tests.cloud.conftest import s3_client, stop, use_endpoint  # noqa: PLC0415

    process, endpoint = start_moto()
    try:
        use_endpoint(monkeypatch, endpoint)
        s3_client(endpoint).create_bucket(Bucket="states")
        uri = "s3://states/05_model_input/counts_state.parquet"
        app = started(busyness_model, counts_state=uri)
        follower = CountsFollower(busyness_model, uri, interval_s=1)
        assert not app.refresher.poll_counts() and follower.model(now_s=0) is busyness_model
        for days in (1, 2):  # the same key rewritten: its ETag changes
            state = fresh_state(busyness_model, days=days)
            write_counts_state(state, uri)
            assert app.refresher.poll_counts() and app.served.counts_end == state.end
            assert follower.model(now_s=days * 10).origin == state.end
        served = app.served
        with fsspec.open(uri, "wb") as stream:
            stream.write(b"corrupted")
        assert not app.refresher.poll_counts() and app.served is served
    finally:
        stop(process)


# ---------------------------------------------------------------- the followed alias
def test_a_moved_alias_is_loaded_checked_and_served_with_the_current_state(
    busyness_model, tmp_path
):
    path = tmp_path / "counts_state.parquet"
    second = other_version(busyness_model)
    models = {f"models:/{NAME}/1": busyness_model, f"models:/{NAME}/2": second}
    aliases = {"champion": "1"}
    app = ServingApp(Settings(model=ALIAS_URI, refresh=RefreshSettings(counts_state=str(path))))
    loads = following(app, models, aliases)
    assert loads == [f"models:/{NAME}/1"]  # the alias resolved first: the label is exact
    assert app.served.version == "1"
    state = fresh_state(busyness_model)
    write_counts_state(state, str(path))
    assert app.refresher.poll_counts()
    assert not app.refresher.poll_alias()

    aliases["champion"] = "2"
    old = app.served
    assert app.refresher.poll_alias()
    assert app.served.version == "2" and app.served.base is second
    assert app.served.state is old.state and app.served.counts_end == state.end
    assert old.version == "1" and old.base is busyness_model  # a request in flight keeps it
    rows = nowcast_rows(busyness_model, state.end)
    got = orjson.loads(app.invoke(orjson.dumps(rows), JSON, "")[1])["predictions"]
    want = predict_busyness(state.apply(second), pd.DataFrame(rows))
    np.testing.assert_array_equal([row["p90"] for row in got], want["p90"])
    assert dict(served_headers(app.served))[b"x-model-version"] == b"2"


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (RuntimeError("The model artifact of models:/geo-busyness/2 was changed"), "was changed"),
        ("resolution", "its resolution is 8, the serving model's 7"),
        ("nan", "not a forecast"),
    ],
)
def test_a_broken_version_is_refused_once_with_an_alert(busyness_model, broken, reason):
    if broken == "resolution":
        features = copy.copy(busyness_model.cell_features_)
        features.resolution = RESOLUTION + 1
        broken = other_version(busyness_model, cell_features_=features)
    elif broken == "nan":
        broken = other_version(busyness_model, size_=float("nan"))
    models = {f"models:/{NAME}/1": busyness_model, f"models:/{NAME}/2": broken}
    aliases, alerts = {"champion": "1"}, []
    app = ServingApp(Settings(model=ALIAS_URI))
    loads = following(app, models, aliases, alerts)
    served = app.served
    aliases["champion"] = "2"
    assert not app.refresher.poll_alias()
    assert not app.refresher.poll_alias()  # not tried (nor alerted) again
    assert app.served is served and served.version == "1"
    assert loads == [f"models:/{NAME}/1", f"models:/{NAME}/2"]
    [(event, summary, details)] = alerts
    assert event == SWAP_REFUSED_EVENT and "version 1 keeps serving" in summary
    assert reason in details["reasons"][0] and details["refused_version"] == "2"


def test_a_refused_version_alerts_the_projects_webhook(busyness_model, webhook, caplog):
    models = {
        f"models:/{NAME}/1": busyness_model,
        f"models:/{NAME}/2": FileNotFoundError("No MLflow model in /tmp/x"),
    }
    alerts = {
        "alerts": {"enabled": True, "webhook": {"retry_wait_seconds": 0}},
        "credentials": {"alerts_webhook": {"url": webhook.url}},
    }
    app = ServingApp(Settings(model=ALIAS_URI, refresh=RefreshSettings(alerts=alerts)))
    aliases = {"champion": "1"}
    following(app, models, aliases)
    aliases["champion"] = "2"
    with caplog.at_level(logging.INFO):
        assert not app.refresher.poll_alias()
    [payload] = webhook.payloads()
    assert SWAP_REFUSED_EVENT in text_of(payload) and "No MLflow model" in text_of(payload)
    assert SECRET_PATH not in caplog.text


def test_the_refresh_thread_polls_both_until_stopped(busyness_model, tmp_path):
    path = tmp_path / "counts_state.parquet"
    second = other_version(busyness_model)
    models = {f"models:/{NAME}/1": busyness_model, f"models:/{NAME}/2": second}
    aliases = {"champion": "1"}
    settings = RefreshSettings(counts_state=str(path), counts_interval=0.05, follow_interval=0.05)
    app = ServingApp(Settings(model=ALIAS_URI, refresh=settings))
    following(app, models, aliases)
    app.refresher.start()
    try:
        state = fresh_state(busyness_model)
        write_counts_state(state, str(path))
        aliases["champion"] = "2"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            app.served.version != "2" or app.served.counts_end != state.end
        ):
            time.sleep(0.02)
    finally:
        app.refresher.stop()
    assert app.served.version == "2" and app.served.counts_end == state.end
    assert not app.refresher._thread.is_alive()


# ---------------------------------------------------------------- /ping and the headers
def test_ping_and_every_answer_say_the_version_and_the_counts_age(busyness_model):
    app = started(busyness_model, model_version="4")
    rows = nowcast_rows(busyness_model, busyness_model.origin)

    async def calls():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            ping = await client.get("/ping")
            quick = await client.post("/invocations", json=rows[:2])
            csv = pd.DataFrame(rows).to_csv(index=False)
            general = await client.post(
                "/invocations", content=csv, headers={"content-type": "text/csv"}
            )
            return ping, quick, general

    ping, quick, general = asyncio.run(calls())
    age = time.time() - busyness_model.origin.timestamp()
    body = ping.json()
    assert ping.status_code == 200 and body["status"] == "ready"
    assert body["model_version"] == "4" and body["counts_state"] is None
    assert body["counts_end"] == busyness_model.origin.isoformat()
    assert abs(body["counts_age_seconds"] - age) < 60
    for answer in (quick, general):
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == "4"
        assert answer.headers["x-counts-end"] == busyness_model.origin.isoformat()
        assert abs(int(answer.headers["x-counts-age-seconds"]) - age) < 60
    assert (
        serving_facts(app.served, now=busyness_model.origin.timestamp() - 5)["counts_age_seconds"]
        == 0
    )


# ---------------------------------------------------------------- the real server
def _post(client: httpx.Client, url: str, body: bytes, content_type: str) -> httpx.Response:
    return client.post(f"{url}/invocations", content=body, headers={"content-type": content_type})


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s")


@pytest.mark.slow  # a server subprocess
def test_the_real_server_follows_the_counts_state_without_a_restart(
    unpacked_package, tmp_path, monkeypatch
):
    path = tmp_path / "counts_state.parquet"
    monkeypatch.setenv(refresh.ENV_COUNTS_STATE, str(path))
    monkeypatch.setenv(refresh.ENV_COUNTS_INTERVAL, "0.2")
    model = load_model(unpacked_package)
    state = fresh_state(model)
    rows = nowcast_rows(model, state.end)
    body = orjson.dumps(rows)
    log = tmp_path / "server.log"
    with running_server(unpacked_package, log=log) as url, httpx.Client(timeout=10) as client:
        before = _post(client, url, body, JSON)
        assert before.headers["x-counts-end"] == model.origin.isoformat()
        write_counts_state(state, str(path))
        moved = _wait_for(
            lambda: (
                (a := _post(client, url, body, JSON)).headers["x-counts-end"]
                == state.end.isoformat()
                and a
            ),
            20,
            "the new counts state",
        )
        expected = predict_busyness(state.apply(model), pd.DataFrame(rows))
        got = pd.DataFrame(moved.json()["predictions"])
        np.testing.assert_array_equal(got["predicted_busyness"], expected["predicted_busyness"])
        assert (got["horizon_hours"] == 1).all()
        assert got["predicted_busyness"].tolist() != [
            row["predicted_busyness"] for row in before.json()["predictions"]
        ]
        assert int(moved.headers["x-counts-age-seconds"]) >= 0
        assert httpx.get(f"{url}/ping").json()["counts_state"] == ["week-5"]

        path.write_bytes(b"not parquet at all")
        time.sleep(1.5)  # several polls
        after = _post(client, url, body, JSON)
        assert after.status_code == 200 and after.json() == moved.json()
        assert after.headers["x-counts-end"] == state.end.isoformat()
    refused = [line for line in log.read_text().splitlines() if "refused" in line]
    assert len(refused) == 1, refused


@pytest.fixture
def registry(tmp_path, busyness_model, monkeypatch):
    """A real SQLite MLflow registry: version 1 (champion) the small model, version 2 one
    fitted on other events, version 3 whose artifact no longer matches its recorded digest;
    the tracking URI and the models by version."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    from geo_busyness.registry import register_model  # noqa: PLC0415 - imports MLflow's flavour

    try:
        experiment = mlflow.create_experiment(
            "refresh", artifact_location=(tmp_path / "artifacts").as_uri()
        )
        example = pd.DataFrame(nowcast_rows(busyness_model, busyness_model.origin)[:2])
        versions = {"1": busyness_model, "2": fit_model_on(synthetic_events(seed=1))}
        for model in (*versions.values(), busyness_model):
            with mlflow.start_run(experiment_id=experiment):
                register_model(model, example, NAME, "challenger")
        client = mlflow.MlflowClient()
        client.set_registered_model_alias(NAME, "champion", "1")
        client.set_model_version_tag(NAME, "3", DIGEST_TAG, "0" * 64)  # tampered after
        yield uri, versions
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.slow  # a server subprocess and a real MLflow registry
def test_the_real_server_follows_its_alias_under_load_and_refuses_a_broken_version(  # noqa: PLR0915
    registry, busyness_model, webhook, monkeypatch, tmp_path
):
    alerts = {
        "alerts": {"enabled": True, "webhook": {"retry_wait_seconds": 0}},
        "credentials": {"alerts_webhook": {"url": webhook.url}},
    }
    interval = 0.5
    for name, value in {
        "MLFLOW_TRACKING_URI": registry[0],
        refresh.ENV_FOLLOW: ALIAS_URI,
        refresh.ENV_FOLLOW_INTERVAL: str(interval),
        refresh.ENV_MODEL_VERSION: "1",
        refresh.ENV_ALERTS: json.dumps(alerts),
    }.items():
        monkeypatch.setenv(name, value)
    rows = nowcast_rows(busyness_model, busyness_model.origin + pd.Timedelta(hours=5))
    quick, csv = orjson.dumps(rows[:2]), pd.DataFrame(rows).to_csv(index=False).encode()
    want = {
        version: predict_busyness(model, pd.DataFrame(rows[:2]))[PREDICTION].tolist()
        for version, model in registry[1].items()
    }
    assert want["1"] != want["2"]
    seen: list[list[tuple]] = [[] for _ in range(4)]
    stop = threading.Event()
    log = tmp_path / "server.log"

    def client_loop(index: int, url: str) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                body, kind = (quick, JSON) if index % 2 == 0 else (csv, "text/csv")
                try:
                    answer = _post(client, url, body, kind)
                except httpx.HTTPError as error:
                    seen[index].append(("error", repr(error), None))
                    continue
                means = [row[PREDICTION] for row in answer.json()["predictions"][:2]]
                seen[index].append(
                    (answer.status_code, answer.headers.get("x-model-version"), means)
                )

    with running_server(ALIAS_URI, log=log) as url:
        loops = [
            threading.Thread(target=client_loop, args=(index, url)) for index in range(len(seen))
        ]
        for loop in loops:
            loop.start()
        try:
            time.sleep(1.0)
            mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", "2")
            moved = time.monotonic()
            _wait_for(lambda: any(s and s[-1][1] == "2" for s in seen), 60, "version 2")
            swap_seconds = time.monotonic() - moved
            time.sleep(1.0)
        finally:
            stop.set()
            for loop in loops:
                loop.join()
        answers = [answer for loop in seen for answer in loop]
        failures = [answer for answer in answers if answer[0] != 200]
        assert not failures, failures[:3]
        assert {version for _, version, _ in answers} == {"1", "2"}
        for loop in seen:  # each client's answers: version 1, then version 2 only
            versions = [version for _, version, _ in loop]
            assert versions == sorted(versions) and versions[-1] == "2"
        for _, version, means in answers:
            assert means == want[version]
        logging.getLogger(__name__).warning(  # the figure the report quotes (pytest -rA)
            "alias moved -> version 2 answering after %.2f s; %d requests, 0 failed",
            swap_seconds,
            len(answers),
        )
        assert swap_seconds < 30

        mlflow.MlflowClient().set_registered_model_alias(NAME, "champion", "3")
        _wait_for(webhook.payloads, 60, "the refused version's alert")
        with httpx.Client() as client:
            assert _post(client, url, quick, JSON).headers["x-model-version"] == "2"
        assert httpx.get(f"{url}/ping").json()["model_version"] == "2"
    [payload] = webhook.payloads()
    assert SWAP_REFUSED_EVENT in text_of(payload) and "version 2 keeps serving" in text_of(payload)
    text = log.read_text()
    assert "Now serving geo-busyness version 2 (was 1)" in text
    assert "Version 3 of models:/geo-busyness@champion refused" in text
    assert SECRET_PATH not in text

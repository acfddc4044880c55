"""The real server as a subprocess on a packaged model: SageMaker's container contract."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.model.explain import explain_busyness
from geo_busyness.model.loading import load_model
from geo_busyness.model.predict import predict_busyness
from geo_busyness.schemas import contribution_columns
from geo_busyness.serving import app as app_module
from geo_busyness.serving.app import ServingApp, Settings
from geo_busyness.testing import running_server
from tests.serving.cases import BAD_REQUESTS, GOOD_ROW
from tests.serving.model_fixture import END, WEEKS, synthetic_events

MAX_BODY = 300_000


@pytest.fixture(scope="module")
def server(unpacked_package, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(unpacked_package, "--max-body-bytes", str(MAX_BODY), log=log) as url:
        yield url


@pytest.fixture(scope="module")
def queries() -> pd.DataFrame:
    """Query rows in the week after the training window, as ISO text with mixed offsets."""
    events = synthetic_events(300, seed=7)
    times = events["courier_location_timestamp"] + pd.Timedelta(weeks=WEEKS)
    return pd.DataFrame(
        {
            "courier_location_timestamp": times.dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "courier_lat": events["courier_lat"],
            "courier_lon": events["courier_lon"],
        }
    )


@pytest.fixture(scope="module")
def expected(unpacked_package, queries) -> pd.DataFrame:
    """predict_busyness on the packaged artifact, in process."""
    return predict_busyness(load_model(unpacked_package), queries)


ANSWER_KEYS = [
    "h3_cell",
    "hour",
    "predicted_busyness",
    "p10",
    "p50",
    "p90",
    "horizon_hours",
]


def _check_answers(predictions: list[dict], expected: pd.DataFrame) -> None:
    assert all(list(row) == ANSWER_KEYS for row in predictions)
    assert [row["h3_cell"] for row in predictions] == expected["h3_cell"].tolist()
    hours = pd.to_datetime([row["hour"] for row in predictions], utc=True)
    assert (hours == pd.DatetimeIndex(expected["hour"])).all()
    for column in ("predicted_busyness", "p10", "p50", "p90"):
        got = np.array([row[column] for row in predictions])
        np.testing.assert_array_equal(got, expected[column].to_numpy())
    horizons = [row["horizon_hours"] for row in predictions]
    assert all(isinstance(h, int) for h in horizons)
    assert horizons == expected["horizon_hours"].tolist()


def test_ping(server):
    answer = httpx.get(f"{server}/ping")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ready"


def test_json_invocations_answer_predict_busyness_exactly(server, queries, expected):
    body = orjson.dumps({"instances": queries.to_dict(orient="records")})
    answer = httpx.post(
        f"{server}/invocations", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    _check_answers(answer.json()["predictions"], expected)
    assert expected["predicted_busyness"].nunique() > 5  # a real model, not a constant
    # Forecast from the artifact's origin (the hour after its history): the queries lie in
    # the weeks after it; beyond a week ahead, the week-ahead forecast of the same hour.
    ahead = (pd.DatetimeIndex(expected["hour"]) - END) // pd.Timedelta(hours=1)
    assert ahead.min() >= 0 and ahead.max() > 168
    assert expected["horizon_hours"].tolist() == (ahead % 168 + 1).tolist()
    assert (expected["p10"] <= expected["p50"]).all()
    assert (expected["p50"] <= expected["p90"]).all()
    assert (expected["p90"] > expected["p10"]).any()


def test_csv_invocations_answer_predict_busyness_exactly(server, queries, expected):
    body = queries.to_csv(index=False).encode()
    answer = httpx.post(f"{server}/invocations", content=body, headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    _check_answers(answer.json()["predictions"], expected)


def test_csv_answer_when_only_csv_is_accepted(server, queries, expected):
    body = queries.head(3).to_csv(index=False).encode()
    answer = httpx.post(
        f"{server}/invocations",
        content=body,
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv"
    lines = answer.text.splitlines()
    assert lines[0] == "h3_cell,hour,predicted_busyness,p10,p50,p90,horizon_hours"
    first = lines[1].split(",")
    assert float(first[2]) == expected["predicted_busyness"].iloc[0]
    assert [float(v) for v in first[3:6]] == expected[["p10", "p50", "p90"]].iloc[0].tolist()
    assert int(first[6]) == expected["horizon_hours"].iloc[0]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(
    server, body, content_type, status, fragment
):
    answer = httpx.post(
        f"{server}/invocations", content=body, headers={"content-type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert fragment in answer.json()["error"]
    still = httpx.post(f"{server}/invocations", json=[GOOD_ROW])
    assert still.status_code == 200
    assert httpx.get(f"{server}/ping").status_code == 200


def test_an_explained_request_gets_the_top_three_contributions(
    server, queries, expected, unpacked_package
):
    """The same answers, each with the learned model's top three SHAP contributions (exactly
    ``explain_busyness``'s), and what they are; the bad ``explain`` values are in BAD_REQUESTS."""
    part = queries.head(6)
    body = orjson.dumps({"instances": part.to_dict(orient="records"), "explain": True})
    answer = httpx.post(
        f"{server}/invocations", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    predictions = document["predictions"]
    assert all(list(row) == [*ANSWER_KEYS, "explanation"] for row in predictions)
    _check_answers([{k: row[k] for k in ANSWER_KEYS} for row in predictions], expected.head(6))
    about = document["explanations"]
    assert about["method"] == "gradient_boosting"
    assert about["scale"] == "log ratio to the cell's seasonal profile"
    assert about["learned_weight_by_horizon_hours"] == {"1-3": 1.0, "4-24": 1.0, "25-168": 1.0}
    local = explain_busyness(load_model(unpacked_package), part, 3)
    for row, (_, want) in zip(predictions, local.iterrows(), strict=True):
        explanation = row["explanation"]
        top = explanation["top"]
        assert len(top) == 3
        sizes = [abs(item["contribution"]) for item in top]
        assert sizes == sorted(sizes, reverse=True) and sizes[-1] > 0
        for rank, item in enumerate(top, start=1):
            feature, _, contribution = contribution_columns(rank)
            assert item["feature"] == want[feature]
            assert item["contribution"] == want[contribution]
        assert explanation["output"] == want["shap_output"]
        assert explanation["learned_weight"] == 1.0  # no blend: the learned model is the forecast
    csv = httpx.post(
        f"{server}/invocations",
        content=orjson.dumps({"instances": part.head(2).to_dict(orient="records"), "explain": 1}),
        headers={"content-type": "application/json", "accept": "text/csv"},
    )
    assert csv.status_code == 200, csv.text
    assert csv.text.splitlines()[0].endswith(
        "horizon_hours,shap_method,shap_scale,shap_learned_weight,shap_base_value,shap_output,"
        "shap_feature_1,shap_feature_value_1,shap_contribution_1"
    )


def test_concurrent_requests_each_get_exactly_their_own_answers(server, queries, expected):
    """Requests queued behind a busy worker are predicted together, answered separately."""
    parts = [queries.iloc[i : i + 7] for i in range(0, 84, 7)]
    start = threading.Barrier(len(parts) + 1)

    def post(part):
        with httpx.Client(timeout=60) as client:
            start.wait()
            body = orjson.dumps(part.to_dict(orient="records"))
            return client.post(f"{server}/invocations", content=body)

    def post_bad():
        with httpx.Client(timeout=60) as client:
            start.wait()
            return client.post(f"{server}/invocations", content=b'[{"courier_lat": 1}]')

    with ThreadPoolExecutor(len(parts) + 1) as pool:
        futures = [pool.submit(post, part) for part in parts] + [pool.submit(post_bad)]
        answers = [future.result() for future in futures]
    assert answers[-1].status_code == 400
    for part, answer in zip(parts, answers[:-1], strict=True):
        assert answer.status_code == 200
        _check_answers(answer.json()["predictions"], expected.loc[part.index])


def test_body_over_the_limit_is_413_declared_or_streamed(server):
    big = orjson.dumps([GOOD_ROW] * (MAX_BODY // 80 + 10))
    assert len(big) > MAX_BODY
    answer = httpx.post(f"{server}/invocations", content=big)
    assert answer.status_code == 413
    assert "over the limit" in answer.json()["error"]

    def chunks():  # no Content-Length: the server counts while it reads
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    answer = httpx.post(f"{server}/invocations", content=chunks())
    assert answer.status_code == 413
    assert httpx.post(f"{server}/invocations", json=[GOOD_ROW]).status_code == 200


def test_unknown_route_and_method(server):
    assert httpx.get(f"{server}/nothing").status_code == 404
    assert httpx.get(f"{server}/invocations").status_code == 405
    assert httpx.get(f"{server}/execution-parameters").json()["BatchStrategy"] == "MULTI_RECORD"


def test_unacceptable_accept_is_406(server):
    answer = httpx.post(
        f"{server}/invocations", json=[GOOD_ROW], headers={"accept": "application/xml"}
    )
    assert answer.status_code == 406


# ---------------------------------------------------------------- in-process app behaviour


def _asgi_calls(app: ServingApp, calls):
    """Run ``calls(client)`` against the app in process, on one event loop."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await calls(client)

    return asyncio.run(main())


def test_ping_is_503_until_the_model_is_loaded(busyness_model):
    release = threading.Event()

    def slow_loader(_location):
        release.wait(10)
        return busyness_model

    app = ServingApp(Settings(model="unused", loader=slow_loader))

    async def calls(client):
        before = await client.get("/ping")
        release.set()
        for _ in range(200):
            after = await client.get("/ping")
            if after.status_code == 200:
                break
            await asyncio.sleep(0.02)
        return before, after

    before, after = _asgi_calls(app, calls)
    assert (before.status_code, before.json()["status"]) == (503, "loading")
    assert after.status_code == 200


def test_a_model_that_fails_to_load_is_503_with_the_reason_in_the_log(caplog):
    def broken(_location):
        raise FileNotFoundError("no MLmodel here")

    app = ServingApp(Settings(model="unused", loader=broken, load_timeout=5))

    async def calls(client):
        await client.get("/ping")
        await asyncio.sleep(0.1)
        return await client.get("/ping"), await client.post("/invocations", json=[GOOD_ROW])

    with caplog.at_level("ERROR", logger="geo_busyness.serving.app"):
        ping, invocation = _asgi_calls(app, calls)
    assert ping.status_code == 503
    assert ping.json()["status"] == "failed"
    assert "no MLmodel here" not in ping.text  # the reason is logged, never answered
    assert any("no MLmodel here" in record.getMessage() for record in caplog.records)
    assert invocation.status_code == 503


def test_invoke_many_batches_valid_requests_and_isolates_bad_ones(busyness_model, queries):
    app = ServingApp(Settings(model="unused"))
    app.model = busyness_model
    requests = [
        (orjson.dumps(queries.iloc[:3].to_dict(orient="records")), "application/json", ""),
        (b"courier_lat\n1\n", "text/csv", ""),
        (queries.iloc[3:5].to_csv(index=False).encode(), "text/csv", "text/csv"),
    ]
    together = app.invoke_many(requests)
    alone = [app.invoke(*request) for request in requests]
    assert [answer[0] for answer in together] == [200, 400, 200]
    assert together == alone
    assert together[2][2] == "text/csv"


def test_batched_explained_requests_get_their_own_explanations(busyness_model, queries):
    app = ServingApp(Settings(model="unused"))
    app.model = busyness_model
    rows = queries.iloc[:3].to_dict(orient="records")
    requests = [
        (orjson.dumps(rows), "application/json", ""),
        (orjson.dumps({"instances": rows, "explain": 2}), "application/json", ""),
        (orjson.dumps({"instances": rows, "explain": "all"}), "application/json", ""),
        (orjson.dumps({"instances": rows[:1], "explain": True}), "application/json", ""),
    ]
    together = app.invoke_many(requests)
    assert [answer[0] for answer in together] == [200, 200, 400, 200]
    assert together == [app.invoke(*request) for request in requests]
    plain, two, _, three = (orjson.loads(answer[1]) for answer in together)
    assert "explanations" not in plain and "explanation" not in plain["predictions"][0]
    assert [len(row["explanation"]["top"]) for row in two["predictions"]] == [2, 2, 2]
    assert len(three["predictions"][0]["explanation"]["top"]) == 3
    assert (
        three["predictions"][0]["explanation"]["top"][:2]
        == (two["predictions"][0]["explanation"]["top"])
    )
    for explained in (two, three):  # the answers themselves are unchanged
        for got, want in zip(explained["predictions"], plain["predictions"], strict=False):
            assert {key: got[key] for key in want} == want


def test_explanations_without_shap_are_501_for_that_request_only(
    busyness_model, queries, monkeypatch
):
    def no_shap(*_args):
        raise ModuleNotFoundError("No module named 'shap'")

    monkeypatch.setattr(app_module, "explain_answers", no_shap)
    app = ServingApp(Settings(model="unused"))
    app.model = busyness_model
    rows = queries.iloc[:2].to_dict(orient="records")
    answers = app.invoke_many(
        [
            (orjson.dumps({"instances": rows, "explain": True}), "application/json", ""),
            (orjson.dumps(rows), "application/json", ""),
        ]
    )
    assert [answer[0] for answer in answers] == [501, 200]
    assert "shap" in orjson.loads(answers[0][1])["error"]


def test_a_model_fault_is_500_and_the_app_keeps_serving(busyness_model):
    calls_made = []

    class Flaky:
        """A pyfunc-like wrapper whose raw model fails on the first prediction only."""

        def get_raw_model(self):
            calls_made.append(1)
            if len(calls_made) == 1:
                raise RuntimeError("boom")
            return busyness_model

    app = ServingApp(Settings(model="unused", loader=lambda _location: Flaky()))

    async def calls(client):
        await client.get("/ping")
        first = await client.post("/invocations", json=[GOOD_ROW])
        second = await client.post("/invocations", json=[GOOD_ROW])
        return first, second

    first, second = _asgi_calls(app, calls)
    assert first.status_code == 500
    assert first.json()["error"] == "Prediction failed: RuntimeError."
    assert second.status_code == 200

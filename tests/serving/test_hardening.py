"""Issue #15, server side: one bad request never fails another, no silently wrong times, no
tracebacks on the event loop, no quadratic frames, no paths in answers."""

from __future__ import annotations

import asyncio
import logging
import tracemalloc

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.serving import app as app_module
from geo_busyness.serving.app import ServingApp, Settings
from geo_busyness.serving.requests import RequestError, parse_request
from tests.serving.cases import GOOD_ROW, TS, json_rows

JSON = "application/json"


def _app(model) -> ServingApp:
    app = ServingApp(Settings(model="unused"))
    app.model = model
    return app


@pytest.mark.parametrize(
    "bad_value",
    [1772452800000, [1, 2], {"a": 1}, "9999-12-31T23:00:00Z", 1e300],
    ids=["epoch-ms", "list", "object", "year-9999", "huge-number"],
)
def test_a_bad_request_never_fails_its_batch_mates(busyness_model, bad_value):
    """Item 1: 7 valid requests beside 1 bad one: 7 answers 200, the bad one 400."""
    valid = (json_rows(GOOD_ROW), JSON, "")
    bad = (json_rows(GOOD_ROW, {**GOOD_ROW, TS: bad_value}), JSON, "")
    answers = _app(busyness_model).invoke_many([valid] * 3 + [bad] + [valid] * 4)
    assert [status for status, _, _ in answers] == [200] * 3 + [400] + [200] * 4


@pytest.mark.parametrize("column", ["courier_lat", "courier_lon", "restaurant_lat"])
def test_list_values_in_coordinates_are_400(column):
    with pytest.raises(RequestError) as refused:
        parse_request(json_rows(GOOD_ROW, {**GOOD_ROW, column: [1, 2]}))
    assert refused.value.status == 400
    assert repr(column) in refused.value.message


def test_an_unforeseen_parser_fault_is_400_for_that_request_only(busyness_model, monkeypatch):
    real = app_module.parse_invocation

    def parse(body, content_type, max_bytes):
        if b"boom" in body:
            raise KeyError("unforeseen")
        return real(body, content_type, max_bytes)

    monkeypatch.setattr(app_module, "parse_invocation", parse)
    valid = (json_rows(GOOD_ROW), JSON, "")
    answers = _app(busyness_model).invoke_many([valid, (b'["boom"]', JSON, ""), valid])
    assert [status for status, _, _ in answers] == [200, 400, 200]
    assert b"KeyError" in answers[1][1]


OUT_OF_RANGE = [
    "9999-12-31T23:00:00Z",
    "2262-04-12T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1600-01-01T00:00:00Z",
    "2300-01-01T00:00:00Z",
    "2200-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    1772452800000,
    -1e12,
]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("rows", [1, 10], ids=["fast-path", "general-path"])
def test_out_of_range_times_are_refused_never_wrapped(value, rows):
    """Item 2: year 9999 was answered with hour 1816-03-30; years 1, 1600, 2300 were 500."""
    body = json_rows(*[{**GOOD_ROW, TS: value}] * rows)
    with pytest.raises(RequestError) as refused:
        parse_request(body)
    assert refused.value.status == 400
    assert "out of range" in refused.value.message


@pytest.mark.parametrize(
    "text", ["1900-01-01T00:00:00Z", "2199-12-31T23:59:59.999999Z", "2262-04-11T12:00:00-05:00"]
)
def test_times_inside_the_range_are_exact(text):
    if text.startswith("2262"):
        with pytest.raises(RequestError):
            parse_request(json_rows({**GOOD_ROW, TS: text}))
        return
    for rows in (1, 10):
        frame = parse_request(json_rows(*[{**GOOD_ROW, TS: text}] * rows))
        assert (frame[TS] == pd.Timestamp(text)).all()


def test_failed_batches_log_one_line_on_the_event_loop(busyness_model, caplog):
    """Item 3: a traceback rendered on the loop stalled /ping for ~200 ms per bad batch."""
    app = _app(busyness_model)

    def broken(requests):
        raise RuntimeError("worker fault\nwith a second line")

    app.invoke_many = broken

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/invocations", json=[GOOD_ROW])

    with caplog.at_level(logging.INFO, logger="geo_busyness.serving.app"):
        answer = asyncio.run(main())
    assert answer.status_code == 500
    records = [r for r in caplog.records if r.name == "geo_busyness.serving.app"]
    assert records, "the fault is logged"
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)


def test_repeated_faults_log_their_traceback_once(busyness_model, monkeypatch, caplog):
    """Item 3: ~2.3 KB of traceback per bad request under `python -m geo_busyness.serving`."""
    monkeypatch.setattr(app_module, "_TRACED", set())

    def parse(body, content_type, max_bytes):
        raise ValueError("unforeseen")

    monkeypatch.setattr(app_module, "parse_invocation", parse)
    app = _app(busyness_model)
    with caplog.at_level(logging.INFO, logger="geo_busyness.serving.app"):
        for _ in range(20):
            app.invoke(b"[]", JSON, "")
    records = [r for r in caplog.records if r.name == "geo_busyness.serving.app"]
    assert len(records) == 20
    assert sum(r.exc_info is not None for r in records) == 1
    assert all(len(r.getMessage()) < 300 for r in records)


def test_rows_with_distinct_keys_build_no_square_frame():
    """Item 4: a 136 KiB body of rows with distinct keys built an N x N frame (+1.3 GB)."""
    rows = [{**GOOD_ROW, f"extra_{i}": i} for i in range(4000)]
    body = orjson.dumps(rows)
    tracemalloc.start()
    try:
        frame = parse_request(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(frame.columns) == [TS, "courier_lat", "courier_lon"]
    assert peak < 40e6, f"{peak / 1e6:.0f} MB for a {len(body) / 1024:.0f} KiB body"


def test_ping_never_reveals_the_load_error(tmp_path, caplog):
    """Item 6: /ping's 503 body named the model folder's absolute path."""
    secret_path = str(tmp_path / "models" / "secret-folder")

    def broken(_location):
        raise FileNotFoundError(f"No MLflow model in {secret_path}")

    app = ServingApp(Settings(model=secret_path, loader=broken, load_timeout=5))

    async def calls(client):
        await client.get("/ping")
        await asyncio.sleep(0.2)
        return await client.get("/ping"), await client.post("/invocations", json=[GOOD_ROW])

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await calls(client)

    with caplog.at_level(logging.ERROR, logger="geo_busyness.serving.app"):
        ping, invocation = asyncio.run(main())
    assert (ping.status_code, invocation.status_code) == (503, 503)
    for answer in (ping, invocation):
        assert secret_path not in answer.text and "secret-folder" not in answer.text
    assert any(secret_path in record.getMessage() for record in caplog.records)  # in the log


def test_a_query_far_from_every_known_cell_is_refused(busyness_model):
    """Item 7: a lat/lon-swapped New York row (-73.98, 40.75) got 200 and a confident 0.014."""
    app = _app(busyness_model)
    swapped = json_rows({TS: "2026-01-26T12:00:00Z", "courier_lat": -73.98, "courier_lon": 40.75})
    elsewhere = json_rows(GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.45, "courier_lon": -100.0})
    near = json_rows({**GOOD_ROW, "courier_lat": 50.50, "courier_lon": -104.65})
    answers = app.invoke_many([(swapped, JSON, ""), (elsewhere, JSON, ""), (near, JSON, "")])
    assert [status for status, _, _ in answers] == [400, 400, 200]
    assert b"swapped" in answers[0][1]
    assert b"1 row(s): 1" in answers[1][1]


def test_the_known_area_check_can_be_turned_off(busyness_model):
    app = ServingApp(Settings(model="unused", max_distance_km=0))
    app.model = busyness_model
    swapped = json_rows({TS: "2026-01-26T12:00:00Z", "courier_lat": -73.98, "courier_lon": 40.75})
    assert app.invoke(swapped, JSON, "")[0] == 200


def test_known_cells_reads_the_forecaster(busyness_model):
    from geo_busyness.model.queries import known_cells  # noqa: PLC0415

    np.testing.assert_array_equal(known_cells(busyness_model), busyness_model.history_.cells)
    assert known_cells(object()) is None

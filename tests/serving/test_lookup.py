"""The lookup table answers exactly as the model's own predict; what it does not hold, the model
answers; the server swaps model and table as one."""

from __future__ import annotations

import logging

import h3
import numpy as np
import orjson
import pandas as pd
import pytest

from geo_busyness.model.cell_hours import HOUR_NS, count_cell_hours
from geo_busyness.model.geo import cell_centres, h3_cells
from geo_busyness.model.predict import predict_busyness
from geo_busyness.serving import lookup
from geo_busyness.serving.app import ServingApp, Settings
from geo_busyness.serving.lookup import TABLE_HOURS, point_cells, serve
from geo_busyness.serving.requests import JSON
from geo_busyness.serving.responses import encode_predictions
from geo_busyness.serving.shadow import ShadowSettings
from tests.serving.cases import BAD_REQUESTS, GOOD_ROW, TS, explained
from tests.serving.model_fixture import RESOLUTION, synthetic_events


@pytest.fixture(scope="module")
def app(busyness_model) -> ServingApp:
    """An app serving the small model with its table (shared: tests only read it)."""
    return _app(busyness_model)


@pytest.fixture(scope="module")
def served(app):
    return app.served


def _app(model, **settings) -> ServingApp:
    app = ServingApp(Settings(model="unused", **settings))
    app.model = model
    return app


def _centres(cells: np.ndarray) -> tuple[list[float], list[float]]:
    lat, lon = cell_centres(cells)
    return lat.tolist(), lon.tolist()


def _hour_text(first_ns: int, hour: int, minute: int) -> str:
    moment = pd.Timestamp(first_ns + hour * HOUR_NS + minute * 60_000_000_000, tz="UTC")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _every_cell_and_hour(table, seed: int = 0) -> list[dict]:
    """One query per held cell x hour, at the cell's centre, a random minute into the hour,
    in random order."""
    rng = np.random.default_rng(seed)
    lat, lon = _centres(table.cells)
    rows = [
        {
            TS: _hour_text(table.first_ns, hour, int(rng.integers(0, 60))),
            "courier_lat": float(lat[cell]),
            "courier_lon": float(lon[cell]),
        }
        for cell in range(len(table.cells))
        for hour in range(table.hours)
    ]
    return [rows[i] for i in rng.permutation(len(rows))]


def test_the_table_holds_every_known_cell_for_the_week_after_the_origin(busyness_model, served):
    table = served.table
    np.testing.assert_array_equal(table.cells, np.sort(busyness_model.history_.cells))
    assert table.first_ns == busyness_model.origin.value
    assert table.values.shape == (len(table.cells), TABLE_HOURS, 4)
    assert table.horizons[:, 0].tolist() == [1] * len(table.cells)
    assert np.unique(table.values[..., 0]).size > 20  # a real model, not a constant


def test_every_cell_and_hour_of_the_table_is_exactly_what_predict_busyness_answers(
    busyness_model, served, app
):
    """Every field the server returns, for every held cell x hour: the table's frame equals
    ``predict_busyness`` on the same rows, and the one-row quick answer is byte for byte
    the body the model's own answer encodes to."""
    rows = _every_cell_and_hour(served.table)
    queries = pd.DataFrame(rows)
    expected = predict_busyness(busyness_model, queries)
    pd.testing.assert_frame_equal(served.table.answer(busyness_model, queries), expected)
    records = orjson.loads(encode_predictions(expected))["predictions"]
    for i, (row, record) in enumerate(zip(rows, records, strict=True)):
        body = served.table.quick_answer(orjson.dumps([row]))
        (answer,) = orjson.loads(body)["predictions"]
        assert list(answer.items()) == list(record.items())  # same keys, order and values
        if i % 20 == 0:  # byte for byte, on a sample (encoding a one-row frame is slow)
            assert body == encode_predictions(expected.iloc[[i]])
    for row in rows[:50]:  # the app's quick path is the table's
        single = orjson.dumps([row])
        assert app.invoke(single, JSON, "") == (200, served.table.quick_answer(single), JSON)


def test_the_table_equals_predicting_one_row_at_a_time(busyness_model, served):
    """Built in blocks of many rows, the table still equals single-row predictions."""
    rows = _every_cell_and_hour(served.table, seed=1)[:40]
    for row in rows:
        query = pd.DataFrame([row])
        pd.testing.assert_frame_equal(
            served.table.answer(busyness_model, query), predict_busyness(busyness_model, query)
        )


def _edge_points(resolution: int, seed: int = 0) -> np.ndarray:
    """Points on and a hair from the vertices and edges of cells around the fixture's city:
    where h3-py and h3ronpy disagree (within ~1e-10 degrees), and a little farther."""
    rng = np.random.default_rng(seed)
    cells = h3.grid_disk(h3.latlng_to_cell(50.45, -104.6, resolution), 4)
    corners = [np.asarray(h3.cell_to_boundary(cell)) for cell in cells]  # per cell
    edges = np.vstack([np.stack([c, np.roll(c, -1, axis=0)], axis=1) for c in corners])
    along = rng.uniform(0, 1, (len(edges), 4, 1))
    on_edges = (edges[:, :1] + along * (edges[:, 1:] - edges[:, :1])).reshape(-1, 2)
    base = np.vstack([edges[:, 0], on_edges])
    scales = np.repeat([0.0, 1e-12, 1e-11, 1e-10, 1e-9, 1e-7, 1e-6, 1e-5], len(base))[:, None]
    return np.tile(base, (8, 1)) + rng.normal(0, 1, (len(scales), 2)) * scales


@pytest.mark.parametrize("resolution", [7, 8])
def test_point_cells_are_the_models_cells_even_a_hair_from_an_edge(resolution):
    """h3-py and h3ronpy disagree on some of these points: point_cells must not."""
    points = _edge_points(resolution)
    want = h3_cells(points[:, 0], points[:, 1], resolution)
    c_library = [h3.api.basic_int.latlng_to_cell(a, b, resolution) for a, b in points.tolist()]
    assert (np.asarray(c_library, dtype=np.uint64) != want).any()  # the case is real
    for start in range(0, len(points), 8):  # requests of up to 8 rows
        lat, lon = points[start : start + 8, 0].tolist(), points[start : start + 8, 1].tolist()
        assert point_cells(lat, lon, resolution) == want[start : start + 8].tolist()
    assert point_cells([90.0], [0.0], resolution) == h3_cells([90.0], [0.0], resolution).tolist()


def _unknown_cell_point(model) -> dict:
    """A point in a cell next to the known ones that the model does not know."""
    known = {int(cell) for cell in model.history_.cells}
    first = h3.int_to_str(int(model.history_.cells[0]))
    unknown = next(c for c in h3.grid_ring(first, 2) if h3.str_to_int(c) not in known)
    lat, lon = h3.cell_to_latlng(unknown)
    return {"courier_lat": lat, "courier_lon": lon}


def test_rows_the_table_does_not_hold_are_answered_by_the_model(busyness_model, served, app):
    table = served.table
    lat, lon = _centres(table.cells[:1])
    held = {TS: _hour_text(table.first_ns, 5, 10), "courier_lat": lat[0], "courier_lon": lon[0]}
    others = [
        {**held, **_unknown_cell_point(busyness_model)},
        {**held, TS: _hour_text(table.first_ns, -30, 0)},  # a known past hour
        {**held, TS: _hour_text(table.first_ns, TABLE_HOURS + 3, 0)},  # a week ahead and more
    ]
    queries = pd.DataFrame([held, *others, held])
    expected = predict_busyness(busyness_model, queries)
    pd.testing.assert_frame_equal(table.answer(busyness_model, queries), expected)
    pd.testing.assert_frame_equal(
        table.answer(busyness_model, queries.iloc[1:4]), expected.iloc[1:4]
    )
    for row in others:
        body = orjson.dumps([row])
        assert table.quick_answer(body) is None
        assert app.invoke(body, JSON, "") == app.invoke_many([(body, JSON, "")])[0]
        assert app.invoke(body, JSON, "")[0] == 200
    assert table.quick_answer(orjson.dumps([held, others[0]])) is None


@pytest.mark.parametrize(
    ("body", "content_type", "accept"),
    [
        (orjson.dumps([GOOD_ROW]), "text/csv", ""),
        (
            b"courier_location_timestamp,courier_lat,courier_lon\n2026-02-02T05:00:00Z,50.45,-104.6\n",
            "text/csv",
            "",
        ),
        (orjson.dumps([{**GOOD_ROW, TS: "2026-02-02T05:00:00Z"}] * 9), JSON, ""),
        (orjson.dumps([{**GOOD_ROW, TS: "2026-02-02T05:00:00Z", "extra": 1}]), JSON, ""),
        (orjson.dumps([{**GOOD_ROW, TS: "2026-02-02T05:00:00Z"}]), JSON, "text/csv"),
        (orjson.dumps([{**GOOD_ROW, TS: "2026-02-02T05:00:00Z"}]), JSON, "application/xml"),
        (orjson.dumps([{**GOOD_ROW, TS: 1_769_000_000}]), JSON, ""),
        *[(case[1], case[2], "") for case in BAD_REQUESTS],
    ],
)
def test_every_other_request_gets_the_general_paths_answer(app, body, content_type, accept):
    """CSV, more than 8 rows, extra fields, a CSV answer, Unix times and every
    bad request: no quick answer, and ``invoke`` answers exactly as the worker path does."""
    assert app.quick_answer(body, content_type, accept) is None
    assert (
        app.invoke(body, content_type, accept) == app.invoke_many([(body, content_type, accept)])[0]
    )


def test_explained_requests_are_left_to_the_general_path(app):
    assert app.quick_answer(explained(True), JSON, "") is None


def test_a_small_clean_request_inside_the_table_is_answered_quickly(busyness_model, served, app):
    table = served.table
    lat, lon = _centres(table.cells[:2])
    rows = [
        {TS: _hour_text(table.first_ns, hour, 59), "courier_lat": a, "courier_lon": b}
        for hour, a, b in ((0, lat[0], lon[0]), (167, lat[1], lon[1]))
    ]
    for body in (orjson.dumps(rows), orjson.dumps({"instances": rows, "explain": False})):
        quick = app.quick_answer(body, "application/json; charset=utf-8", "*/*")
        assert quick is not None
        assert quick == encode_predictions(predict_busyness(busyness_model, pd.DataFrame(rows)))


def test_the_quick_path_is_off_where_the_area_check_could_refuse_or_in_shadow_mode(
    busyness_model, served, app, tmp_path
):
    table = served.table
    lat, lon = _centres(table.cells[:1])
    body = orjson.dumps(
        [{TS: _hour_text(table.first_ns, 1, 0), "courier_lat": lat[0], "courier_lon": lon[0]}]
    )
    assert app.quick_answer(body, JSON, "") is not None
    assert _app(busyness_model, max_distance_km=0).quick_answer(body, JSON, "") is not None
    tight = _app(busyness_model, max_distance_km=table.radius_km / 2)
    assert tight.quick_answer(body, JSON, "") is None
    assert tight.invoke(body, JSON, "")[0] == 200  # the centre itself is within any distance
    shadow = ShadowSettings("challenger", str(tmp_path / "log.jsonl"), "1", "2")
    shadowed = _app(busyness_model, shadow=shadow)
    assert shadowed.quick_answer(body, JSON, "") is None


def test_swap_model_replaces_the_model_and_its_table_as_one(busyness_model):
    """Fresh counts move the origin: the app's one reference moves to the new model and a
    table built from it; what was served before is left as it was."""
    app = _app(busyness_model)
    before = app.served
    end = busyness_model.origin + pd.Timedelta(days=1)
    events = synthetic_events(600, seed=3, weeks=5)
    later = events[events["courier_location_timestamp"] >= busyness_model.origin]
    fresher = busyness_model.with_counts(count_cell_hours(later, RESOLUTION), end)
    app.swap_model(fresher)
    assert app.model is fresher and app.served.model is fresher
    assert app.served.table.first_ns == end.value
    assert before.model is busyness_model and before.table.first_ns == busyness_model.origin.value
    rows = _every_cell_and_hour(app.served.table, seed=2)[:300]
    queries = pd.DataFrame(rows)
    expected = predict_busyness(fresher, queries)
    pd.testing.assert_frame_equal(app.served.table.answer(fresher, queries), expected)
    assert not expected.equals(predict_busyness(busyness_model, queries))
    app.model = None
    assert app.served is None and app.model is None


def test_a_model_without_a_table_is_answered_by_predict(busyness_model, monkeypatch, caplog):
    """A wrapper gets no table; a table that fails to build is logged and left out."""

    class Wrapper:
        def get_raw_model(self):
            return busyness_model

    assert serve(Wrapper()).table is None
    monkeypatch.setattr(lookup, "build_table", lambda model: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="geo_busyness.serving.lookup"):
        app = _app(busyness_model)
    assert app.served.table is None and app.served.cells is not None
    assert "ZeroDivisionError" in caplog.text
    body = orjson.dumps([GOOD_ROW])
    assert app.quick_answer(body, JSON, "") is None
    queries = pd.DataFrame([GOOD_ROW])
    assert app.invoke(body, JSON, "") == (
        200,
        encode_predictions(predict_busyness(busyness_model, queries)),
        JSON,
    )


def test_served_carries_the_loaded_model_its_version_and_counts_end(busyness_model):
    """What a refresh needs travels with the one reference: the model before counts (a newer
    state is applied to it, never on top of an older one), the version label, the state."""
    end = busyness_model.origin + pd.Timedelta(hours=5)
    fresher = busyness_model.with_counts(count_cell_hours(synthetic_events(50), RESOLUTION), end)
    served = serve(fresher, base=busyness_model, version="3")
    assert served.loaded is busyness_model and served.model is fresher
    assert served.version == "3" and served.counts_end == end and served.table is not None
    plain = serve(busyness_model)
    assert plain.loaded is busyness_model and plain.counts_end == busyness_model.origin
    assert serve(object()).counts_end is None

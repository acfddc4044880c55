"""Issue #15: bounded property-based tests (hypothesis) of the request parser and of cleaning.

- Any body -> the parser returns query rows or refuses with a 4xx, never anything else; the
  server answers 2xx or 4xx, never 5xx. A timestamp round-trips exactly or is refused.
- Any generated raw rows -> clean + quarantined == input (each source row once), and no time
  outside the accepted range in clean.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_busyness.pipelines.data_processing.nodes import map_to_canonical, split_clean_and_rejected
from geo_busyness.schemas import EARLIEST_TIME, LATEST_TIME, CleanEvents
from geo_busyness.serving.app import ServingApp, Settings
from geo_busyness.serving.requests import RequestError, parse_request
from tests.pipelines.data_processing.conftest import processing_params
from tests.serving.model_fixture import fit_model

TS, LAT, LON = "courier_location_timestamp", "courier_lat", "courier_lon"
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
offsets = st.one_of(
    st.just(""),
    st.just("Z"),
    st.integers(min_value=-14 * 60, max_value=14 * 60).map(
        lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
    ),
)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
time_texts = st.builds(
    lambda moment, offset, sep: moment.isoformat(sep=sep) + offset,
    moments,
    offsets,
    st.sampled_from(["T", " "]),
)
time_values = st.one_of(
    time_texts,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    json_values,
)
coordinates = st.one_of(st.floats(min_value=-200, max_value=200), json_values)
query_rows = st.fixed_dictionaries(
    {TS: time_values, LAT: coordinates, LON: coordinates},
    optional={"restaurant_lat": coordinates, "extra": json_values},
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.lists(query_rows, min_size=0, max_size=12).map(orjson.dumps),
    st.lists(json_values, max_size=5).map(orjson.dumps),
    st.lists(query_rows, min_size=1, max_size=6).map(
        lambda rows: orjson.dumps({"instances": rows})
    ),
    st.lists(query_rows, min_size=1, max_size=6).map(
        lambda rows: pd.DataFrame(rows).to_csv(index=False).encode()
    ),
)
content_types = st.sampled_from(["application/json", "text/csv", "", "application/xml"])


@BOUNDED
@given(body=bodies, content_type=content_types)
def test_any_body_is_parsed_or_refused_with_a_4xx(body, content_type):
    try:
        frame = parse_request(body, content_type)
    except RequestError as refused:
        assert 400 <= refused.status < 500
    else:
        assert len(frame) >= 1
        times = frame[TS]
        assert ((times >= EARLIEST_TIME) & (times < LATEST_TIME)).all()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.lists(st.tuples(bodies, content_types), min_size=1, max_size=4))
def test_the_server_answers_any_batch_with_2xx_or_4xx(requests):
    app = ServingApp(Settings(model="unused"))
    app.model = fit_model()
    answers = app.invoke_many([(body, kind, "") for body, kind in requests])
    assert all(200 <= status < 500 for status, _, _ in answers), [a[:2] for a in answers]


@BOUNDED
@given(moment=moments, offset=offsets, rows=st.integers(min_value=1, max_value=10))
def test_timestamps_round_trip_exactly_or_are_refused(moment, offset, rows):
    text = moment.isoformat() + offset
    if offset in ("", "Z"):
        tz = UTC
    else:
        sign = 1 if offset[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        instant = pd.Timestamp(moment.replace(tzinfo=tz)).tz_convert("UTC")
    except (OverflowError, ValueError):
        instant = None  # not representable: the parser must refuse it
    body = orjson.dumps([{TS: text, LAT: 50.45, LON: -104.6}] * rows)
    try:
        frame = parse_request(body)
    except RequestError as refused:
        assert refused.status == 400
        assert instant is None or not (EARLIEST_TIME <= instant < LATEST_TIME)
    else:
        assert instant is not None and EARLIEST_TIME <= instant < LATEST_TIME
        assert (frame[TS] == instant).all()


raw_times = st.one_of(
    time_texts,
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["2026-01-05T10:30:00", "2026-01-05T10:30:00Z", "2026-03-08T02:30:00"]),
)
raw_rows = st.fixed_dictionaries(
    {
        "courier_id": st.integers(min_value=1, max_value=5),
        "order_number": st.one_of(st.none(), st.integers(min_value=1, max_value=30)),
        TS: raw_times,
        LAT: st.one_of(st.none(), st.floats(min_value=-100, max_value=100), st.just("n/a")),
        LON: st.one_of(st.none(), st.floats(min_value=-200, max_value=200)),
        "order_created_timestamp": raw_times,
        "restaurant_lat": st.one_of(st.none(), st.floats(min_value=-100, max_value=100)),
        "restaurant_lon": st.one_of(st.none(), st.floats(min_value=-200, max_value=200)),
    }
)


@pytest.mark.slow  # 150 generated tables through the whole cleaning: seconds
@BOUNDED
@given(rows=st.lists(raw_rows, min_size=1, max_size=25), as_text=st.booleans())
def test_cleaning_accounts_for_every_row_and_keeps_no_out_of_range_time(rows, as_text):
    raw = pd.DataFrame(rows)
    if as_text:
        raw[[TS, "order_created_timestamp"]] = raw[[TS, "order_created_timestamp"]].astype("str")
        raw = raw.replace({"None": None, "nan": None})
    params = processing_params(as_of="2300-01-01T00:00:00Z")
    canonical = map_to_canonical(raw, params["column_mapping"])
    clean, rejected = split_clean_and_rejected(canonical, params)
    assert len(clean) + len(rejected) == len(raw)
    assert sorted([*clean["source_row"], *rejected["source_row"]]) == list(range(len(raw)))
    for column in (TS, "order_created_timestamp"):
        times = clean[column].dropna()
        assert ((times >= EARLIEST_TIME) & (times < LATEST_TIME)).all()
    CleanEvents.validate(clean)

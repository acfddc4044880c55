"""Shadow scoring on a constructed log: each model's answers against the counts of its cell."""

from __future__ import annotations

import math

import h3
import orjson
import pandas as pd
import pytest

from geo_busyness.pipelines.shadow.nodes import (
    join_actual_counts,
    like_for_like,
    parse_shadow_log,
    score_shadow,
)

CENTRE = (50.45, -104.6)
H = pd.Timestamp("2026-03-02T10:00:00Z")
#: The champion answers at resolution 7; the challenger at 8 (a smaller cell inside it).
CELL7 = h3.latlng_to_cell(*CENTRE, 7)
CELL8 = h3.latlng_to_cell(*CENTRE, 8)
OTHER7 = h3.latlng_to_cell(50.60, -104.2, 7)


def _events(places_and_hours: list[tuple[tuple[float, float], pd.Timestamp, int]]) -> pd.DataFrame:
    """``n`` events at each (place, hour + 10 min)."""
    rows = [
        {"courier_location_timestamp": hour + pd.Timedelta(minutes=10 + i), "lat": lat, "lon": lon}
        for (lat, lon), hour, n in places_and_hours
        for i in range(n)
    ]
    frame = pd.DataFrame(rows)
    return frame.rename(columns={"lat": "courier_lat", "lon": "courier_lon"})


def _line(
    hour,
    champion,
    challenger,
    *,
    versions=("3", "4"),
    cells=(CELL7, CELL8),
    asked="2026-03-01",
    horizons=(5, 5),
    origins=None,
) -> bytes:
    """A shadow log line: (mean, p50) of each model; origins logged when given."""
    sides = {}
    for index, (side, (mean, p50), version, cell, horizon) in enumerate(
        zip(
            ("champion", "challenger"),
            (champion, challenger),
            versions,
            cells,
            horizons,
            strict=True,
        )
    ):
        sides[side] = {
            "version": version,
            "h3_cell": cell,
            "predicted_busyness": mean,
            "p10": 0.0,
            "p50": p50,
            "p90": mean * 2,
            "horizon_hours": horizon,
        }
        if origins is not None:
            sides[side]["origin"] = origins[index].strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "request_time": f"{asked}T08:00:00.000Z",
        "h3_cell": cells[0],
        "hour": hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **sides,
    }
    return orjson.dumps(record)


@pytest.fixture
def log_text() -> str:
    lines = [
        _line(H, (2.0, 2.0), (3.0, 3.0)),  # actual 3 in CELL7 (all three events), 3 in CELL8
        _line(H, (2.0, 2.0), (3.0, 3.0)),  # the same cell-hour asked again
        _line(H + pd.Timedelta(hours=1), (1.0, 1.0), (0.5, 0.0)),  # actual 0 in both
        _line(H + pd.Timedelta(hours=1), (4.0, 4.0), (1.0, 1.0), cells=(OTHER7, OTHER7)),  # 2
        _line(H + pd.Timedelta(hours=3), (1.0, 1.0), (1.0, 1.0)),  # the last events' hour
        _line(H - pd.Timedelta(hours=5), (1.0, 1.0), (1.0, 1.0)),  # before the events
        _line(H, (5.0, 5.0), (1.0, 1.0), versions=("1", "2"), asked="2026-02-27"),  # earlier pair
    ]
    return "\n".join(line.decode() for line in lines) + '\n{"request_time": "2026-03-0'


@pytest.fixture
def events() -> pd.DataFrame:
    return _events(
        [
            (CENTRE, H, 3),
            ((50.60, -104.2), H + pd.Timedelta(hours=1), 2),
            (CENTRE, H + pd.Timedelta(hours=3), 1),  # the events end in this hour
        ]
    )


def test_the_log_is_scored_row_for_row_against_each_models_own_cell(log_text, events):
    predictions, summary = parse_shadow_log(log_text)
    assert summary == {"logged_predictions": 7, "malformed_lines": 1}
    rows, coverage = join_actual_counts(predictions, events)
    assert rows["status"].tolist() == [
        "known",
        "known",
        "known",
        "known",
        "pending",
        "before_data",
        "known",
    ]
    assert rows["champion_actual"].tolist()[:4] == [3, 3, 0, 2]
    assert rows["challenger_actual"].tolist()[:4] == [3, 3, 0, 2]
    assert coverage["actuals_until"] == (H + pd.Timedelta(hours=3)).isoformat()

    report, metrics = score_shadow(rows, summary, coverage, {"distinct_cell_hours": True})
    assert (report["scored_rows"], report["pending_rows"], report["before_data_rows"]) == (
        4,
        1,
        1,
    )
    latest = report["pairs"][-1]
    assert (latest["champion_version"], latest["challenger_version"], latest["rows"]) == (
        "3",
        "4",
        3,
    )
    # champion: |3-2|, |0-1|, |2-4| -> MAE 4/3; challenger: |3-3|, |0-0.5|, |2-1| -> 1.5/3
    assert latest["champion"]["mae"] == pytest.approx(4 / 3)
    assert latest["challenger"]["mae"] == pytest.approx(0.5)
    assert latest["challenger"]["mae_p50"] == pytest.approx(1 / 3)
    deviance = 2 / 3 * (3 * math.log(3 / 2) - 1 + 1 + 2 * math.log(2 / 4) + 2)
    assert latest["champion"]["mean_poisson_deviance"] == pytest.approx(deviance)
    assert latest["challenger_better"] == {"mae": True, "mean_poisson_deviance": True}
    assert metrics["challenger.mae"] == {"value": pytest.approx(0.5), "step": 0}
    assert metrics["champion.version"]["value"] == 3
    assert metrics["rows"]["value"] == 3


def test_every_logged_prediction_counts_when_asked_to(log_text, events):
    predictions, summary = parse_shadow_log(log_text)
    rows, coverage = join_actual_counts(predictions, events)
    report, _ = score_shadow(rows, summary, coverage, {"distinct_cell_hours": False})
    latest = report["pairs"][-1]
    assert latest["rows"] == 4
    assert latest["champion"]["mae"] == pytest.approx((1 + 1 + 1 + 2) / 4)


def test_no_known_hour_yet_gives_an_empty_comparison(log_text):
    predictions, summary = parse_shadow_log(log_text)
    far = _events([(CENTRE, H - pd.Timedelta(days=30), 1), (CENTRE, H - pd.Timedelta(days=29), 1)])
    rows, coverage = join_actual_counts(predictions, far)
    report, metrics = score_shadow(rows, summary, coverage, {})
    assert (report["scored_rows"], report["pending_rows"], report["pairs"]) == (0, 7, [])
    assert metrics == {}


# ---------------------------------------------------------------- like for like (#24 item 6)
def _unfair_log() -> str:
    """The champion answered days ahead; the challenger, already holding those counts, 1 h
    ahead (near perfect); only the last two rows were answered from the same origin."""
    days_ahead = H - pd.Timedelta(hours=29)
    lines = [
        _line(H, (1.0, 1.0), (3.0, 3.0), horizons=(30, 1), origins=(days_ahead, H)),
        _line(H + pd.Timedelta(hours=1), (1.0, 1.0), (0.0, 0.0), horizons=(31, 1)),
        _line(H, (3.0, 3.0), (1.0, 1.0), horizons=(30, 30), origins=(days_ahead,) * 2),
        _line(
            H + pd.Timedelta(hours=1),
            (2.0, 2.0),
            (1.0, 1.0),
            cells=(OTHER7, OTHER7),
            horizons=(31, 31),
            origins=(days_ahead,) * 2,
        ),
    ]
    return "\n".join(line.decode() for line in lines) + "\n"


def test_rows_answered_from_different_origins_are_not_scored(events):
    predictions, summary = parse_shadow_log(_unfair_log())
    rows, coverage = join_actual_counts(predictions, events)
    assert (rows["status"] == "known").all()
    # Scored as before (nothing told the rows apart), the challenger "wins" on hours it knew.
    unfair, _ = score_shadow(
        rows.assign(
            challenger_horizon_hours=rows["champion_horizon_hours"],
            challenger_origin=rows["champion_origin"],
        ),
        summary,
        coverage,
        {},
    )
    assert unfair["pairs"][0]["challenger_better"] == {"mae": True, "mean_poisson_deviance": True}
    # After: only the like-for-like rows (actual 3 in CELL7, 2 in OTHER7) decide.
    report, metrics = score_shadow(rows, summary, coverage, {})
    assert (report["scored_rows"], report["unmatched_rows"]) == (2, 2)
    (pair,) = report["pairs"]
    assert pair["rows"] == 2
    assert pair["champion"]["mae"] == pytest.approx(0.0)  # |3-3|, |2-2|
    assert pair["challenger"]["mae"] == pytest.approx(1.5)  # |3-1|, |2-1|
    assert pair["challenger_better"] == {"mae": False, "mean_poisson_deviance": False}
    assert metrics["rows"]["value"] == 2


def test_the_same_horizon_with_different_logged_origins_is_not_like_for_like():
    week_later = H - pd.Timedelta(hours=4) + pd.Timedelta(weeks=1)
    text = _line(H, (1.0, 1.0), (1.0, 1.0), origins=(H - pd.Timedelta(hours=4), week_later))
    predictions, _ = parse_shadow_log(text.decode())
    assert not like_for_like(predictions).any()
    assert like_for_like(parse_shadow_log(_line(H, (1.0, 1.0), (1.0, 1.0)).decode())[0]).all()


# ---------------------------------------------------------------- chunks (#24 item 6)
def test_the_log_read_in_chunks_gives_the_same_rows(log_text):
    whole, summary = parse_shadow_log(log_text)
    lines = log_text.splitlines(keepends=True)
    chunks, _ = parse_shadow_log(iter(["".join(lines[:3]), "".join(lines[3:])]))
    pd.testing.assert_frame_equal(chunks, whole)
    assert parse_shadow_log(iter([]))[1] == {"logged_predictions": 0, "malformed_lines": 0}

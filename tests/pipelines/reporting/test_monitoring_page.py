"""The monitoring report opens with the reports' header and shows every condition of a check,
on the report of a real run (the Bay Area bike-share walk-through of docs/new_source.md:
its holiday week fired the level, bias, R² and hour-of-day checks)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from geo_busyness.pipelines.monitoring.report_html import check_condition, render_report_html
from tests.pipelines.reporting.plotly_html import parse_html

REPORT = json.loads(
    (Path(__file__).parent / "data" / "monitoring_report_bikeshare.json").read_text()
)


def _check(name: str) -> dict:
    (check,) = [check for check in REPORT["checks"] if check["name"] == name]
    return check


def test_the_level_check_shows_both_conditions_and_the_verdict() -> None:
    assert check_condition(_check("level_change"), REPORT) == (
        "|level change| 0.604 > 0.15 (true) and p 2.5e-06 < 0.05 (true): yes"
    )
    quiet = copy.deepcopy(REPORT)
    quiet["level"] |= {"relative_change": 0.257, "p_value": 0.03, "p_value_threshold": 0.01}
    check = _check("level_change") | {"fired": False}
    assert check_condition(check, quiet) == (
        "|level change| 0.257 > 0.15 (true) and p 0.03 < 0.01 (false): no"
    )


@pytest.mark.parametrize(
    ("name", "condition"),
    [
        ("courier_lat", "PSI 0.029 > 0.1 (false) or KS D 0.052 > 0.1 (false): no"),
        ("hour_of_day", "PSI 0.217 > 0.05 (true): yes"),
        ("busyness", "PSI 0.070 > 0.1 (false): no"),
        ("r2_drop", "r2_drop 0.9038 > 0.4 (true): yes"),
        ("prediction_bias", "|bias| 0.783 > 0.4 (true): yes"),
        ("unseen_cell_event_share", "unseen_cell_event_share 0 > 0.05 (false): no"),
    ],
)
def test_every_check_names_its_figures_and_thresholds(name: str, condition: str) -> None:
    assert check_condition(_check(name), REPORT) == condition


def test_a_data_quality_check_states_its_increase_in_points() -> None:
    check = {"check": "data_quality", "name": "future_timestamp", "figure": 1.5, "threshold": 1.0}
    assert check_condition(check | {"fired": True}, REPORT) == (
        "reject share increase +1.50 pp > 1 pp (true): yes"
    )


def test_the_page_opens_with_the_header_and_stays_self_contained() -> None:
    page = render_report_html(REPORT, "America/Los_Angeles")
    header = page[page.index('<header class="gb-header">') : page.index("</header>")]
    assert page.index("</header>") < page.index("<h2>Checks</h2>")
    for text in (
        "geo-busyness version 1 (gradient_boosting)",
        "train 2014-01-01 .. 2014-11-30, test 2014-12-08 .. 2014-12-14 (local dates)",
        "America/Los_Angeles: the data window&#x27;s dates; the times below are UTC",
        "passed at registration",
        "<td>seasonal-naive baseline</td>",
    ):
        assert text in header, text
    assert "|level change| 0.604 &gt; 0.15 (true) and p 2.5e-06 &lt; 0.05 (true): yes" in page
    parsed = parse_html(page)
    assert parsed.sources == [] and "<script" not in page and "https://" not in page
    assert "UTC: the data window" in render_report_html(REPORT)  # no zone given: UTC, said so

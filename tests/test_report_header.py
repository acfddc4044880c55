"""The header every HTML report opens with: model, local data window, time zone, gate verdict,
headline metrics beside the best baseline; from an evaluation report or a version's tags."""

from __future__ import annotations

import pytest

from geo_busyness.report_header import (
    best_baseline,
    caption,
    context_from_tags,
    gate_verdict,
    header_html,
    local_dates,
    report_context,
)
from tests.pipelines.reporting.plotly_html import parse_html
from tests.pipelines.reporting.reports import REPORT, WINDOWS, report

TZ = "America/Regina"  # UTC-6 all year


def test_windows_are_local_dates_with_the_exclusive_end_left_out() -> None:
    # 06:00 UTC is midnight in Regina: the window ending 2026-02-09 06:00 ends on the 8th
    assert local_dates(WINDOWS["train_start"], WINDOWS["train_end"], TZ) == (
        "2026-01-05 .. 2026-02-08"
    )
    assert local_dates(WINDOWS["train_start"], WINDOWS["train_end"], "UTC") == (
        "2026-01-05 .. 2026-02-09"
    )


def test_the_context_names_version_window_zone_gate_and_the_best_baseline() -> None:
    context = report_context(REPORT, WINDOWS, TZ)
    assert context["model"] == "version 4 (gradient_boosting)"
    assert context["data_window"] == "train 2026-01-05 .. 2026-02-08, test 2026-02-16 .. 2026-03-01"
    assert context["timezone"] == TZ
    assert context["gate"] == {"status": "passed", "text": "passed: registered as version 4"}
    model, baseline = context["metrics"]["rows"]
    assert model == {
        "name": "model (gradient_boosting)",
        "r2": 0.7365,
        "mae": 0.7197,
        "rmse": 1.351,
    }
    assert baseline["name"] == "best baseline (recent level)"  # lowest MAE of the three
    assert "10,416 cell-hours, the same for both" in context["metrics"]["scope"]
    assert caption(context) == (
        "model version 4 (gradient_boosting); train 2026-01-05 .. 2026-02-08, test 2026-02-16"
        " .. 2026-03-01 (America/Regina)"
    )


def test_not_registered_and_the_gate_s_reasons_are_said() -> None:
    failed = report(
        gate={"passed": False, "reasons": ["test R2 0.41 < min_r2 0.6"]},
        registration={"registered": False},
    )
    context = report_context(failed, WINDOWS, TZ)
    assert context["model"] == "not registered (gradient_boosting)"
    assert context["gate"] == {
        "status": "failed",
        "text": "failed, nothing registered: test R2 0.41 < min_r2 0.6",
    }


def test_a_champion_keeping_its_place_is_not_called_a_failure() -> None:
    tie = {
        "passed": False,
        "baseline_gate_passed": True,
        "reasons": ["does not beat the champion"],
        "champion_comparison": {
            "status": "scored",
            "challenger_wins": False,
            "version": "1",
            "metric": "gate_loss",
            "challenger": 0.98,
            "champion": 0.98,
        },
    }
    verdict = gate_verdict(tie, None)
    assert verdict["status"] == "kept"
    assert verdict["text"].startswith("unchanged: the champion (version 1) keeps serving")


def test_a_report_without_baselines_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"evaluation_report.test has no baseline metrics"):
        best_baseline({"model": {"mae": 1.0}})
    with pytest.raises(ValueError, match=r"evaluation_report lacks 'gate'"):
        report_context({"test": {}, "model_selection": {}}, WINDOWS, TZ)


def test_the_header_html_shows_everything_and_fetches_nothing() -> None:
    page = header_html(report_context(REPORT, WINDOWS, TZ), "geo-busyness <report>")
    assert parse_html(page).sources == [] and "<script" not in page
    for text in (
        "geo-busyness &lt;report&gt;",  # escaped
        "version 4 (gradient_boosting)",
        "train 2026-01-05 .. 2026-02-08, test 2026-02-16 .. 2026-03-01 (local dates)",
        "America/Regina: every time on this page",
        'class="gb-passed">passed: registered as version 4',
        "<td>best baseline (recent level)</td>",
    ):
        assert text in page, text
    # the better figure of each metric is bold: the model's R² and MAE, its RMSE
    assert page.count('class="better"') == 3
    assert '<td class="better">0.720</td>' in page  # model MAE 0.7197 beats 0.7212


def test_the_monitoring_header_comes_from_the_version_s_tags() -> None:
    tags = {f"window_{key}": value for key, value in WINDOWS.items()}
    tags |= {"test_r2": "0.70", "test_mae": "0.80", "test_rmse": "1.40", "gate": "passed"}
    tags |= {"baseline_r2": "0.69", "baseline_mae": "0.81", "baseline_rmse": "1.45"}
    tags["model_type"] = "random_forest"
    context = context_from_tags("geo-busyness", "7", tags, TZ)
    assert context["model"] == "geo-busyness version 7 (random_forest)"
    assert context["data_window"].startswith("train 2026-01-05 .. 2026-02-08")
    assert [row["mae"] for row in context["metrics"]["rows"]] == [0.80, 0.81]
    assert "seasonal-naive baseline" in header_html(context, "Monitoring")
    with pytest.raises(ValueError, match=r"version 7 lacks tags \['window_test_end'\]"):
        context_from_tags("geo-busyness", "7", {**tags, "window_test_end": None}, TZ)

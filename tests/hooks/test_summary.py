"""RunSummaryHook: the summary of the report a run saved, read through the run's catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from geo_busyness.datasets import JSONDataset
from geo_busyness.hooks.summary import RunSummaryHook, report_locations
from tests.operations.test_run_summary import REPORT


def _identity(value: dict) -> dict:
    return value


def test_hook_prints_the_report_the_run_saved_read_through_the_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evaluation_report.json"
    path.write_text(json.dumps(REPORT))
    catalog = DataCatalog(
        {"evaluation_report": JSONDataset(filepath=str(path)), "draft": MemoryDataset()}
    )
    pipeline = Pipeline([Node(_identity, "draft", "evaluation_report", name="gate")])
    RunSummaryHook().after_pipeline_run(pipeline=pipeline, catalog=catalog)
    out = capsys.readouterr().out
    assert "Quality gate: PASSED" in out
    assert f"Reports: {path}" in out  # outside the working directory: as is


def test_reports_under_the_working_directory_are_named_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = DataCatalog(
        {"evaluation_report": JSONDataset(filepath=str(tmp_path / "data" / "report.json"))}
    )
    assert report_locations(["evaluation_report"], catalog) == str(Path("data") / "report.json")


def test_hook_prints_nothing_for_a_run_that_wrote_no_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = DataCatalog({"a": MemoryDataset(1)})
    pipeline = Pipeline([Node(_identity, "a", "b", name="other")])
    RunSummaryHook().after_pipeline_run(pipeline=pipeline, catalog=catalog)
    assert capsys.readouterr().out == ""

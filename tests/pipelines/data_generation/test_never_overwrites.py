"""Issue #15 item 8: data generation never writes where a user's data is."""

from __future__ import annotations

from types import SimpleNamespace

import click
import pandas as pd
import pytest
from click.testing import CliRunner
from kedro.io import DataCatalog

from geo_busyness.cli import cli, generation_decision
from tests.conftest import generation_params, inside, make_project_copy, run_kedro

USER_ROWS = "courier_location_timestamp,courier_lat,courier_lon\n2026-01-05T10:00:00,50.45,-104.6\n"


def _catalog(raw: str, generated: str) -> DataCatalog:
    csv = "geo_busyness.datasets.CSVDataset"
    return DataCatalog.from_config(
        {
            "raw_events": {"type": csv, "filepath": raw},
            "generated_events": {
                "type": "geo_busyness.datasets.GeneratedCSVDataset",
                "filepath": generated,
            },
        }
    )


def test_no_generation_when_raw_events_exist_wherever_they_point(tmp_path):
    mine = tmp_path / "mine" / "events.csv"
    mine.parent.mkdir()
    mine.write_text(USER_ROWS)
    generate, why = generation_decision(_catalog(str(mine), str(tmp_path / "default.csv")))
    assert not generate
    assert str(mine) in why


def test_generation_where_raw_events_default_to_and_are_absent(tmp_path):
    default = str(tmp_path / "default.csv")
    assert generation_decision(_catalog(default, default))[0]


def test_raw_events_pointing_at_a_missing_file_is_an_error_not_a_generation(tmp_path):
    with pytest.raises(click.ClickException) as refused:
        generation_decision(_catalog(str(tmp_path / "typo.csv"), str(tmp_path / "default.csv")))
    assert "typo.csv" in refused.value.message


@pytest.mark.slow
def test_the_readme_path_never_replaces_the_users_file(tmp_path):
    """The report: point the catalog at your file, `make run`: the CSV became synthetic rows."""
    project = make_project_copy(tmp_path / "project")
    mine = project / "my_data" / "events.csv"
    mine.parent.mkdir()
    mine.write_text(USER_ROWS)
    (project / "conf" / "local" / "catalog.yml").write_text(
        "raw_events:\n  type: geo_busyness.datasets.CSVDataset\n  filepath: my_data/events.csv\n"
    )
    with inside(project):
        result = CliRunner().invoke(
            cli, ["generate-data"], obj=SimpleNamespace(project_path=project)
        )
    assert result.exit_code == 0, result.output
    assert "nothing generated" in result.output
    assert mine.read_text() == USER_ROWS
    assert not (project / "data" / "01_raw" / "courier_events.csv").exists()


@pytest.mark.slow
def test_generation_refuses_to_overwrite_a_file_it_did_not_write(tmp_path):
    project = make_project_copy(tmp_path / "project")
    raw = project / "data" / "01_raw" / "courier_events.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(USER_ROWS)
    with pytest.raises(Exception, match="will not overwrite"):
        run_kedro(project, ["data_generation"], generation_params(n_events=2000, weeks=1))
    assert raw.read_text() == USER_ROWS
    # what it wrote itself it may write again
    raw.unlink()
    run_kedro(project, ["data_generation"], generation_params(n_events=2000, weeks=1))
    run_kedro(project, ["data_generation"], generation_params(n_events=2000, weeks=1, seed=3))
    assert len(pd.read_csv(raw)) > 100

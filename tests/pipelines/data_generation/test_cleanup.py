"""Issue #23 item 7: a failed ``kedro generate-data`` removes what it wrote.

The report: with the user's own ``recent_events.csv`` in place, generation wrote the synthetic
``courier_events.csv``, then refused to overwrite the user's file and failed; the next
``make data`` found ``raw_events`` and trained on the synthetic history beside the user's file.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from kedro.io import DataCatalog

from geo_busyness.cli import cli
from geo_busyness.datasets import GENERATED_MARKER_SUFFIX
from geo_busyness.pipelines.data_generation.cleanup import file_states, remove_written
from tests.conftest import generation_params, inside, make_project_copy

ROWS = pd.DataFrame({"courier_lat": [50.45], "courier_lon": [-104.6]})
USER_ROWS = "courier_location_timestamp,courier_lat,courier_lon\n2026-03-02T10:00:00,50.45,-104.6\n"


def _catalog(folder: Path) -> DataCatalog:
    generated = "geo_busyness.datasets.GeneratedCSVDataset"
    return DataCatalog.from_config(
        {
            name: {"type": generated, "filepath": str(folder / f"{name}.csv")}
            for name in ("new", "regenerated", "untouched", "users")
        }
    )


def test_only_files_the_failed_run_wrote_are_removed(tmp_path):
    catalog = _catalog(tmp_path)
    catalog.save("regenerated", ROWS)  # an earlier generation's file, and its marker
    catalog.save("untouched", ROWS)
    (tmp_path / "users.csv").write_text(USER_ROWS)
    before = file_states(catalog, ["new", "regenerated", "untouched", "users", "params:x"])

    catalog.save("new", ROWS)  # what the failed run wrote
    catalog.save("regenerated", ROWS.assign(courier_lat=1.0))
    (tmp_path / "users.csv").write_text(USER_ROWS * 2)  # the user's, changed meanwhile

    removed = remove_written(catalog, before)

    assert sorted(Path(path).name for path in removed) == ["new.csv", "regenerated.csv"]
    for name in ("new", "regenerated"):
        assert not (tmp_path / f"{name}.csv").exists()
        assert not (tmp_path / f"{name}.csv{GENERATED_MARKER_SUFFIX}").exists()
    assert (tmp_path / f"untouched.csv{GENERATED_MARKER_SUFFIX}").exists()
    assert (tmp_path / "users.csv").read_text() == USER_ROWS * 2


def test_a_file_written_without_its_marker_is_removed_too(tmp_path):
    """A save that died between the file and its marker: new during the run, so the run's."""
    catalog = _catalog(tmp_path)
    before = file_states(catalog, ["new"])
    (tmp_path / "new.csv").write_text("half a fi")
    assert [Path(path).name for path in remove_written(catalog, before)] == ["new.csv"]


@pytest.mark.slow
def test_a_failed_generation_leaves_no_synthetic_history_beside_the_users_recent_file(
    tmp_path,
):
    project = make_project_copy(tmp_path / "project")
    (project / "conf" / "local" / "parameters_data_generation.yml").write_text(
        yaml.safe_dump(generation_params(n_events=2000, weeks=1))
    )
    raw = project / "data" / "01_raw"
    (raw / "recent_events.csv").write_text(USER_ROWS)

    with inside(project):
        result = CliRunner().invoke(
            cli, ["generate-data"], obj=SimpleNamespace(project_path=project)
        )

    assert result.exit_code != 0
    assert "will not overwrite" in str(result.exception) + result.output
    assert (raw / "recent_events.csv").read_text() == USER_ROWS
    assert sorted(path.name for path in raw.iterdir()) == ["recent_events.csv"]
    assert "removed what it wrote" in result.output

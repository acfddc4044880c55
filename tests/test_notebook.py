"""notebooks/exploration.ipynb runs top to bottom against a trained project, through Kedro's
Jupyter integration (`%load_ext geo_busyness.notebook` loads `kedro.ipython`), and draws its
matplotlib and plotly figures. The kernel starts in `notebooks/`, as Jupyter starts it: the log
is the project's plain one (no Rich escape codes), no TqdmWarning, and no stray MLflow store
or log file appears beside the notebook."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from geo_busyness.notebook import logging_config_path, project_root
from geo_busyness.testing import PROJECT_ROOT
from tests.conftest import TrainedProject, copy_project

NOTEBOOK = PROJECT_ROOT / "notebooks" / "exploration.ipynb"
#: An ANSI escape sequence (Rich's colours and links) in a text output.
ANSI = re.compile(r"\x1b\[|\x1b\]")


def _texts(notebook: nbformat.NotebookNode) -> list[str]:
    """Every text a reader sees: streams, errors, and the plain text of displayed data."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(str(output.get("data", {}).get("text/plain", "")))
            texts.extend(output.get("traceback", []))
    return texts


@pytest.fixture
def cloned(trained_project: TrainedProject, tmp_path: Path) -> Path:
    """The trained project as a clone has it: the committed conf/logging.yml and the relative
    ``sqlite:///mlflow.db`` of conf/base/mlflow.yml (test copies name their store by absolute
    path, which would hide a store created relative to the kernel's folder), a notebooks/."""
    project = copy_project(trained_project.path, tmp_path / "project", with_mlflow=True)
    for name in ("conf/logging.yml", "conf/base/mlflow.yml"):
        shutil.copy(PROJECT_ROOT / name, project / name)
    (project / "notebooks").mkdir()
    return project


def test_exploration_notebook_runs_without_errors(
    trained_project: TrainedProject, cloned: Path
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    folder = cloned / "notebooks"
    beside = set(folder.iterdir())
    client = NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},  # where Jupyter starts the kernel
    )
    client.execute()  # raises CellExecutionError naming the failing cell

    assert set(folder.iterdir()) == beside, "files appeared beside the notebook"
    texts = _texts(notebook)
    assert [t[:200] for t in texts if ANSI.search(t)] == [], "Rich escape codes in the outputs"
    assert [t[:300] for t in texts if "TqdmWarning" in t or "IProgress" in t] == []
    log = "".join(texts)
    assert "INFO    kedro.ipython: Defined global variable 'context'" in log  # the plain log
    assert (cloned / "info.log").exists()  # the project's file log, in the project root

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "clean events" in printed and "quarantined" in printed
    assert "share of zero-busyness cell-hours" in printed
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 2, "the hour-of-day and error plots did not render"
    plotly_figures = [
        output["data"]["application/vnd.plotly.v1+json"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "application/vnd.plotly.v1+json" in output.get("data", {})
    ]
    assert len(plotly_figures) == 2, "the forecast timeline and the busyness map did not render"
    assert "Busyness per H3 cell" in printed
    n_cells = trained_project.test_predictions["h3_cell"].nunique()
    maps = [t for t in plotly_figures[1]["data"] if t.get("type") == "choroplethmap"]
    assert len(maps) == 2 and all(len(t["locations"]) == n_cells for t in maps)  # both sides


# ---------------------------------------------------------------- geo_busyness.notebook's parts


def test_the_logging_configuration_is_the_projects_unless_kedro_is_told_otherwise(monkeypatch):
    monkeypatch.delenv("KEDRO_LOGGING_CONFIG", raising=False)
    assert logging_config_path(PROJECT_ROOT) == PROJECT_ROOT / "conf" / "logging.yml"
    monkeypatch.setenv("KEDRO_LOGGING_CONFIG", "conf/other_logging.yml")
    assert logging_config_path(PROJECT_ROOT) == PROJECT_ROOT / "conf" / "other_logging.yml"


def test_the_project_is_found_from_its_notebooks_folder(tmp_path):
    assert project_root(PROJECT_ROOT / "notebooks") == PROJECT_ROOT
    with pytest.raises(RuntimeError, match="is not inside a Kedro project"):
        project_root(tmp_path)

"""notebooks/exploration.ipynb runs top to bottom against a trained project, through Kedro's
Jupyter integration (`%load_ext kedro.ipython`), and draws its matplotlib and plotly figures."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from geo_busyness.testing import PROJECT_ROOT
from tests.conftest import TrainedProject

NOTEBOOK = PROJECT_ROOT / "notebooks" / "exploration.ipynb"


def test_exploration_notebook_runs_without_errors(trained_project: TrainedProject) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(trained_project.path)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell

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

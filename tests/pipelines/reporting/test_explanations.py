"""The SHAP summary node on the serving tests' small model: the sample, the table, the PNG
written by the catalog's dataset (and its kedro-viz preview), and the baseline statement."""

from __future__ import annotations

import base64
import copy
import inspect
import json

import numpy as np
import pandas as pd
import pytest

from geo_busyness.datasets import JSONDataset, MatplotlibDataset
from geo_busyness.model.explain import explain_rows, global_summary
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.pipelines.reporting.explanations import day_ahead_sample, shap_summary
from tests.serving.model_fixture import END, fit_model

WINDOWS = {"test_start": (END - pd.Timedelta(days=7)).isoformat(), "test_end": END.isoformat()}
PARAMS = {"random_state": 0, "explanations": {"rows": 500, "features": 8}}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model() -> BusynessForecaster:
    """The small gradient boosting forecaster, with a blend as the modeling pipeline sets it."""
    blended = copy.copy(fit_model())
    blended.blend_weights_ = [[0.9, 0.0], [0.6, 0.2], [0.4, 0.3]]
    return blended


def test_the_sample_is_seeded_day_ahead_rows_of_the_test_window(model):
    rows, origin, horizon = day_ahead_sample(model, WINDOWS, 500, seed=0)
    assert len(rows) == 500
    start, end = model.history_.positions(
        np.array([pd.Timestamp(WINDOWS[key]).value for key in ("test_start", "test_end")])
    )
    assert (origin >= start).all() and (origin + horizon - 1 < end).all()
    assert (model.derived.calendar["hour"][origin] == 0).all()  # local midnights
    assert horizon.min() >= 1 and horizon.max() <= 24
    again = day_ahead_sample(model, WINDOWS, 500, seed=0)
    assert all((a == b).all() for a, b in zip((rows, origin, horizon), again, strict=True))


def test_the_summary_ranks_features_by_mean_absolute_contribution(model, tmp_path):
    summary, figure = shap_summary(model, WINDOWS, PARAMS, "model v4; data 2026-01-05 ..")
    assert figure.get_suptitle().endswith("\nmodel v4; data 2026-01-05 ..")  # version, window
    assert summary["method"] == "gradient_boosting"
    assert summary["scale"] == "log ratio to the cell's seasonal profile"
    assert summary["learned_weight_by_horizon_hours"] == {"1-3": 0.9, "4-24": 0.6, "25-168": 0.4}
    assert summary["sample"]["rows_explained"] == 500
    table = pd.DataFrame(summary["features"])
    assert list(table.columns) == ["feature", "mean_abs_contribution", "mean_contribution"]
    assert sorted(table["feature"]) == sorted(model.feature_names_)
    assert table["mean_abs_contribution"].is_monotonic_decreasing
    expected = global_summary(explain_rows(model, *day_ahead_sample(model, WINDOWS, 500, 0)))
    pd.testing.assert_frame_equal(table, expected)
    bars = figure.axes[0]
    labels = {
        tick: label.get_text()
        for tick, label in zip(bars.get_yticks(), bars.get_yticklabels(), strict=True)
    }
    top_down = [labels[tick] for tick in sorted(labels, reverse=True)]
    assert top_down == table["feature"].head(8).tolist()  # the largest on top
    path = tmp_path / "reporting" / "shap_summary.png"
    dataset = MatplotlibDataset(filepath=str(path), save_args={"dpi": 60})
    dataset.save(figure)
    assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000
    assert not list(path.parent.glob("*.partial"))
    # kedro-viz shows an image preview: the preview type named by the annotation, base64 PNG
    annotation = inspect.signature(dataset.preview).return_annotation
    assert getattr(annotation, "__name__", str(annotation)) == "ImagePreview"
    assert base64.b64decode(dataset.preview()) == path.read_bytes()
    summary_file = tmp_path / "reporting" / "shap_summary.json"
    JSONDataset(filepath=str(summary_file)).save(summary)
    assert json.loads(summary_file.read_text())["features"][0] == summary["features"][0]


def test_a_baseline_summary_says_so_instead_of_failing(model, tmp_path):
    baseline = BusynessForecaster(method="seasonal_naive").fit(model.history_, model.cell_features_)
    summary, figure = shap_summary(baseline, WINDOWS, PARAMS, "model not registered; data ..")
    assert figure.get_suptitle().endswith("\nmodel not registered; data ..")
    assert summary["features"] == [] and summary["scale"] is None
    assert "the statistical baseline 'seasonal_naive'" in summary["statement"]
    assert "no learned feature contributions" in summary["statement"]
    texts = " ".join(text.get_text() for text in figure.texts)
    assert "statistical baseline 'seasonal_naive'" in texts.replace("\n", " ")
    path = tmp_path / "shap_summary.png"
    MatplotlibDataset(filepath=str(path)).save(figure)
    assert path.read_bytes().startswith(PNG)

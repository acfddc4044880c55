"""feature_engineering run in memory (SequentialRunner, MemoryDatasets) on a tiny city."""

from __future__ import annotations

from typing import Any

import pandas as pd

from geo_busyness.schemas import HOUR, TARGET


def _window(windows: dict[str, str], name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(windows[f"{name}_start"]), pd.Timestamp(windows[f"{name}_end"])


def test_panels_are_dense_cells_by_hours_inside_their_windows(
    features_in_memory: dict[str, Any],
) -> None:
    windows = features_in_memory["time_windows"]
    for name in ("train", "validation", "test"):
        panel = features_in_memory[f"{name}_panel"]
        start, end = _window(windows, name)
        hours = pd.date_range(start, end, freq="h", inclusive="left")
        assert panel[HOUR].between(start, end, inclusive="left").all(), name
        assert len(panel) == panel["cell"].nunique() * len(hours), name
        assert (panel[TARGET] >= 0).all() and panel[TARGET].sum() > 0, name


def test_the_count_history_holds_every_panel_count(features_in_memory: dict[str, Any]) -> None:
    history = features_in_memory["count_history"]
    panels = [features_in_memory[f"{name}_panel"] for name in ("train", "validation", "test")]
    assert history.counts.sum() == sum(panel[TARGET].sum() for panel in panels)
    assert history.counts.shape[1] == sum(panel[HOUR].nunique() for panel in panels)

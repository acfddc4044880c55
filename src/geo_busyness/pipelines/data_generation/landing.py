"""A week of the synthetic city dropped into the ingestion's landing folder, as a new export
would arrive (for soaks and demonstrations; docs/ingestion.md).

Week 0 is the week right after the generated history (the dates of ``recent_events.csv``),
week 1 the one after, and so on. ``scale`` multiplies the week's demand (1.3: a 30% level
shift). The batch is ``data/01_raw/landing/synthetic_week_NN.csv``: landing the same week
again with another ``scale`` is a corrected batch, which the ingestion puts in place of the
first.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.config import OmegaConfigLoader

from geo_busyness import settings
from geo_busyness.schemas import EVENT_TIME, ORDER_CREATED, ORDER_NUMBER

from .nodes import generate_recent_events, history_hours

#: Added to the order numbers of week ``i`` times ``i``: weeks generated in separate calls
#: never share an order number (the cleaning would reject a repeat as a duplicate order).
ORDER_BLOCK = 100_000_000
_WEEK = pd.Timedelta(weeks=1)


def batch_name(week_index: int) -> str:
    """``synthetic_week_03``: the landed file's name without ``.csv`` (the batch's name)."""
    return f"synthetic_week_{week_index:02d}"


def synthetic_batch(
    params: dict[str, Any], source_timezone: str, week_index: int, scale: float = 1.0
) -> pd.DataFrame:
    """Raw rows (the source's schema, faults included) of week ``week_index`` after the
    history, with demand times ``scale`` (on top of any ``shift`` in ``params``).

    The generator draws the recent weeks in one stream; the weeks up to ``week_index`` are
    drawn and this one's rows kept (a row whose own time is spoilt goes with the row before
    it: rows come in time order).
    """
    if week_index < 0:
        raise ValueError(
            f"week_index must be 0 or more (0 = the week after the history), got {week_index}."
        )
    if scale <= 0:
        raise ValueError(f"scale must be above 0 (1.3 = 30% more demand), got {scale}.")
    shift = dict(params.get("shift") or {})
    shift["level_factor"] = shift.get("level_factor", 1.0) * scale
    weeks = {**params, "recent_weeks": week_index + 1, "shift": shift}
    raw, _queries = generate_recent_events(weeks, source_timezone)
    start = history_hours(params)[-1] + pd.Timedelta(hours=1)
    week = _week_of_rows(raw, start, week_index + 1)
    batch = raw.loc[week == week_index].reset_index(drop=True)
    if ORDER_NUMBER in batch:
        batch[ORDER_NUMBER] = batch[ORDER_NUMBER] + week_index * ORDER_BLOCK
    return batch


def _week_of_rows(raw: pd.DataFrame, start: pd.Timestamp, weeks: int) -> np.ndarray:
    """The week (0-based from ``start``) of each row by its ping time, else its order's
    creation time, else the row before it."""
    week = pd.Series(np.nan, index=raw.index)
    for column in (EVENT_TIME, ORDER_CREATED):
        times = pd.to_datetime(raw[column], errors="coerce", format="ISO8601")
        index = ((times - start) // _WEEK).astype(float)
        valid = index.notna() & (index >= 0) & (index < weeks)
        week = week.where(week.notna() | ~valid, index)
    return week.ffill().bfill().to_numpy(dtype=float)


def land_synthetic_batch(
    project_path: str | Path,
    week_index: int,
    scale: float = 1.0,
    *,
    env: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write week ``week_index`` of the project's synthetic city (its ``data_generation``
    parameters, ``overrides`` merged as ``--params`` would be) into its local landing folder,
    whole or not at all; returns the file's path."""
    project = Path(project_path).resolve()
    # The project's own loader arguments (environments, merge, ``oc.env`` in globals).
    loader_args = {**settings.CONFIG_LOADER_ARGS, "default_run_env": env or "local"}
    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), runtime_params=overrides or {}, **loader_args
    )
    params = loader["parameters"]
    root = str(params.get("data_root") or loader["globals"]["data_root"])
    if "://" in root:
        raise ValueError(
            f"land_synthetic_batch writes to a local landing folder; data_root is {root}."
            f" Write the batch locally and copy it to {root}/01_raw/landing/."
        )
    batch = synthetic_batch(
        params["data_generation"],
        params["data_processing"]["source_timezone"],
        week_index,
        scale,
    )
    landing = project / root / "01_raw" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    path = landing / f"{batch_name(week_index)}.csv"
    staged = landing / f".{path.name}.{uuid.uuid4().hex}.partial"
    try:
        batch.to_csv(staged, index=False)
        os.replace(staged, path)  # the ingestion never sees half a file
    finally:
        staged.unlink(missing_ok=True)
    return path

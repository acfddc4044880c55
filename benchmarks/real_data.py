"""Backtest the forecasters on any point-event CSV: model beside the baselines, per product/bucket.

Reads a CSV (or a zip holding one) with a timestamp and a point, maps it onto the canonical
schema by the column names given, counts events per H3 cell and hour, and runs the same
rolling-origin protocol as the modeling pipeline: candidates fitted on the train window,
chosen on the validation window, the chosen one refitted through validation and scored on the
test window beside the plain seasonal-naive and level-adjusted baselines on the same
cells x hours. It is a benchmark, not a test: the data stays outside the project.

    uv run python benchmarks/real_data.py ../shared/data/lyft_nyc_2014/Lyft_B02510.csv.zip \
        --time time_of_trip --lat start_lat --lon start_lng --format "%m/%d/%Y %H:%M" \
        --timezone America/New_York --resolution 8 \
        --history-start 2014-08-08 --test-start 2014-09-17 --test-end 2014-10-01
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geo_busyness.model.cell_hours import count_cell_hours
from geo_busyness.model.features import BusynessFeatures
from geo_busyness.model.forecaster import METHODS, BusynessForecaster
from geo_busyness.model.history import history_from_counts
from geo_busyness.pipelines.modeling.backtest import backtest_means, score, score_table
from geo_busyness.schemas import (
    CELL,
    EVENT_LAT,
    EVENT_LON,
    EVENT_TIME,
    VENUE_ID,
    VENUE_LAT,
    VENUE_LON,
)

BASELINES = ("seasonal_naive", "level_adjusted")


def load_events(args: argparse.Namespace) -> pd.DataFrame:
    """The CSV's events in the canonical schema (UTC times), rows without a time or point dropped."""
    raw = pd.read_csv(args.csv, usecols=[args.time, args.lat, args.lon])
    times = pd.to_datetime(raw[args.time], format=args.format, errors="coerce")
    if times.dt.tz is None:
        times = times.dt.tz_localize(args.timezone, ambiguous="NaT", nonexistent="NaT")
    events = pd.DataFrame(
        {
            EVENT_TIME: times.dt.tz_convert("UTC"),
            EVENT_LAT: pd.to_numeric(raw[args.lat], errors="coerce"),
            EVENT_LON: pd.to_numeric(raw[args.lon], errors="coerce"),
        }
    ).dropna()
    events = events[(events[EVENT_LAT].abs() <= 90) & (events[EVENT_LON].abs() <= 180)]
    for column in (VENUE_LAT, VENUE_LON):
        events[column] = np.nan
    events[VENUE_ID] = pd.Series(pd.NA, index=events.index, dtype="Int64")
    return events.reset_index(drop=True)


def local_midnight(day: str | None, timezone: str) -> pd.Timestamp | None:
    """A local date's midnight in UTC (None stays None)."""
    return None if day is None else pd.Timestamp(day, tz=timezone).tz_convert("UTC")


def main() -> None:
    """Parse arguments, run the protocol, print the table (and write JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--time", default=EVENT_TIME)
    parser.add_argument("--lat", default=EVENT_LAT)
    parser.add_argument("--lon", default=EVENT_LON)
    parser.add_argument("--format", default=None, help="strftime format of the timestamps")
    parser.add_argument("--timezone", default="UTC", help="the source's local time zone")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--history-start", default=None, help="local date; default: first event")
    parser.add_argument("--test-start", default=None, help="local date; default: test-end - 7 d")
    parser.add_argument(
        "--test-end", default=None, help="local date (exclusive); default: data end"
    )
    parser.add_argument("--validation-days", type=int, default=7)
    parser.add_argument("--max-train-rows", type=int, default=600_000)
    parser.add_argument("--exclude", nargs="*", default=(), help="features left out")
    parser.add_argument("--model-params", default="{}", help="JSON of forecaster parameters")
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    args = parser.parse_args()
    started = time.perf_counter()

    events = load_events(args)
    tz = args.timezone
    end = local_midnight(args.test_end, tz) or events[EVENT_TIME].max().floor("h") + pd.Timedelta(
        hours=1
    )
    test_start = local_midnight(args.test_start, tz) or end - pd.Timedelta(days=7)
    validation_start = test_start - pd.Timedelta(days=args.validation_days)
    start = local_midnight(args.history_start, tz) or events[EVENT_TIME].min().floor("h")
    events = events[(events[EVENT_TIME] >= start) & (events[EVENT_TIME] < end)]
    counts = count_cell_hours(events, args.resolution)
    history_events = events[events[EVENT_TIME] < test_start]
    train_events = events[events[EVENT_TIME] < validation_start]
    cells = np.unique(count_cell_hours(history_events, args.resolution)[CELL].to_numpy())
    history = history_from_counts(counts, cells, start, end, tz)
    cell_features = BusynessFeatures(
        resolution=args.resolution,
        exclude_features=("cell_hour_of_week_mean", "neighbours_hour_of_week_mean", "lag_168h"),
        horizon_hours=168,
        lags_hours=(168,),
    ).fit(train_events, window_start=start, window_end=validation_start)
    position = {
        name: int((moment - start) // pd.Timedelta(hours=1))
        for name, moment in (("validation", validation_start), ("test", test_start), ("end", end))
    }

    def fitted(method: str, train_end: int) -> BusynessForecaster:
        return BusynessForecaster(
            method=method,
            max_train_rows=args.max_train_rows,
            exclude_features=args.exclude,
            **json.loads(args.model_params),
        ).fit(history, cell_features, train_end=train_end)

    # Validation: every candidate fitted on train, intervals calibrated, scored; pick the best.
    candidates = {m: fitted(m, position["validation"]) for m in METHODS}
    fit_seconds = time.perf_counter() - started
    val = backtest_means(candidates, position["validation"], position["test"])
    for name, forecaster in candidates.items():
        pooled = pd.concat(val.values())
        forecaster.calibrate_intervals(pooled["actual"].to_numpy(), pooled[name].to_numpy())
    sizes = {name: f.size_ for name, f in candidates.items()}
    val_scores = score(val, sizes, reference="seasonal_naive")
    mean_mae = {
        m: np.mean([row[m]["mean_poisson_deviance"] for row in val_scores]) for m in METHODS
    }
    chosen = min(mean_mae, key=mean_mae.get)

    # Test: the chosen one refitted through validation, beside the baselines.
    final = {"chosen": fitted(chosen, position["test"])}
    final["chosen"].size_ = sizes[chosen]
    final |= {b: candidates[b] for b in BASELINES}
    test = backtest_means(final, position["test"], position["end"])
    test_sizes = {"chosen": sizes[chosen], **{b: None for b in BASELINES}}
    test_scores = score(test, test_sizes, reference="seasonal_naive")

    pd.set_option("display.width", 200)
    print(
        f"events {len(events):,}  cells {len(cells):,}  hours {history.hours:,}  res {args.resolution}"
    )
    print(
        f"validation Poisson deviance by candidate: { {m: round(v, 4) for m, v in mean_mae.items()} }"
    )
    print(f"chosen: {chosen}  (negative-binomial size {sizes[chosen]})")
    table = score_table(test_scores, ["chosen", "seasonal_naive", "level_adjusted"])
    columns = [
        "product",
        "bucket",
        "rows",
        "chosen_mae",
        "seasonal_naive_mae",
        "level_adjusted_mae",
        "chosen_skill_mae",
        "level_adjusted_skill_mae",
        "chosen_rmse",
        "seasonal_naive_rmse",
        "chosen_skill_rmse",
        "chosen_r2",
        "seasonal_naive_r2",
        "chosen_coverage_80",
        "chosen_pit_coverage_80",
    ]
    print(table[columns].round(3).to_string(index=False))
    print(f"wall {time.perf_counter() - started:.1f} s (candidates fitted in {fit_seconds:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"chosen": chosen, "test": test_scores}, indent=2))


if __name__ == "__main__":
    main()

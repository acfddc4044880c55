"""Calibrate the monitoring level and bias checks on unshifted and level-shifted recent weeks.

For each data set (the tests' small city at several generator seeds, the default data at
others) it trains a model in a scratch copy of the project (data_generation, data_processing,
feature_engineering, modeling, as the tests' ``trained_project`` fixture does), then for each
recent random stream and ``data_generation.shift.level_factor`` it writes the recent week to
the project's ``recent_raw_events``, cleans it with the data_processing nodes and runs the
monitoring nodes the level check uses (``extend_monitored_model``, ``score_recent_cell_hours``,
``compare_level``) against the registered model, with the thresholds of
``conf/base/parameters_monitoring.yml``. The recent stream is the generator's
``RECENT_STREAM`` (1 is what ``kedro run --pipelines data_generation`` writes), set here
per week.

Prints a markdown table (one row per data set and factor: ranges over the streams, and how
many weeks each check fires), then how many weeks other level thresholds would fire on, and
writes every figure to
``benchmarks/results/monitoring_level-<utc time>.json``.

    uv run python benchmarks/monitoring_level.py --small-seeds 42 7 11 5 --default-seeds 42 \
        --streams 1 2 3 4 5 6 --factors 1.0 0.8 1.1 1.2 1.3

About 4 minutes per default data set (training) and 30 s per small one, plus 1-5 s a week.
``--workdir DIR`` keeps the trained projects and reuses them on the next call. ``--toy`` is
the test suite's run (one small city of 10,000 events with the baselines alone, registered
whatever the gate says, one week at x1.0 and at x1.3); ``--json PATH`` writes the figures
there instead of ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from geo_busyness.pipelines.data_generation import nodes as generation
from geo_busyness.pipelines.data_processing.nodes import map_to_canonical, split_clean_and_rejected
from geo_busyness.pipelines.monitoring.level import compare_level
from geo_busyness.pipelines.monitoring.nodes import (
    extend_monitored_model,
    score_recent_cell_hours,
)
from geo_busyness.registry import load_version, select_model_version
from geo_busyness.testing import PROJECT_ROOT, make_project_copy, run_report

sys.path.insert(0, str(PROJECT_ROOT))
from tests.conftest import SMALL_GENERATION, SMALL_TRAINING  # noqa: E402 - the tests' city

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
RESULTS = Path(__file__).parent / "results"
#: The suite's toy: a smaller city, the baselines alone (no learned fit), registered anyway.
TOY_GENERATION = {**SMALL_GENERATION, "n_events": 10_000}
TOY_TRAINING = {
    **SMALL_TRAINING,
    "modeling": {
        **SMALL_TRAINING["modeling"],
        "candidates": ["seasonal_naive", "level_adjusted", "recent_level"],
        "register_rejected": True,
    },
}


def run(project: Path, pipelines: list[str], params: dict[str, Any]) -> None:
    """Named pipelines through a KedroSession in ``project``."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.run(pipeline_names=pipelines)


def trained(workdir: Path, seed: int, small: bool, toy: bool = False) -> Path | None:
    """A project trained on the data set (reused when ``workdir`` has it); None when the
    quality gate refused the model (nothing registered to monitor)."""
    project = workdir / f"{'toy' if toy else 'small' if small else 'default'}-{seed}"
    if not (project / "data" / "08_reporting" / "runs" / "evaluation_report.json").exists():
        make_project_copy(project)
        generation_params = {**generation_overrides(small, toy), "seed": seed}
        run(project, ["data_generation", "data_processing"], {"data_generation": generation_params})
        training = TOY_TRAINING if toy else SMALL_TRAINING if small else {}
        run(project, ["feature_engineering", "modeling"], training)
    registered = run_report(project)["registration"].get("registered", False)
    return project if registered else None


def generation_overrides(small: bool, toy: bool) -> dict[str, Any]:
    """The generator parameters a data set changes (none for the default data)."""
    return TOY_GENERATION if toy else SMALL_GENERATION if small else {}


def measure(
    project: Path,
    seed: int,
    small: bool,
    streams: list[int],
    factors: list[float],
    *,
    toy: bool = False,
):
    """Level and bias figures of every (stream, factor) recent week against the project's model,
    with the checkout's monitoring parameters (a reused project may hold older ones)."""
    monitoring = Path("conf") / "base" / "parameters_monitoring.yml"
    shutil.copy(PROJECT_ROOT / monitoring, project / monitoring)
    os.chdir(project)
    bootstrap_project(project)
    context = KedroSession.create(project_path=project).load_context()
    params, catalog = context.params, context.catalog
    version = select_model_version(params["monitoring"])
    model = load_version(version)
    history = catalog.load("clean_events")
    base = {**params["data_generation"], **generation_overrides(small, toy), "seed": seed}
    timezone = params["data_processing"]["source_timezone"]
    rows = []
    for stream in streams:
        generation.RECENT_STREAM = stream
        for factor in factors:
            raw, _ = generation.generate_recent_events(
                {**base, "shift": {"level_factor": factor}}, timezone
            )
            catalog.save("recent_raw_events", raw)
            canonical = map_to_canonical(
                catalog.load("recent_raw_events"), params["data_processing"]["column_mapping"]
            )
            recent, _ = split_clean_and_rejected(canonical, params["data_processing"])
            forecaster, origin = extend_monitored_model(model, history, recent)
            panel = score_recent_cell_hours(recent, forecaster)
            figures = compare_level(forecaster, origin, panel, params["monitoring"])
            level, bias = figures["level"], figures["bias"]
            rows.append(
                {
                    "data": project.name,
                    "method": model.method,
                    "stream": stream,
                    "factor": factor,
                    "actual_total": level["actual_total"],
                    "expected_total": level["expected_total"],
                    "relative_change": level["relative_change"],
                    "p_value": level["p_value"],
                    "standard_error": level["standard_error"],
                    "day_sd": level["day_level_spread"]["sd"],
                    "day_persistence": level["day_level_spread"]["persistence"],
                    "level_fired": level["fired"],
                    "served_forecast_change": level["served_forecast_change"],
                    "bias": bias["bias"],
                    "bias_fired": bias["fired"],
                }
            )
    return rows, params["monitoring"]["thresholds"]


def _span(values: pd.Series, fmt: str) -> str:
    low, high = values.min(), values.max()
    return f"{low:{fmt}} .. {high:{fmt}}" if f"{low:{fmt}}" != f"{high:{fmt}}" else f"{low:{fmt}}"


def table(frame: pd.DataFrame) -> str:
    """One markdown row per data set and factor: ranges over the streams, checks fired."""
    lines = [
        "| data (model) | level factor | weeks | change vs profile | p-value | level fires"
        " | served forecast change | day-ahead bias | bias fires |",
        "| --- | ---: | ---: | --- | --- | ---: | --- | --- | ---: |",
    ]
    for (data, factor), group in frame.groupby(["data", "factor"], sort=False):
        lines.append(
            f"| {data} ({group['method'].iloc[0]}) | {factor:g} | {len(group)}"
            f" | {_span(group['relative_change'], '+.0%')} | {_span(group['p_value'], '.2g')}"
            f" | {int(group['level_fired'].sum())}/{len(group)}"
            f" | {_span(group['served_forecast_change'], '+.0%')}"
            f" | {_span(group['bias'], '+.0%')} | {int(group['bias_fired'].sum())}/{len(group)} |"
        )
    return "\n".join(lines)


def by_factor_table(frame: pd.DataFrame) -> str:
    """One row per data set, one column per factor: change range, lowest p, weeks fired."""
    factors = list(dict.fromkeys(frame["factor"]))
    lines = [
        "| data set (model) | " + " | ".join(f"x{f:g}" for f in factors) + " |",
        "| --- | " + " | ".join("---" for _ in factors) + " |",
    ]
    for data, group in frame.groupby("data", sort=False):
        cells = []
        for factor in factors:
            weeks = group[group["factor"] == factor]
            cells.append(
                f"{_span(weeks['relative_change'], '+.0%')}, p >= {weeks['p_value'].min():.2g}"
                f" ({int(weeks['level_fired'].sum())}/{len(weeks)})"
            )
        lines.append(f"| {data} ({group['method'].iloc[0]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(frame: pd.DataFrame, thresholds: dict[str, Any] | None) -> None:
    """Print every table of the measured weeks."""
    print(f"\nThresholds: {thresholds}\n\n{table(frame)}\n\n{by_factor_table(frame)}\n")
    print(threshold_grid(frame, [0.1, 0.15, 0.2, 0.25], [0.01, 0.02, 0.05, 0.1, 1.0]))


def threshold_grid(frame: pd.DataFrame, changes: list[float], alphas: list[float]) -> str:
    """How many weeks each (level change, p-value) threshold pair would fire on, per factor."""
    factors = list(dict.fromkeys(frame["factor"]))
    lines = [
        "| level_change | level_p_value | " + " | ".join(f"x{f:g}" for f in factors) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in factors) + " |",
    ]
    for change in changes:
        for alpha in alphas:
            fired = (frame["relative_change"].abs() > change) & (frame["p_value"] < alpha)
            counts = fired.groupby(frame["factor"]).agg(["sum", "size"])
            cells = [f"{int(counts.loc[f, 'sum'])}/{int(counts.loc[f, 'size'])}" for f in factors]
            lines.append(f"| {change:g} | {alpha:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, train (or reuse) each data set's model, measure, print, save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-seeds", type=int, nargs="*", default=[42, 7, 11, 5])
    parser.add_argument("--default-seeds", type=int, nargs="*", default=[42])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 0.8, 1.1, 1.2, 1.3])
    parser.add_argument("--workdir", type=Path, default=None, help="keep trained projects here")
    parser.add_argument("--from-json", type=Path, default=None, help="print a saved run's tables")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--toy", action="store_true", help="the test suite's small run")
    args = parser.parse_args()
    if args.toy:
        args.small_seeds, args.default_seeds = [42], []
        args.streams, args.factors = [1], [1.0, 1.3]
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        report(pd.DataFrame(saved["weeks"]), saved["thresholds"])
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="monitoring_level-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, thresholds = [], None
    sets = [(seed, True) for seed in args.small_seeds] + [(s, False) for s in args.default_seeds]
    for seed, small in sets:
        project = trained(workdir.resolve(), seed, small, args.toy)
        if project is None:
            print(f"{'small' if small else 'default'} seed {seed}: gate failed, no model; skipped")
            continue
        measured, thresholds = measure(
            project, seed, small, args.streams, args.factors, toy=args.toy
        )
        rows += measured
        print(table(pd.DataFrame(measured)), flush=True)
    frame = pd.DataFrame(rows)
    report(frame, thresholds)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.json or RESULTS / f"monitoring_level-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "thresholds": thresholds,
                "seconds": round(time.perf_counter() - started, 1),
                "weeks": rows,
            },
            indent=1,
        )
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

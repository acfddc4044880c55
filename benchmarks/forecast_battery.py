"""The forecast battery: the real pipelines over synthetic and real data sets, one table.

Each row runs ``benchmarks/real_data.py`` (data_processing, feature_engineering and modeling in
a scratch copy of the project, exactly as ``kedro run`` does) in its own process, then prints,
per data set x product x horizon bucket: the model's P50 MAE beside the three baselines'
medians (plain seasonal naive, level-adjusted, recent level), its skill against the naive and
against the best of the three, the mean's RMSE beside the best baseline RMSE, the 80%
coverage, the chosen candidate and the gate. The whole result goes to JSON under
``benchmarks/results/``; docs/forecast.md quotes it.

    uv run python benchmarks/forecast_battery.py                 # every row (~15-25 min)
    uv run python benchmarks/forecast_battery.py --rows lyft-7 bikeshare-8-short
    uv run python benchmarks/forecast_battery.py --toy           # a small synthetic city (tests)

The real data sets are read from ``--data`` (default ``../shared/data`` beside the project); a
row whose file is missing is reported as skipped, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
BASELINE_NAMES = ("seasonal_naive", "level_adjusted", "recent_level")
LYFT = "lyft_nyc_2014/Lyft_B02510.csv.zip"
BIKES = "bay_area_bikeshare_2014/babs_2014_trip_starts.csv.zip"
LYFT_ARGS = [
    "--time", "time_of_trip", "--lat", "start_lat", "--lon", "start_lng",
    "--format", "%m/%d/%Y %H:%M", "--timezone", "America/New_York", "--holidays", "US",
]  # fmt: skip
BIKE_ARGS = [
    "--time", "start_time", "--lat", "latitude", "--lon", "longitude",
    "--format", "ISO8601", "--timezone", "America/Los_Angeles", "--holidays", "US",
]  # fmt: skip

#: name -> (source, extra real_data.py arguments). Sources: "synthetic:<variant>" or a file.
ROWS: dict[str, tuple[str, list[str]]] = {
    "synthetic": ("synthetic:default", ["--resolution", "7"]),
    "synthetic-persistence-0": ("synthetic:persistence0", ["--resolution", "7"]),
    "synthetic-test-x1.3": ("synthetic:shift1.3", ["--resolution", "7"]),
    "lyft-7": (LYFT, [*LYFT_ARGS, "--resolution", "7", "--start", "2014-08-08",
                      "--test-start", "2014-09-17", "--end", "2014-10-01"]),
    "lyft-8": (LYFT, [*LYFT_ARGS, "--resolution", "8", "--start", "2014-08-08",
                      "--test-start", "2014-09-17", "--end", "2014-10-01"]),
    "lyft-8-early": (LYFT, [*LYFT_ARGS, "--resolution", "8", "--start", "2014-08-08",
                            "--test-start", "2014-09-03", "--end", "2014-09-14"]),
    "bikeshare-8-long": (BIKES, [*BIKE_ARGS, "--resolution", "8", "--start", "2014-06-02",
                                 "--test-start", "2014-10-20", "--end", "2014-11-03"]),
    "bikeshare-8-short": (BIKES, [*BIKE_ARGS, "--resolution", "8", "--start", "2014-09-22",
                                  "--test-start", "2014-10-13", "--end", "2014-10-21"]),
    "bikeshare-sf-9": ("sf:" + BIKES, [*BIKE_ARGS, "--resolution", "9", "--start", "2014-06-02",
                                       "--test-start", "2014-10-20", "--end", "2014-11-03"]),
}  # fmt: skip
#: The synthetic variants: data_generation parameters, and the last week's level factor.
SYNTHETIC = {
    "default": ({}, None),
    "persistence0": ({"demand": {"day_shock_persistence": 0.0}}, None),
    "shift1.3": ({"shift": {"level_factor": 1.3}}, 1.3),
    "toy": ({"weeks": 5, "n_events": 40_000, "n_restaurants": 60}, None),
}


def synthetic_csv(variant: str, folder: Path) -> Path:
    """Generate the synthetic city (data_generation in a scratch project) as one raw CSV.

    With a level factor, the generated week after the history (its ``recent`` window, shifted
    by ``shift.level_factor``) is appended, so the test window is the shifted week.
    """
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    from geo_busyness.testing import make_project_copy  # noqa: PLC0415

    overrides, factor = SYNTHETIC[variant]
    project = make_project_copy(folder / f"generate-{variant}")
    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, runtime_params={"data_generation": overrides}
    ) as session:
        session.run(pipeline_names=["data_generation"])
    raw = project / "data" / "01_raw"
    events = pd.read_csv(raw / "courier_events.csv", dtype=str, keep_default_na=False)
    if factor is not None:
        recent = pd.read_csv(raw / "recent_events.csv", dtype=str, keep_default_na=False)
        events = pd.concat([events, recent], ignore_index=True)
    path = folder / f"synthetic-{variant}.csv"
    events.to_csv(path, index=False)
    return path


def san_francisco_csv(source: Path, folder: Path) -> Path:
    """The bike-share table's San Francisco rows (its ``city`` column) as a CSV."""
    with zipfile.ZipFile(source) as archive:
        with archive.open(archive.namelist()[0]) as handle:
            table = pd.read_csv(handle)
    path = folder / "bikeshare-sf.csv"
    table[table["city"] == "San Francisco"].to_csv(path, index=False)
    return path


def source_file(source: str, data: Path, folder: Path) -> Path | None:
    """The CSV a row reads (made when synthetic or filtered), or None when it is missing."""
    if source.startswith("synthetic:"):
        return synthetic_csv(source.split(":", 1)[1], folder)
    path = data / source.removeprefix("sf:")
    if not path.exists():
        return None
    return san_francisco_csv(path, folder) if source.startswith("sf:") else path


def run_row(
    name: str, csv: Path, extra: list[str], folder: Path, params: list[str]
) -> dict[str, Any]:
    """real_data.py on one row in its own process; its JSON summary (or the error)."""
    out = folder / f"{name}.json"
    args = [sys.executable, str(HERE / "real_data.py"), str(csv), *extra, "--json", str(out)]
    args += [f"--param={item}" for item in params]
    if str(csv).endswith(".csv") and Path(csv).name.startswith("synthetic-"):
        args.append("--reference-schema")
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603
    wall = time.perf_counter() - started
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        return {"name": name, "error": "\n".join(tail), "wall_s": wall}
    return {"name": name, **json.loads(out.read_text()), "wall_s": wall}


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per product x bucket of a row's backtest."""
    rows = []
    for entry in result["test"]["backtest"]:
        present = [b for b in BASELINE_NAMES if b in entry]
        best_mae = min(entry[b]["mae"] for b in present)
        best_rmse = min(entry[b]["rmse"] for b in present)
        row = {
            "data": result["name"],
            "product": entry["product"],
            "bucket": entry["bucket"],
            "rows": entry["rows"],
            "model_mae": entry["model"]["mae"],
            **{f"{b}_mae": entry[b]["mae"] for b in present},
            "skill_vs_naive": _skill(entry["model"]["mae"], entry["seasonal_naive"]["mae"]),
            "skill_vs_best": _skill(entry["model"]["mae"], best_mae),
            "model_rmse": entry["model"]["rmse"],
            "best_baseline_rmse": best_rmse,
            "rmse_skill_vs_best": _skill(entry["model"]["rmse"], best_rmse),
            "coverage_80": entry["model"]["pit_coverage_80"],
            "chosen": result["chosen"],
            "gate": "passed" if result["gate"]["passed"] else "FAILED",
        }
        rows.append(row)
    return rows


def _headline(result: dict[str, Any]) -> dict[str, float] | None:
    """The day-ahead headline R² and MAE of the model and the seasonal naive (None on error)."""
    test = result.get("test")
    if not test:
        return None
    return {
        f"{who}_{metric}": test[key][metric]
        for who, key in (("model", "model"), ("naive", "seasonal_naive_baseline"))
        for metric in ("r2", "mae")
    }


def _skill(value: float, reference: float) -> float:
    """1 - value / reference (0 where the reference is 0)."""
    return 1.0 - value / reference if reference > 0 else 0.0


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Skill over the best baseline averaged over the real-data rows, per product, with spread."""
    real = table[~table["data"].str.startswith("synthetic")]
    out = {}
    for product, buckets in (("nowcast", ["1-3h"]), ("day_ahead", None)):
        part = real[real["product"] == product]
        if buckets:
            part = part[part["bucket"].isin(buckets)]
        # Each data set's product skill: its buckets weighted by rows.
        per_data = part.groupby("data").apply(
            lambda g: float((g["skill_vs_best"] * g["rows"]).sum() / g["rows"].sum()),
            include_groups=False,
        )
        if len(per_data):
            out[product] = {
                "mean": float(per_data.mean()),
                "min": float(per_data.min()),
                "max": float(per_data.max()),
                "per_data": per_data.round(4).to_dict(),
            }
    return out


def markdown(table: pd.DataFrame, runs: list[dict[str, Any]]) -> str:
    """The battery as the markdown table docs/forecast.md quotes (week-ahead: 25-168 h only;
    its 1-3 h and 4-24 h rows repeat the day-ahead's)."""
    shown = table[(table["product"] != "week_ahead") | (table["bucket"] == "25-168h")]
    lines = [
        "| data | product | bucket | rows | model MAE | naive | level-adj. | recent | skill vs"
        " naive | skill vs best | RMSE skill vs best | coverage | chosen | gate |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        " --- |",
    ]
    for row in shown.to_dict(orient="records"):
        lines.append(
            f"| {row['data']} | {row['product']} | {row['bucket']} | {row['rows']:,} |"
            f" {row['model_mae']:.3f} | {row['seasonal_naive_mae']:.3f} |"
            f" {row['level_adjusted_mae']:.3f} | {row.get('recent_level_mae', float('nan')):.3f} |"
            f" {row['skill_vs_naive']:+.1%} | {row['skill_vs_best']:+.1%} |"
            f" {row['rmse_skill_vs_best']:+.1%} | {row['coverage_80']:.1%} | {row['chosen']} |"
            f" {row['gate']} |"
        )
    failed = [f"- {r['name']}: {r['error'].splitlines()[-1]}" for r in runs if r.get("error")]
    return "\n".join(lines + failed)


def main() -> None:
    """Run the chosen rows, print the table and the summary, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="*", default=None, help=f"a subset of {list(ROWS)}")
    parser.add_argument("--toy", action="store_true", help="one small synthetic row (the test)")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None, help="default: results/<timestamp>")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="real_data.py --param"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also the table as markdown")
    args = parser.parse_args()
    rows = {"toy": ("synthetic:toy", ["--resolution", "7"])} if args.toy else ROWS
    names = args.rows or list(rows)
    unknown = sorted(set(names) - set(rows))
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {list(rows)}")
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    started = time.perf_counter()
    results, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="geo-busyness-battery-") as tmp:
        for name in names:
            source, extra = rows[name]
            folder = Path(tmp) / name
            folder.mkdir()
            csv = source_file(source, args.data, folder)
            if csv is None:
                skipped.append(f"{name}: {args.data / source.removeprefix('sf:')} not found")
                continue
            result = run_row(name, csv, extra, folder, args.param)
            print(f"{name}: {result.get('error') or 'done'} ({result['wall_s']:.0f} s)", flush=True)
            results.append(result)
    done = [r for r in results if "error" not in r]
    table = pd.DataFrame([row for r in done for row in table_rows(r)])
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    if len(table):
        print(table.round(3).to_string(index=False))
    stats = summary(table) if len(table) else {}
    for product, figures in stats.items():
        print(
            f"real-data skill over the best baseline, {product}: mean {figures['mean']:+.1%} "
            f"(min {figures['min']:+.1%}, max {figures['max']:+.1%})"
        )
    for line in skipped:
        print(f"skipped {line}")
    errors = [r for r in results if "error" in r]
    for r in errors:
        print(f"FAILED {r['name']}:\n{r['error']}")
    total = time.perf_counter() - started
    print(f"battery wall {total:.0f} s")
    output = (
        args.json
        or HERE
        / "results"
        / f"forecast_battery-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "rows": table.to_dict(orient="records"),
                "summary": stats,
                "runs": [
                    {k: r.get(k) for k in ("name", "chosen", "wall_s", "error")}
                    | {"gate": r.get("gate"), "headline": _headline(r)}
                    for r in results
                ],
                "skipped": skipped,
                "wall_s": total,
            },
            indent=2,
            default=str,
        )
    )
    print(f"wrote {output}")
    if args.markdown and len(table):
        args.markdown.write_text(markdown(table, results) + "\n")
        print(f"wrote {args.markdown}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Run the pipelines on any point-event CSV and print the backtest table (model beside baselines).

A scratch copy of the project reads the CSV (or a zip holding one) through the catalog, maps
its columns by the names given, and runs data_processing, feature_engineering and modeling
exactly as `kedro run` does: candidates fitted on the train window, chosen on the validation
window, candidates scored on the rolling validation, the chosen one refitted before the test window and
backtested on it beside the plain seasonal-naive, level-adjusted and recent-level baselines, on
the same cells x hours. It prints, per product and horizon bucket, the P50's MAE against each
baseline's median (skill = 1 - ratio, against the naive with its noise, and against the best
baseline), the mean's RMSE beside the best baseline's, R², and the 80% interval coverage; then
the gate and the wall time. A benchmark, not a test: the data stays outside the project.

    uv run python benchmarks/real_data.py ../shared/data/lyft_nyc_2014/Lyft_B02510.csv.zip \
        --time time_of_trip --lat start_lat --lon start_lng --format "%m/%d/%Y %H:%M" \
        --timezone America/New_York --resolution 8 \
        --start 2014-08-08 --test-start 2014-09-17 --end 2014-10-01
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from geo_busyness.model.forecaster import BASELINES
from geo_busyness.testing import make_project_copy, run_report

MODELS = ("model", *BASELINES)


def configure(project: Path, args: argparse.Namespace) -> dict[str, Any]:
    """conf/local for the source (catalog entry and mapping); the run's parameters.

    ``--reference-schema`` reads a table in the project's own schema (every column, the
    project's mapping and time zone), e.g. the synthetic city the battery generates.
    """
    entry: dict[str, Any] = {"type": "pandas.CSVDataset", "filepath": str(args.csv.resolve())}
    if not args.reference_schema:
        entry["load_args"] = {"usecols": [args.time, args.lat, args.lon]}
    (project / "conf" / "local" / "catalog.yml").write_text(yaml.safe_dump({"raw_events": entry}))
    features: dict[str, Any] = {"h3_resolution": args.resolution, "start": args.start}
    if args.end:
        features["end"] = args.end
    if args.test_start and args.end:
        days = (pd.Timestamp(args.end) - pd.Timestamp(args.test_start)).days
        features["test_days"] = days
    modeling: dict[str, Any] = {"holidays_country": args.holidays}
    if args.exposure:
        modeling["forecaster"] = {"exposure": args.exposure}
    params: dict[str, Any] = {"feature_engineering": features, "modeling": modeling}
    if args.reference_schema:
        return params
    mapping = {
        "courier_location_timestamp": args.time,
        "courier_lat": args.lat,
        "courier_lon": args.lon,
        "courier_id": None,
        "order_number": None,
        "order_created_timestamp": None,
        "restaurant_lat": None,
        "restaurant_lon": None,
    }
    return params | {
        "data_processing": {
            "column_mapping": mapping,
            "source_timezone": args.timezone,
            "timestamp_format": args.format,
            "max_rejected_fraction": 0.2,
        }
    }


def with_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``params`` with each dotted ``KEY=VALUE`` (a YAML value) set in place."""
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return params


def run(project: Path, params: dict[str, Any]) -> None:
    """data_processing, feature_engineering and modeling in the scratch project."""
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.run(pipeline_names=["data_processing", "feature_engineering", "modeling"])


def table(report: dict[str, Any]) -> pd.DataFrame:
    """The backtest as one row per product and horizon bucket."""
    rows = []
    for entry in report["test"]["backtest"]:
        row = {"product": entry["product"], "bucket": entry["bucket"], "rows": entry["rows"]}
        for name in MODELS:
            row[f"{name}_mae"] = entry[name]["mae"]
        best_mae = min(entry[name]["mae"] for name in BASELINES)
        best_rmse = min(entry[name]["rmse"] for name in BASELINES)
        row["skill_mae"] = entry["model"]["skill_mae"]
        row["skill_noise"] = entry["model"]["skill_noise"]
        row["skill_mae_vs_best"] = 1 - entry["model"]["mae"] / best_mae if best_mae else 0.0
        row["model_rmse"] = entry["model"]["rmse"]
        row["best_baseline_rmse"] = best_rmse
        row["skill_rmse"] = entry["model"]["skill_rmse"]
        row["model_r2"] = entry["model"]["r2"]
        row["coverage_80"] = entry["model"]["pit_coverage_80"]
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    """Parse arguments, run the pipelines, print the table (and write JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--time", default=None, help="the timestamp column")
    parser.add_argument("--lat", default=None, help="the latitude column")
    parser.add_argument("--lon", default=None, help="the longitude column")
    parser.add_argument(
        "--reference-schema",
        action="store_true",
        help="the CSV is in the project's own schema: its mapping and time zone, every column",
    )
    parser.add_argument("--format", default="ISO8601", help="strftime format of the timestamps")
    parser.add_argument("--timezone", default="UTC", help="the source's local time zone")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--start", default=None, help="local date the history starts")
    parser.add_argument("--test-start", default=None, help="local date; default: end - 7 days")
    parser.add_argument("--end", default=None, help="local date (exclusive); default: data end")
    parser.add_argument("--holidays", default=None, help="country code for public holidays")
    parser.add_argument("--json", type=Path, default=None, help="write the test metrics here")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch project here")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter override, dotted and YAML-valued (modeling.tuning_noise_z=2); repeatable",
    )
    parser.add_argument(
        "--exposure", default=None, help="modeling.forecaster.exposure (default: the project's)"
    )
    args = parser.parse_args()
    if not args.reference_schema and not (args.time and args.lat and args.lon):
        parser.error("--time, --lat and --lon are required unless --reference-schema is given")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="geo-busyness-real-") as tmp:
        project = make_project_copy(args.keep or Path(tmp) / "project")
        run(project, with_overrides(configure(project, args), args.param))
        report = run_report(project)
    selection = report["model_selection"]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(f"chosen on validation: {selection['chosen']}  (by {selection['selection_metric']}:")
    print(
        "  " + ", ".join(f"{k} {v:.4f}" for k, v in selection["validation_average"].items()) + ")"
    )
    blend = selection.get("blend_weights", {}).get(selection["chosen"])
    if blend:
        print(
            f"combination weights {selection['blend_components']} per bucket"
            f" {selection['blend_buckets']}: {blend}"
        )
    print(
        f"recent-level weights {selection['recency_components']} per bucket:"
        f" {selection['recency_weights']}; median rule {selection['median_rule']}"
    )
    print(table(report).round(3).to_string(index=False))
    headline = report["test"]
    print(
        f"headline ({headline['headline_product']}, every test hour once): model R2 "
        f"{headline['model']['r2']:.3f} MAE {headline['model']['mae']:.3f}; seasonal naive R2 "
        f"{headline['seasonal_naive_baseline']['r2']:.3f} MAE "
        f"{headline['seasonal_naive_baseline']['mae']:.3f}"
    )
    print(f"gate: {'passed' if report['gate']['passed'] else 'FAILED'} {report['gate']['reasons']}")
    wall = time.perf_counter() - started
    print(f"wall {wall:.0f} s")
    if args.json:
        summary = {
            "test": report["test"],
            "gate": report["gate"],
            "chosen": selection["chosen"],
            "selection": {
                key: selection.get(key)
                for key in (
                    "validation_average",
                    "validation_fold_loss",
                    "pool_weeks",
                    "pool_adjacent_weeks",
                    "recency_weights",
                    "median_rule",
                )
            },
            "wall_s": wall,
        }
        args.json.write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()

"""A training run's outputs kept under the run; the champion's published as the current ones.

Every run writes its reports as Kedro-versioned datasets (``08_reporting/runs/<name>/<save
version>/<name>``) and logs them to its MLflow run under ``reporting/``
(``log_run_outputs``). The current reports (``evaluation_report.json`` and ``reporting/*``
under ``reporting.outputs.current_dir``) are copied from the MLflow run of the version behind
the ``champion`` alias, and only when that version is not the one they already describe
(``publish_champion_outputs``; ``champion_outputs.json`` beside them says which). Before any
champion exists they show the latest registered version, the one waiting to be deployed; a
version that failed the gate is never published.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.io as pio

logger = logging.getLogger(__name__)

#: Where the run's outputs are logged in its MLflow run (deployment reads the report there).
ARTIFACT_PATH = "reporting"
#: The evaluation report's file name, in MLflow and in the current folder.
EVALUATION_REPORT = "evaluation_report.json"
#: The pointer file in the current folder: which version and run the current reports describe.
POINTER = "champion_outputs.json"
Figure = Any  # plotly or matplotlib; see explanations.Figure


def registered_version(report: dict[str, Any]) -> str | None:
    """The version a run registered (None: the gate kept it out of the registry)."""
    registration = report.get("registration") or {}
    return str(registration["version"]) if registration.get("registered") else None


def with_caption(title: str, caption: str | None) -> str:
    """A plotly title with the caption (``header.caption``) as its second, smaller line."""
    return f"{title}<br><sup>{caption}</sup>" if caption else title


def saved_figure(figure: Figure) -> Figure:
    """The figure as it is, for its file dataset: the matplotlib and plotly HTML datasets cannot
    be loaded back, so the nodes that need the figure read it from memory (``*_plot``)."""
    return figure


def run_files(
    report: dict[str, Any],
    *,
    shap_summary: dict[str, Any],
    shap_figure: Figure,
    page: str,
    busyness_map: str,
    figures: dict[str, Figure],
    dpi: int,
) -> dict[str, Any]:
    """Each output as the bytes or text of its file, by file name (the MLflow layout)."""
    import io  # noqa: PLC0415

    png = io.BytesIO()
    shap_figure.savefig(png, format="png", dpi=dpi)
    files: dict[str, Any] = {
        EVALUATION_REPORT: json.dumps(report, indent=2, default=str),
        "shap_summary.json": json.dumps(shap_summary, indent=2, default=str),
        "shap_summary.png": png.getvalue(),
        "report.html": page,
        "busyness_map.html": busyness_map,
    }
    for name, figure in figures.items():
        files[f"{name.removesuffix('_figure')}.json"] = pio.to_json(figure)
    return files


def log_run_outputs(
    *,
    evaluation_report: dict[str, Any],
    shap_summary: dict[str, Any],
    shap_summary_plot: Figure,
    reporting_page: str,
    busyness_map: str,
    params: dict[str, Any],
    **figures: Figure,
) -> dict[str, Any]:
    """Node: log the run's outputs to its MLflow run (``reporting/``); what was logged where."""
    import mlflow  # noqa: PLC0415

    files = run_files(
        evaluation_report,
        shap_summary=shap_summary,
        shap_figure=shap_summary_plot,
        page=reporting_page,
        busyness_map=busyness_map,
        figures=figures,
        dpi=params["outputs"]["png_dpi"],
    )
    run = mlflow.active_run()
    manifest = {
        "run_id": run.info.run_id if run else None,
        "model_version": registered_version(evaluation_report),
        "gate_passed": bool((evaluation_report.get("gate") or {}).get("passed")),
        "time_windows": evaluation_report.get("time_windows"),
        "artifacts": sorted(f"{ARTIFACT_PATH}/{name}" for name in files),
        "logged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if run is None:
        logger.warning("No active MLflow run: the run's outputs were not logged to MLflow")
        return manifest
    with tempfile.TemporaryDirectory(prefix="geo-busyness-run-outputs-") as folder:
        for name, content in files.items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(Path(folder) / name, mode) as handle:
                handle.write(content)
        mlflow.log_artifacts(folder, ARTIFACT_PATH)
    logger.info("Logged %d run outputs to MLflow run %s", len(files), manifest["run_id"])
    return manifest


def version_to_publish(
    champion: dict[str, Any] | None, latest: dict[str, Any]
) -> dict[str, Any] | None:
    """The version whose outputs are current: the champion's; before any champion, the latest
    run's if it registered a version (waiting to be deployed); else none."""
    if champion is not None:
        return {"version": champion["version"], "run_id": champion["run_id"], "role": "champion"}
    if latest.get("model_version") and latest.get("run_id"):
        return {
            "version": latest["model_version"],
            "run_id": latest["run_id"],
            "role": "registered, not deployed yet (no champion)",
        }
    return None


def is_current(pointer: dict[str, Any] | None, wanted: dict[str, Any] | None) -> bool:
    """Whether the current reports already describe ``wanted`` (same version and run)."""
    if pointer is None or wanted is None:
        return wanted is None
    return (pointer.get("version"), pointer.get("run_id")) == (wanted["version"], wanted["run_id"])


def current_destination(artifact: str) -> str:
    """Where a run artifact goes under the current folder (the report at its top)."""
    name = artifact.rsplit("/", 1)[-1]
    return name if name == EVALUATION_REPORT else f"reporting/{name}"


def publish_champion_outputs(run_outputs: dict[str, Any], params: dict[str, Any]) -> dict:
    """Node: make the current reports describe the champion (see the module docstring); the
    pointer (version, run, files, when), also written as ``champion_outputs.json``."""
    settings = params["outputs"]
    current = Path(settings["current_dir"])
    pointer_path = current / POINTER
    pointer = json.loads(pointer_path.read_text()) if pointer_path.exists() else None
    champion = _champion(settings["registered_model_name"], settings["champion_alias"])
    wanted = version_to_publish(champion, run_outputs)
    if is_current(pointer, wanted):
        logger.info("Current reports unchanged: they describe %s", _label(wanted))
        return pointer or {"version": None, "reason": "no registered version yet"}
    try:
        published = _copy_run_artifacts(wanted["run_id"], current)
    except Exception as error:  # noqa: BLE001 - the run (or deployment) stands; current stays
        logger.warning(
            "Current reports not replaced: %s's outputs could not be read from MLflow run %s (%s)",
            _label(wanted),
            wanted["run_id"],
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return {**wanted, "published": False, "reason": f"{type(error).__name__}: {error}"}
    pointer = {
        **wanted,
        "model_name": settings["registered_model_name"],
        "files": published,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_atomically(pointer_path, json.dumps(pointer, indent=2).encode())
    logger.info("Current reports now describe %s (%d files)", _label(wanted), len(published))
    return pointer


def _label(wanted: dict[str, Any] | None) -> str:
    return f"version {wanted['version']} ({wanted['role']})" if wanted else "no version"


def _champion(name: str, alias: str) -> dict[str, Any] | None:
    """The champion's version and run (None: no version has the alias)."""
    from geo_busyness.registry import ModelNotFound, resolve_version  # noqa: PLC0415

    try:
        return resolve_version(name, aliases=[alias])
    except ModelNotFound:
        return None


def _copy_run_artifacts(run_id: str, current: Path) -> list[str]:
    """Download the run's ``reporting/`` artifacts and put each in its current place."""
    import mlflow  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="geo-busyness-publish-") as folder:
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=ARTIFACT_PATH, dst_path=folder
            )
        )
        published = []
        for source in sorted(path for path in downloaded.iterdir() if path.is_file()):
            destination = current / current_destination(source.name)
            _write_atomically(destination, source.read_bytes())
            published.append(str(destination))
    if not published:
        raise FileNotFoundError(
            f"MLflow run {run_id} has no {ARTIFACT_PATH}/ artifacts to publish: expected the"
            " run's evaluation report and figures (logged by log_run_outputs)"
        )
    return published


def _write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` beside ``path`` and rename it into place: no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(staged, "wb") as handle:
        handle.write(content)
    os.replace(staged, path)

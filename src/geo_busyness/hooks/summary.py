"""``RunSummaryHook``: a run ends with a short summary of each report it wrote."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from kedro.framework.hooks import hook_impl

from geo_busyness.hooks.storage import dataset_url
from geo_busyness.operations.run_summary import inference_summary, monitoring_summary, run_summary

logger = logging.getLogger(__name__)


#: Report dataset -> (its renderer, the other outputs whose files the summary points at).
SUMMARIES: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    "evaluation_report": (run_summary, ("reporting_page", "busyness_map")),
    "inference_report": (inference_summary, ("busyness_forecast", "scored_queries")),
    "monitoring_report": (monitoring_summary, ("monitoring_report_html",)),
}


def report_locations(names: list[str], catalog: Any) -> str | None:
    """The files of the named datasets (those with a file), comma-separated; None if none."""
    urls = []
    for name in names:
        try:
            url = dataset_url(name, catalog.get(name))
        except Exception:  # noqa: BLE001 - a dataset that cannot describe itself is skipped
            url = None
        if url:
            urls.append(_relative_to_cwd(url))
    return ", ".join(urls) or None


def _relative_to_cwd(url: str) -> str:
    """A local path under the working directory as a relative path; anything else as is."""
    path = Path(url)
    if "://" in url or not path.is_absolute() or not path.is_relative_to(Path.cwd()):
        return url
    return str(path.relative_to(Path.cwd()))


class RunSummaryHook:
    """After a run, print a short summary of each report it wrote (``SUMMARIES``).

    The report is read through the run's catalog, so the summary shows what was saved,
    wherever the environment saves it.
    """

    @hook_impl(trylast=True)
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        """Print the summary of every report dataset the pipeline wrote."""
        outputs = pipeline.all_outputs()
        for name, (render, files) in SUMMARIES.items():
            if name not in outputs:
                continue
            try:
                report = catalog.load(name)
            except Exception as error:  # noqa: BLE001 - the summary must never fail a run
                logger.warning("No run summary: '%s' could not be read (%s)", name, error)
                continue
            if not isinstance(report, Mapping):
                continue
            wanted = [name, *(file for file in files if file in outputs)]
            click.echo(render(report, reports_at=report_locations(wanted, catalog)))

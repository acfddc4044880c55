"""The notebooks' set-up: ``%load_ext geo_busyness.notebook`` (in place of
``%load_ext kedro.ipython``) gives a notebook the project's plain log and none of its noise.

A Jupyter kernel starts in ``notebooks/``, not the project root, and Kedro looks for
``conf/logging.yml`` relative to the working directory when ``kedro.framework.project`` is first
imported: from ``notebooks/`` it falls back to its Rich handler, whose records reach the notebook
as ANSI escape codes in every text view. Loading this extension:

- configures logging from the project's ``conf/logging.yml`` (or ``KEDRO_LOGGING_CONFIG``) as
  a ``kedro`` command from the root does: one plain line per record, ``info.log`` in the
  project root (the file handler's relative path is resolved from there, not ``notebooks/``);
- hides tqdm's "IProgress not found" warning: a library imports ``tqdm.auto`` for progress bars
  this project turns off (the notebook does not need ipywidgets);
- loads ``kedro.ipython`` (``catalog``, ``context``, ``session``, ``pipelines``); the project's
  ``ProjectPathsHook`` makes the SQLite MLflow store absolute from the project there;
- gives IPython back its plain-text display: building Kedro's ``RichHandler`` (any logging
  configuration that defines one, used or not) installs Rich's pretty printer, which writes
  every cell's result as ANSI escape codes in its text form.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

#: tqdm's warning when ``tqdm.auto`` is imported in a kernel without ipywidgets.
TQDM_WIDGETS_WARNING = "IProgress not found"


def project_root(start: Path) -> Path:
    """The Kedro project holding ``start`` (a ``pyproject.toml`` with a ``[tool.kedro]`` table)."""
    from kedro.utils import find_kedro_project  # noqa: PLC0415 - Kedro's own search

    found = find_kedro_project(start)
    if found is None:
        raise RuntimeError(
            f"{start} is not inside a Kedro project: start Jupyter from the project (uv run"
            " kedro jupyter lab) or open the notebook from its notebooks/ folder."
        )
    return Path(found)


def logging_config_path(project: Path) -> Path:
    """``KEDRO_LOGGING_CONFIG`` (relative to the project) if set, else ``conf/logging.yml``."""
    configured = os.environ.get("KEDRO_LOGGING_CONFIG")
    return project / configured if configured else project / "conf" / "logging.yml"


def configure_project_logging(project: Path) -> dict[str, Any]:
    """Logging as a ``kedro`` command in ``project`` sets it up; the configuration used.

    Read and applied from the project root: Kedro reads ``conf/logging.yml`` relative to the
    working directory on first import, and a file handler resolves its relative file name
    when it is built."""
    config = yaml.safe_load(logging_config_path(project).read_text(encoding="utf-8"))
    with contextlib.chdir(project):
        from kedro.framework.project import configure_logging  # noqa: PLC0415 - from the root

        configure_logging(config)
    return config


def hide_notebook_noise() -> None:
    """Warnings a notebook of this project shows and nothing can act on (see the module)."""
    warnings.filterwarnings("ignore", message=TQDM_WIDGETS_WARNING)


def plain_text_display(ipython: Any) -> None:
    """IPython's own plain-text formatter in place of Rich's pretty printer."""
    from IPython.core.formatters import PlainTextFormatter  # noqa: PLC0415 - in a kernel only

    formatters = ipython.display_formatter.formatters
    if type(formatters.get("text/plain")) is not PlainTextFormatter:
        formatters["text/plain"] = PlainTextFormatter(parent=ipython.display_formatter)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext geo_busyness.notebook``: plain logging, no noise, then ``kedro.ipython``."""
    project = project_root(Path.cwd())
    hide_notebook_noise()
    configure_project_logging(project)
    ipython.extension_manager.load_extension("kedro.ipython")
    plain_text_display(ipython)

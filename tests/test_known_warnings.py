"""The library warnings the project cannot fix are silenced, and nothing else is."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from geo_busyness.known_warnings import (
    LOG_MESSAGES,
    DropMessage,
    import_dropping_warning,
    silence_known_warnings,
)
from geo_busyness.testing import PROJECT_ROOT


def _warn_from(module: str, message: str) -> list[warnings.WarningMessage]:
    """Warnings shown when ``module`` warns ``message`` (with the filters in place)."""
    with warnings.catch_warnings(record=True) as caught:
        silence_known_warnings()
        warnings.warn_explicit(message, UserWarning, f"{module.replace('.', '/')}.py", 1, module)
    return caught


def test_kedros_deprecated_resolver_registration_is_silenced_only_there() -> None:
    message = "register_new_resolver() is deprecated and will be removed in a future release."
    assert _warn_from("kedro.config.omegaconf_config", message) == []
    assert _warn_from("kedro_mlflow.framework.hooks.mlflow_hook", message) == []
    assert len(_warn_from("geo_busyness.pipelines.modeling.nodes", message)) == 1
    assert len(_warn_from("kedro.config.omegaconf_config", "another warning")) == 1


@pytest.mark.parametrize(("logger", "message"), [(name, pat) for name, pat, _ in LOG_MESSAGES])
def test_known_log_messages_are_dropped_and_others_kept(
    logger: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    silence_known_warnings()
    with caplog.at_level(logging.WARNING, logger=logger):
        logging.getLogger(logger).warning("%s and more", message)
        logging.getLogger(logger).warning("something else went wrong")
    assert [record.getMessage() for record in caplog.records] == ["something else went wrong"]


def test_filters_are_installed_once() -> None:
    silence_known_warnings()
    silence_known_warnings()
    for name, message, _ in LOG_MESSAGES:
        assert logging.getLogger(name).filters.count(DropMessage(message)) == 1


def test_a_definition_warning_is_dropped_and_any_other_reissued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noisy_module.py").write_text(
        "import warnings\n"
        "warnings.warn('Add type hints to the `predict` method, please')\n"
        "warnings.warn('a real problem')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_module", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import_dropping_warning("noisy_module", r"Add type hints to the `predict` method")
    assert [str(w.message) for w in caught] == ["a real problem"]


def test_console_log_is_plain_lines_not_the_rich_table() -> None:
    """Piped to a file, rich wraps at 80 columns; the console handler writes one line each."""
    config = yaml.safe_load((PROJECT_ROOT / "conf" / "logging.yml").read_text())
    handlers = [config["handlers"][name] for name in config["root"]["handlers"]]
    assert all(handler["class"].startswith("logging.") for handler in handlers)
    console = config["handlers"]["console"]
    assert console["stream"] == "ext://sys.stdout"
    assert "%(message)s" in config["formatters"][console["formatter"]]["format"]


@pytest.mark.slow  # a fresh interpreter importing the project's settings (pyspark, MLflow)
def test_importing_the_settings_warns_nothing() -> None:
    """What every `kedro` command imports first: not PySpark's pandas-3 warning (pandera
    imports pyspark.pandas when the spark extra is installed), not kedro-mlflow's type hints."""
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import geo_busyness.settings"],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]

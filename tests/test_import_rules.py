"""The package's import rules, read from the source (every import, top-level or in a function).

- ``geo_busyness.model`` (the artifact's code) imports no pipeline and no serving module;
- ``geo_busyness.serving`` (what the container runs) imports no pipeline;
- a module of ``pipelines/X`` imports nothing of ``pipelines/Y``, except a pipeline package's
  ``create_pipeline`` factory, from ``pipeline.py`` (reusing a whole pipeline, namespaced).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_busyness.model.bundle import PACKAGE_DIR, imported_names, module_name

MODEL = "geo_busyness.model"
SERVING = "geo_busyness.serving"
PIPELINES = "geo_busyness.pipelines"


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def _pipeline_of(name: str) -> str | None:
    """``geo_busyness.pipelines.X...`` -> ``X`` (None outside a pipeline package)."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and _within(name, PIPELINES) else None


def violations(source: str, module: str) -> list[str]:
    """Every import of ``module`` (given its source text) that breaks a rule, as readable lines."""
    problems = []
    own_pipeline = _pipeline_of(module)
    for target in sorted(imported_names(source, module)):
        if _within(module, MODEL) and (_within(target, PIPELINES) or _within(target, SERVING)):
            problems.append(f"{module}: the model package imports {target}")
        elif _within(module, SERVING) and _within(target, PIPELINES):
            problems.append(f"{module}: serving imports {target}")
        elif (
            own_pipeline
            and _pipeline_of(target) not in (None, own_pipeline)
            and not (module.endswith(".pipeline") and _is_factory(target))
        ):
            problems.append(f"{module}: imports another pipeline's {target}")
    return problems


def _is_factory(target: str) -> bool:
    """A pipeline package, its ``pipeline`` module or their ``create_pipeline``."""
    tail = target.split(".")[3:]
    return tail in ([], ["create_pipeline"], ["pipeline"], ["pipeline", "create_pipeline"])


def _modules() -> list[tuple[str, Path]]:
    return [
        (module_name(path.relative_to(PACKAGE_DIR)), path)
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    ]


def test_every_module_keeps_the_import_rules():
    problems = [
        problem for module, path in _modules() for problem in violations(path.read_text(), module)
    ]
    assert not problems, "\n".join(problems)


def test_the_checker_sees_the_whole_package():
    modules = {module for module, _ in _modules()}
    assert {
        "geo_busyness.model.predict",
        "geo_busyness.serving.app",
        "geo_busyness.pipelines.monitoring.pipeline",
    } <= modules


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("geo_busyness.model.features", "from geo_busyness.pipelines.modeling.nodes import x\n"),
        ("geo_busyness.model.predict", "def f():\n    import geo_busyness.serving.app\n"),
        ("geo_busyness.serving.app", "from geo_busyness.pipelines.deployment import packaging\n"),
        (
            "geo_busyness.pipelines.reporting.nodes",
            "from geo_busyness.pipelines.modeling.nodes import BASELINE\n",
        ),
        (
            "geo_busyness.pipelines.monitoring.nodes",
            "def f():\n    from ..feature_engineering.nodes import build_panel\n",
        ),
        (
            "geo_busyness.pipelines.monitoring.nodes",
            "from geo_busyness.pipelines import modeling\n",
        ),
    ],
)
def test_the_checker_flags_a_planted_violation(module, source):
    assert violations(source, module)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        (
            "geo_busyness.pipelines.monitoring.pipeline",
            "from geo_busyness.pipelines import data_processing\n",
        ),
        (
            "geo_busyness.pipelines.monitoring.pipeline",
            "from geo_busyness.pipelines.data_processing.pipeline import create_pipeline\n",
        ),
        ("geo_busyness.pipelines.monitoring.nodes", "from .drift import numeric_drift\n"),
        ("geo_busyness.serving.app", "from geo_busyness.model.predict import predict_busyness\n"),
        ("geo_busyness.pipelines.modeling.nodes", "from geo_busyness.model.features import x\n"),
    ],
)
def test_the_checker_allows_what_the_rules_allow(module, source):
    assert not violations(source, module)

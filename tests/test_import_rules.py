"""The package's import rules, read from the source (every import, top-level or in a function).

Each module belongs to one part: ``model`` (the artifact's code), ``serving`` (what the
container runs), ``pipelines``, ``operations`` (the retraining job, its steps, alerts, run
summaries), ``hooks``, ``spark`` (the Spark engine), Kedro's own files at the root
(``KEDRO_FILES``: settings, the pipeline registries, cli, __main__), or the shared vocabulary
(every other root module: schemas, errors, datasets, registry, ...). ``FORBIDDEN`` says which
parts a part may not import:

- ``model`` imports no pipeline, serving, operations or hook;
- ``serving`` imports no pipeline and no hook, and of ``operations`` only ``operations.alerts``
  (a refused champion swap is an alert);
- ``pipelines`` import nothing of operations, hooks or serving; a module of ``pipelines/X``
  imports nothing of ``pipelines/Y``, except a pipeline package's ``create_pipeline`` factory,
  from ``pipeline.py`` (reusing a whole pipeline, namespaced);
- ``operations`` imports no pipeline (it runs them by name, through Kedro sessions), no hook
  and nothing of serving;
- ``hooks`` import no pipeline and nothing of serving;
- ``spark`` (the engine the Spark pipelines use) imports no pipeline and nothing above it: the
  `spark` environment's registry is ``spark_pipeline_registry`` at the root, beside
  ``pipeline_registry``;
- the shared vocabulary imports no pipeline, serving, operations or hook (``model`` only).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_busyness.model.bundle import PACKAGE, PACKAGE_DIR, imported_names, module_name

PIPELINES = f"{PACKAGE}.pipelines"
#: Parts that are a subpackage of geo_busyness.
PACKAGES = ("model", "serving", "pipelines", "operations", "hooks", "spark")
#: Kedro's own files at the root: they wire the parts together and may import any of them.
KEDRO_FILES = ("__main__", "settings", "pipeline_registry", "spark_pipeline_registry", "cli")
SHARED = "shared vocabulary"
#: Part -> the parts it may not import.
FORBIDDEN = {
    "model": ("pipelines", "serving", "operations", "hooks"),
    "serving": ("pipelines", "hooks", "operations"),
    "pipelines": ("operations", "hooks", "serving"),
    "operations": ("pipelines", "hooks", "serving"),
    "hooks": ("pipelines", "serving"),
    "spark": ("pipelines", "serving", "operations", "hooks"),
    SHARED: ("pipelines", "serving", "operations", "hooks"),
}
#: (importer part, module) pairs allowed although FORBIDDEN names the module's part.
ALLOWED = (("serving", f"{PACKAGE}.operations.alerts"),)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def part_of(name: str) -> str | None:
    """The part a ``geo_busyness`` name belongs to (None outside the package)."""
    if not _within(name, PACKAGE):
        return None
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] in KEDRO_FILES:
        return "kedro"
    return SHARED


def _pipeline_of(name: str) -> str | None:
    """``geo_busyness.pipelines.X...`` -> ``X`` (None outside a pipeline package)."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and _within(name, PIPELINES) else None


def violations(source: str, module: str) -> list[str]:
    """Every import of ``module`` (given its source text) that breaks a rule, as readable lines."""
    problems = []
    own_part, own_pipeline = part_of(module), _pipeline_of(module)
    for target in sorted(imported_names(source, module)):
        target_part = part_of(target)
        allowed = any(own_part == part and _within(target, ok) for part, ok in ALLOWED)
        if target_part in FORBIDDEN.get(own_part, ()) and not allowed:
            problems.append(f"{module} ({own_part}) imports {target} ({target_part})")
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
    parts = {part_of(module) for module, _ in _modules()}
    assert parts == {*PACKAGES, "kedro", SHARED}
    modules = {module for module, _ in _modules()}
    assert {
        "geo_busyness.model.predict",
        "geo_busyness.serving.app",
        "geo_busyness.pipelines.monitoring.pipeline",
        "geo_busyness.operations.job",
        "geo_busyness.hooks.alerts",
        "geo_busyness.spark_pipeline_registry",
    } <= modules


#: Where operations and hooks lived before they had a package of their own (issue #24, item 8).
OLD_PATHS = (
    "retraining.py",
    "retraining_steps.py",
    "run_summary.py",
    "memory_budget.py",
    "hooks.py",
    "alerts",
    "spark/pipeline_registry.py",
)


def test_nothing_is_left_at_the_old_paths():
    """No shim at an old path: a stale import fails loudly instead of working on. (A folder
    holding only ``__pycache__``, left by a checkout from before the move, imports nothing.)"""
    left = [
        old
        for old in OLD_PATHS
        if (PACKAGE_DIR / old).is_file() or any((PACKAGE_DIR / old).glob("*.py"))
    ]
    assert left == []
    assert set(KEDRO_FILES) <= {path.stem for path in PACKAGE_DIR.glob("*.py")}


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("geo_busyness.model.features", "from geo_busyness.pipelines.modeling.nodes import x\n"),
        ("geo_busyness.model.predict", "def f():\n    import geo_busyness.serving.app\n"),
        ("geo_busyness.model.loading", "from geo_busyness.operations.alerts import Alert\n"),
        ("geo_busyness.serving.app", "from geo_busyness.pipelines.deployment import packaging\n"),
        ("geo_busyness.serving.refresh", "from geo_busyness.operations.job import RECORD\n"),
        ("geo_busyness.serving.app", "from geo_busyness.hooks.storage import StorageError\n"),
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
        (
            "geo_busyness.pipelines.modeling.registration",
            "from geo_busyness.operations.run_summary import champion_kept\n",
        ),
        ("geo_busyness.pipelines.inference.nodes", "from geo_busyness import operations\n"),
        ("geo_busyness.pipelines.ingestion.nodes", "from geo_busyness.hooks import AlertHook\n"),
        (
            "geo_busyness.operations.job",
            "from geo_busyness.pipelines.monitoring.nodes import monitor\n",
        ),
        ("geo_busyness.operations.steps", "from ..hooks.alerts import AlertHook\n"),
        ("geo_busyness.hooks.alerts", "from geo_busyness.pipelines.ingestion import nodes\n"),
        (
            "geo_busyness.spark.session",
            "from geo_busyness.pipelines.retraining.pipeline import retraining_pipeline\n",
        ),
        ("geo_busyness.report_header", "from geo_busyness.operations.run_summary import x\n"),
        ("geo_busyness.registry", "def f():\n    from geo_busyness.serving import refresh\n"),
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
        ("geo_busyness.serving.refresh", "from geo_busyness.operations.alerts import Alert\n"),
        ("geo_busyness.pipelines.modeling.nodes", "from geo_busyness.model.features import x\n"),
        ("geo_busyness.pipelines.modeling.nodes", "from geo_busyness.registry import x\n"),
        ("geo_busyness.hooks.alerts", "from geo_busyness.operations.alerts import Alert\n"),
        ("geo_busyness.operations.job", "from geo_busyness.quality_gate import champion_kept\n"),
        (
            "geo_busyness.spark_pipeline_registry",
            "from geo_busyness.pipelines.retraining.pipeline import retraining_pipeline\n",
        ),
        ("geo_busyness.cli", "from geo_busyness.operations.job import RetrainingJob\n"),
    ],
)
def test_the_checker_allows_what_the_rules_allow(module, source):
    assert not violations(source, module)

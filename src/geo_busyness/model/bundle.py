"""What the model artifact carries, derived from the code: its modules and its requirements.

The artifact is state only (``artifact.py``: JSON, ``.npz``, skops; no pickle); the code that
reads it and answers travels beside it, so a model loads where the project is not installed:
every module of this package plus every ``geo_busyness`` module they import (e.g.
``schemas``), found by reading their imports (top-level and inside functions; ``skops`` is
among the requirements that way). Its pip requirements are the installed versions
of the distributions those modules import. MLflow's ``code_paths`` (``registry``) and
``model.tar.gz`` (the deployment pipeline) both take their lists from here.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterable
from importlib.metadata import packages_distributions
from importlib.metadata import version as installed_version
from pathlib import Path

PACKAGE = "geo_busyness"
MODEL_PACKAGE = f"{PACKAGE}.model"
#: Where ``geo_busyness`` lives (the folder holding its ``__init__.py``).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Distributions the artifact needs without importing them: pandas keeps text in pyarrow
#: arrays, which the forecaster's state may hold once loaded.
UNIMPORTED_REQUIREMENTS = ("pyarrow",)


def imported_names(source: str, module: str) -> set[str]:
    """Absolute names of everything ``source`` (the text of ``module``) imports, at any depth.

    ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (``c`` may be a module); relative imports
    are resolved against ``module``.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _absolute(name: str | None, level: int, module: str) -> str:
    """The absolute module name of ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name or ""
    package = module if _is_package(module) else module.rpartition(".")[0]
    parts = package.split(".")
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def _is_package(module: str) -> bool:
    """Whether ``module`` (a ``geo_busyness`` name) is a package (has an ``__init__.py``)."""
    return module_path(module) == _relative(module) / "__init__.py"


def _relative(module: str) -> Path:
    """``geo_busyness.a.b`` -> ``a/b`` (relative to the package folder)."""
    return Path(*module.split(".")[1:])


def module_path(module: str) -> Path | None:
    """The file of a ``geo_busyness`` module, relative to the package folder (None if absent)."""
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        return None
    base = _relative(module)
    for candidate in (base / "__init__.py", base.parent / f"{base.name}.py"):
        if (PACKAGE_DIR / candidate).is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    """``model/features.py`` -> ``geo_busyness.model.features`` (``__init__.py``: the package)."""
    parts = path.with_suffix("").parts
    return ".".join([PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def package_modules(package: str) -> list[str]:
    """Every module of a ``geo_busyness`` package (its ``.py`` files, at any depth)."""
    folder = PACKAGE_DIR / _relative(package)
    return sorted(module_name(path.relative_to(PACKAGE_DIR)) for path in folder.rglob("*.py"))


def module_closure(roots: Iterable[str]) -> tuple[str, ...]:
    """Files (relative to the package folder) of ``roots`` and of every ``geo_busyness`` module
    they import, transitively, with the ``__init__.py`` of every package on the way."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module_path(module) is None:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:depth]) for depth in range(1, len(parts))]  # parent packages
        source = (PACKAGE_DIR / module_path(module)).read_text()
        todo += [name for name in imported_names(source, module) if module_path(name)]
    return tuple(sorted(module_path(module).as_posix() for module in seen))


def model_modules() -> tuple[str, ...]:
    """The files the model artifact bundles: ``geo_busyness.model`` and what it imports."""
    return module_closure(package_modules(MODEL_PACKAGE))


def requirements(modules: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Pinned requirements (``dist==version``) of the third-party imports of bundled files.

    Imports with no installed distribution (optional ones guarded by ``ImportError``, such as
    the SageMaker toolkit's) are left out.
    """
    providers = packages_distributions()
    dists = set(extra)
    for path in modules:
        source = (PACKAGE_DIR / path).read_text()
        for name in imported_names(source, module_name(Path(path))):
            top = name.split(".")[0]
            if top == PACKAGE or top in sys.stdlib_module_names or top not in providers:
                continue
            candidates = providers[top]
            dists.add(top if top in candidates else candidates[0])
    return [f"{dist}=={installed_version(dist)}" for dist in sorted(dists)]


def model_requirements() -> list[str]:
    """Pinned requirements of the model artifact."""
    return requirements(model_modules(), UNIMPORTED_REQUIREMENTS)


def bundle_code(dest: Path, modules: Iterable[str] | None = None) -> Path:
    """A minimal ``geo_busyness`` package under ``dest`` (default: ``model_modules()``)."""
    package = dest / PACKAGE
    for module in model_modules() if modules is None else modules:
        target = package / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / module, target)
    return package

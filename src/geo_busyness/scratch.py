"""A scratch copy of this project's configuration, for tests and benchmarks.

Runs in a scratch copy write their data, MLflow store and logs there, never into the checkout.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "03_primary",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
)


def make_project_copy(dest: Path, source: Path = PROJECT_ROOT) -> Path:
    """Copy ``source``'s shared configuration (every env but the personal ``local``) into
    ``dest``, with an empty ``conf/local`` and empty data folders."""
    for env in (source / "conf").iterdir():
        if env.is_dir() and env.name != "local":
            shutil.copytree(env, dest / "conf" / env.name)
    (dest / "conf" / "local").mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(source / name, dest / name)
    (dest / "src").mkdir()  # bootstrap_project wants a source dir; the package is installed
    for layer in DATA_LAYERS:
        (dest / "data" / layer).mkdir(parents=True)
    use_own_mlflow_store(dest)
    return dest


def tracking_uri(project: Path) -> str:
    """The absolute SQLite tracking URI of a project copy's own MLflow store."""
    return f"sqlite:///{project / 'mlflow.db'}"


def use_own_mlflow_store(project: Path) -> None:
    """Point the copy's base MLflow tracking URI at its own SQLite file, by absolute path.

    MLflow caches one store per tracking URI string in a process, so the relative
    ``sqlite:///mlflow.db`` would keep every later copy on the first copy's database.
    """
    config = project / "conf" / "base" / "mlflow.yml"
    text = re.sub(
        r"(?m)^(\s*mlflow_tracking_uri:)\s*\S+",
        lambda match: f"{match.group(1)} {tracking_uri(project)}",
        config.read_text(),
    )
    config.write_text(text)

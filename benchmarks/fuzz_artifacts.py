"""Parts 6 and 7 of benchmarks/hardening_fuzz.py: tampered artifacts on every load path, and
remote endpoints that do not answer (issue #23).

Part 6 registers the tests' small model in a scratch SQLite MLflow store, packages it
(model.tar.gz) and deploys a local copy, then for each tampering (a pickle planted in the
arrays that would write a marker file when unpickled, with the manifest and digest record
resealed as an attacker who can write the store would; one changed byte) loads the model
through every path a user has: ``models:/NAME/1``, ``@alias``, ``models:/m-<id>``, ``runs:/``,
MLflow's own pyfunc loader, the local MLflow folder, the deployed copy, the package unpacked
against the registered digest, and the SageMaker entry point. It counts the loads refused and
whether the marker file was ever written (code executed from an artifact).

Part 7 starts ``python -m geo_busyness.serving`` on a registry alias with the tracking server
dead (a closed port) and silent (accepts, never answers): seconds to fail, and its last line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
from tests.model.tampering import plant_pickle
from tests.remote_endpoints import silent_endpoint
from tests.serving.model_fixture import fit_model, save_model, synthetic_events

from geo_busyness.model.artifact import ARRAYS
from geo_busyness.model.loading import ARTIFACT_DIR, load_model
from geo_busyness.pipelines.deployment.packaging import build_package, unpack_package
from geo_busyness.registry import register_model
from geo_busyness.testing import free_port

NAME = "geo-busyness-fuzz"


def flip_byte(folder: Path, marker: Path) -> None:
    """One byte of the arrays changed (``marker`` unused: nothing here could run code)."""
    data = bytearray((folder / ARRAYS).read_bytes())
    data[-1] ^= 1
    (folder / ARRAYS).write_bytes(bytes(data))


@contextlib.contextmanager
def scratch_registry(root: Path) -> Iterator[dict[str, Any]]:
    """One registered version of the small model in a SQLite store under ``root``."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("fuzz")
    example = synthetic_events(5, seed=3)[
        ["courier_location_timestamp", "courier_lat", "courier_lon"]
    ]
    example["courier_location_timestamp"] = example["courier_location_timestamp"].dt.tz_localize(
        None
    )
    try:
        with mlflow.start_run() as run:
            version = register_model(fit_model(), example, NAME, "champion")
        source = mlflow.MlflowClient().get_model_version(NAME, version).source
        model_id = source.split("/")[-1]
        stored = Path(mlflow.get_logged_model(model_id).artifact_location.removeprefix("file://"))
        yield {"version": version, "run_id": run.info.run_id, "source": source, "stored": stored}
    finally:
        mlflow.set_tracking_uri(previous)


def _sagemaker_load(model_dir: Path) -> Any:
    """The package's own code/inference.py ``model_fn``, as the container calls it."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(
        "fuzz_inference", model_dir / "code" / "inference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop("fuzz_inference", None)
    return module.model_fn(str(model_dir))


def tampered_artifacts_part(workdir: Path) -> dict[str, Any]:
    """Every load path under every tampering: loads refused, and whether code ever ran."""
    marker = workdir / "code-ran"
    local = save_model(fit_model(), workdir / "local")
    with scratch_registry(workdir) as registry:
        package = build_package(local, workdir / "package" / "model.tar.gz")
        deployed = unpack_package(package["path"], workdir / "deployed")
        registry_paths: dict[str, Callable[[], Any]] = {
            "models:/NAME/1": lambda: load_model(f"models:/{NAME}/{registry['version']}"),
            "models:/NAME@champion": lambda: load_model(f"models:/{NAME}@champion"),
            "models:/m-<id>": lambda: load_model(registry["source"]),
            "runs:/<run>/model": lambda: load_model(f"runs:/{registry['run_id']}/model"),
            "mlflow.pyfunc.load_model": lambda: mlflow.pyfunc.load_model(
                f"models:/{NAME}@champion"
            ),
        }
        local_paths: dict[str, tuple[Path, Callable[[], Any]]] = {
            "local MLflow folder": (local, lambda: load_model(local)),
            "deployed copy": (deployed, lambda: load_model(deployed)),
            "SageMaker model_fn": (deployed, lambda: _sagemaker_load(deployed)),
            "model.tar.gz vs registered digest": (
                local,
                lambda: unpack_package(
                    build_package(local, workdir / "repacked" / "model.tar.gz")["path"],
                    workdir / f"unpacked-{time.monotonic_ns()}",
                    package["artifact_sha256"],
                ),
            ),
        }
        rows = []
        for tamper_name, tamper in (("planted pickle", plant_pickle), ("changed byte", flip_byte)):
            targets = [
                (registry["stored"] / ARTIFACT_DIR, name, load)
                for name, load in registry_paths.items()
            ]
            targets += [
                (folder / ARTIFACT_DIR, name, load) for name, (folder, load) in local_paths.items()
            ]
            for folder, path_name, load in targets:
                backup = workdir / "backup"
                shutil.rmtree(backup, ignore_errors=True)
                shutil.copytree(folder, backup)
                try:
                    tamper(folder, marker)
                    started = time.perf_counter()
                    try:
                        load()
                        refused = False
                    except Exception:  # noqa: BLE001 - any refusal counts; the marker says the rest
                        refused = True
                    rows.append(
                        {
                            "tamper": tamper_name,
                            "path": path_name,
                            "refused": refused,
                            "seconds": round(time.perf_counter() - started, 3),
                        }
                    )
                finally:
                    shutil.rmtree(folder)
                    shutil.copytree(backup, folder)
    refused = sum(row["refused"] for row in rows)
    result = {"loads": len(rows), "refused": refused, "code_ran": marker.exists(), "rows": rows}
    print(
        f"6. tampered artifacts: {refused} of {len(rows)} loads refused over"
        f" {len({r['path'] for r in rows})} paths x 2 tamperings; code executed from an"
        f" artifact: {'YES' if result['code_ran'] else 'never'}"
    )
    for row in rows:
        if not row["refused"]:
            print(f"   NOT refused: {row['path']} ({row['tamper']})")
    return result


def silent_endpoints_part() -> dict[str, Any]:
    """``python -m geo_busyness.serving`` on a registry alias, the tracking server dead or
    silent: seconds to fail (the issue's bound: 30) and the last line it printed."""
    rows = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with silent_endpoint() as silent:
        for name, uri in (("dead", f"http://127.0.0.1:{free_port()}"), ("silent", silent)):
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "geo_busyness.serving", "serve"]
                + ["--model", f"models:/{NAME}@champion", "--port", str(free_port())],
                env={**env, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "1"},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            lines = (done.stdout + done.stderr).strip().splitlines() or [""]
            rows.append(
                {
                    "endpoint": name,
                    "seconds": round(time.monotonic() - started, 1),
                    "exit_code": done.returncode,
                    "last_line": lines[-1][:200],
                }
            )
    print("7. tracking server down, `python -m geo_busyness.serving --model models:/...@champion`:")
    for row in rows:
        print(f"   {row['endpoint']:<6} failed in {row['seconds']:5.1f} s: {row['last_line']}")
    return {"rows": rows, "max_seconds": max(row["seconds"] for row in rows)}

"""Issue #23 item 7: temporary model copies (``/tmp/geo-busyness-model-*``) do not outlive the
process that fetched them, and a refused (tampered) copy is removed at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from geo_busyness.model.artifact import DIGEST_FILE, FORMAT, MANIFEST, file_sha256
from geo_busyness.model.loading import ARTIFACT_DIR, DIGEST_TAG, artifact_digest


def run_python(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_temporary_copy_is_removed_when_the_process_exits_not_when_a_fork_does():
    found = run_python(
        """
        import json, os
        from geo_busyness.model.loading import temporary_model_dir
        copy = temporary_model_dir()
        (copy / "MLmodel").write_text("flavors: {}")
        child = os.fork()
        if child == 0:  # a forked worker exiting normally runs the inherited exit handlers
            raise SystemExit(0)
        os.waitpid(child, 0)
        print(json.dumps({"copy": str(copy), "after_fork": copy.exists()}))
        """
    )
    assert found["after_fork"]
    assert Path(found["copy"]).name.startswith("geo-busyness-model-")
    assert not Path(found["copy"]).exists()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> dict[str, str]:
    """A SQLite MLflow registry holding one model version twice: tagged with its files' digest
    (version 1) and with another digest (version 2, as if the files had been changed)."""
    import mlflow  # noqa: PLC0415 - ~5 s; only the slow tests below need it

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    model = root / "model"
    artifact = model / ARTIFACT_DIR
    artifact.mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (artifact / "state.json").write_text('{"weights": [1, 2, 3]}')
    manifest = {"format": FORMAT, "files": {"state.json": file_sha256(artifact / "state.json")}}
    (artifact / MANIFEST).write_text(json.dumps(manifest))
    (artifact / DIGEST_FILE).write_text(file_sha256(artifact / MANIFEST))
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("cleanup", artifact_location=(root / "art").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(model), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("m")
    for digest in (artifact_digest(model), "0" * 64):
        version = client.create_model_version(
            "m", f"runs:/{run.info.run_id}/model", run.info.run_id
        )
        client.set_model_version_tag("m", version.version, DIGEST_TAG, digest)
    return {"MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


FETCH_LIKE_THE_SERVER = """
    import json, pathlib, tempfile
    from geo_busyness.model.loading import ArtifactIntegrityError, fetch_model
    target = {target}
    try:
        model_dir = fetch_model("models:/m/{version}", target)
        outcome = {{"loaded": (model_dir / "forecaster" / "state.json").exists()}}
    except ArtifactIntegrityError:
        outcome = {{"refused": True}}
    outcome["exists_before_exit"] = pathlib.Path(target).exists()
    print(json.dumps({{"target": target, **outcome}}))
"""
#: What ``python -m geo_busyness.serving`` downloads a registry model into.
LIKE_THE_SERVER = 'tempfile.mkdtemp(prefix="geo-busyness-model-")'


@pytest.mark.slow
def test_a_fetched_registry_copy_lives_until_the_process_exits(registry):
    found = run_python(FETCH_LIKE_THE_SERVER.format(target=LIKE_THE_SERVER, version=1), registry)
    assert found["loaded"] and found["exists_before_exit"]
    assert not Path(found["target"]).exists()


@pytest.mark.slow
def test_a_tampered_copy_is_removed_as_soon_as_it_is_refused(registry):
    found = run_python(FETCH_LIKE_THE_SERVER.format(target=LIKE_THE_SERVER, version=2), registry)
    assert found["refused"]
    assert not found["exists_before_exit"]  # gone before the process ended
    assert not Path(found["target"]).exists()


@pytest.mark.slow
def test_a_copy_the_caller_keeps_elsewhere_is_left_alone(registry, tmp_path):
    kept = repr(str(tmp_path / "kept"))
    found = run_python(FETCH_LIKE_THE_SERVER.format(target=kept, version=1), registry)
    assert found["loaded"]
    assert Path(found["target"]).exists()

"""Issue #15 items 17-18 and #23 item 1: the registered artifact is fingerprinted and verified
before any model state is read, on every path MLflow offers (version, alias, ``models:/m-<id>``,
``runs:/``, the pyfunc flavour); nothing unpickles, and a version whose registration did not
finish is never served. Its pyfunc flavour takes what the server takes (the explain option
too) and answers with the same columns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from geo_busyness.model.artifact import ARRAYS
from geo_busyness.model.explain import explain_busyness
from geo_busyness.model.loading import (
    ARTIFACT_DIR,
    DIGEST_TAG,
    ArtifactIntegrityError,
    artifact_digest,
    fetch_model,
    load_model,
)
from geo_busyness.model.predict import predict_busyness
from geo_busyness.registry import load_version, register_model, resolve_version
from geo_busyness.testing import free_port
from tests.model.tampering import plant_pickle
from tests.serving.model_fixture import WEEKS, fit_model, synthetic_events

NAME = "geo-busyness-hardening"
URI = f"models:/{NAME}@challenger"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A fresh SQLite MLflow store with one registered version (alias challenger)."""
    root = tmp_path_factory.mktemp("registry")
    previous_uri, previous_cwd = mlflow.get_tracking_uri(), Path.cwd()
    os.chdir(root)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("hardening")  # an earlier Kedro session's experiment id is not here
    os.environ.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
    try:
        example = synthetic_events(5, seed=3)[
            ["courier_location_timestamp", "courier_lat", "courier_lon"]
        ]
        example["courier_location_timestamp"] = example[
            "courier_location_timestamp"
        ].dt.tz_localize(None)
        with mlflow.start_run() as run:
            version = register_model(fit_model(), example, NAME, "challenger")
        stored = mlflow.MlflowClient().get_model_version(NAME, version)
        yield {
            "root": root,
            "version": version,
            "run_id": run.info.run_id,
            "source": stored.source,
            "uri": f"sqlite:///{root / 'mlflow.db'}",
        }
    finally:
        mlflow.set_tracking_uri(previous_uri)
        os.chdir(previous_cwd)


@pytest.fixture(scope="module")
def queries() -> pd.DataFrame:
    events = synthetic_events(40, seed=11)
    return pd.DataFrame(
        {
            "courier_location_timestamp": events["courier_location_timestamp"]
            + pd.Timedelta(weeks=WEEKS),
            "courier_lat": events["courier_lat"],
            "courier_lon": events["courier_lon"],
        }
    )


def _stored_artifact(registry) -> Path:
    """The registered version's artifact folder in the artifact store."""
    model_id = registry["source"].split("/")[-1]
    location = mlflow.get_logged_model(model_id).artifact_location.removeprefix("file://")
    return Path(location) / ARTIFACT_DIR


def every_uri(registry) -> list[str]:
    """Every way MLflow names the registered model."""
    return [
        f"models:/{NAME}/{registry['version']}",
        URI,
        registry["source"],  # models:/m-<id>, the registry's own source of the version
        f"runs:/{registry['run_id']}/model",
    ]


@pytest.mark.slow
def test_registration_records_the_artifacts_sha256(registry, tmp_path):
    tags = resolve_version(NAME, aliases=["challenger"])["tags"]
    model_dir = fetch_model(URI, tmp_path)
    assert tags[DIGEST_TAG] == artifact_digest(model_dir)
    logged = mlflow.get_logged_model(registry["source"].split("/")[-1])
    assert logged.tags[DIGEST_TAG] == tags[DIGEST_TAG]
    assert not list(model_dir.rglob("*.pkl"))


@pytest.mark.slow
def test_every_uri_loads_the_model_without_the_pickle_flag(registry, queries):
    assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") != "true"
    expected = predict_busyness(fit_model(), queries)["predicted_busyness"].to_numpy()
    for uri in every_uri(registry):
        answers = predict_busyness(load_model(uri), queries)["predicted_busyness"].to_numpy()
        np.testing.assert_array_equal(answers, expected, err_msg=uri)
    assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") != "true"


@pytest.mark.slow
def test_a_planted_pickle_is_refused_on_every_path_and_never_run(registry, tmp_path):
    stored = _stored_artifact(registry)
    backup = tmp_path / "backup"
    shutil.copytree(stored, backup)
    marker = tmp_path / "code-ran"
    try:
        plant_pickle(stored, marker)
        for uri in every_uri(registry):
            with pytest.raises(ArtifactIntegrityError, match="registry says"):
                fetch_model(uri, tmp_path / "fetched")
            with pytest.raises(ArtifactIntegrityError):
                load_model(uri)
            with pytest.raises(ArtifactIntegrityError):
                mlflow.pyfunc.load_model(uri)
        with pytest.raises(ArtifactIntegrityError):
            load_version(resolve_version(NAME, aliases=["challenger"]))
    finally:
        shutil.rmtree(stored)
        shutil.copytree(backup, stored)
    assert not marker.exists()
    assert fetch_model(URI, tmp_path / "b").is_dir()


@pytest.mark.slow
def test_changed_bundled_code_in_the_store_is_refused(registry, tmp_path):
    module = _stored_artifact(registry).parent / "code/geo_busyness/model/pyfunc.py"
    original = module.read_bytes()
    try:
        module.write_bytes(original + b"\nimport os  # planted\n")
        for uri in every_uri(registry):
            with pytest.raises(ArtifactIntegrityError, match="bundled code was changed"):
                fetch_model(uri, tmp_path / "fetched")
    finally:
        module.write_bytes(original)


@pytest.mark.slow
def test_a_changed_artifact_is_refused_before_it_is_read(registry, tmp_path):
    arrays = _stored_artifact(registry) / ARRAYS
    original = arrays.read_bytes()
    try:
        arrays.write_bytes(original + b"\n# tampered")
        with pytest.raises(ArtifactIntegrityError, match=ARRAYS):
            fetch_model(URI, tmp_path / "a")
        with pytest.raises(ArtifactIntegrityError):
            load_version(resolve_version(NAME, aliases=["challenger"]))
    finally:
        arrays.write_bytes(original)
    assert fetch_model(URI, tmp_path / "b").is_dir()


@pytest.mark.slow
def test_a_version_whose_registration_did_not_finish_is_never_served(registry, tmp_path):
    """As if killed between creating the version and tagging it (older code's order)."""
    client = mlflow.MlflowClient()
    half = client.create_model_version(NAME, registry["source"], registry["run_id"])
    client.set_registered_model_alias(NAME, "half", half.version)
    for uri in (f"models:/{NAME}/{half.version}", f"models:/{NAME}@half"):
        with pytest.raises(ArtifactIntegrityError, match="registration did not finish"):
            load_model(uri)
        with pytest.raises(ArtifactIntegrityError, match="registration did not finish"):
            fetch_model(uri, tmp_path / "half")
        with pytest.raises(ArtifactIntegrityError, match="registration did not finish"):
            mlflow.pyfunc.load_model(uri)


@pytest.mark.slow
def test_pyfunc_takes_what_the_server_takes_and_answers_the_same_columns(registry, queries):
    model = mlflow.pyfunc.load_model(URI)
    expected = predict_busyness(fit_model(), queries)
    hours = pd.to_datetime(expected["hour"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    aware = queries  # UTC-aware pandas timestamps: MLflow's signature check refused them
    iso = queries.assign(
        courier_location_timestamp=queries["courier_location_timestamp"].dt.strftime(
            "%Y-%m-%dT%H:%M:%S%z"
        )
    )
    records = iso.to_dict(orient="records")
    for data in (aware, iso, records):
        answer = model.predict(data)
        assert isinstance(answer, pd.DataFrame)
        assert list(answer.columns)[:3] == ["h3_cell", "hour", "predicted_busyness"]
        assert answer["h3_cell"].tolist() == expected["h3_cell"].tolist()
        assert answer["hour"].tolist() == hours
        np.testing.assert_array_equal(
            answer["predicted_busyness"].to_numpy(), expected["predicted_busyness"].to_numpy()
        )
    with pytest.raises(mlflow.exceptions.MlflowException, match="out of range"):
        model.predict(iso.assign(courier_location_timestamp="9999-12-31T23:00:00Z"))


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_the_server(registry, queries):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry["uri"],
    }
    env.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            URI,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=registry["root"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "mlflow models serve exited"
            time.sleep(1)
        rows = queries.head(5).assign(
            courier_location_timestamp=lambda f: f["courier_location_timestamp"].dt.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        )
        answer = httpx.post(
            f"{url}/invocations",
            json={"dataframe_records": rows.to_dict(orient="records")},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        expected = predict_busyness(fit_model(), queries.head(5))
        assert [row["h3_cell"] for row in predictions] == expected["h3_cell"].tolist()
        assert [row["predicted_busyness"] for row in predictions] == expected[
            "predicted_busyness"
        ].tolist()
        refused = httpx.post(
            f"{url}/invocations",
            json={"dataframe_records": [{**rows.iloc[0].to_dict(), "courier_lat": 95.0}]},
            timeout=60,
        )
        assert refused.status_code == 400, refused.text
        assert "courier_lat" in refused.text
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


@pytest.mark.slow
def test_pyfunc_explains_on_request_as_the_server_does(registry, queries):
    model = mlflow.pyfunc.load_model(URI)
    expected = explain_busyness(fit_model(), queries, 2).reset_index(drop=True)
    rows = queries.assign(
        courier_location_timestamp=queries["courier_location_timestamp"].dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    ).to_dict(orient="records")
    asked = (
        model.predict(queries, params={"explain": 2}),
        model.predict({"instances": rows, "explain": 2}),
    )
    for answer in asked:
        pd.testing.assert_frame_equal(answer[expected.columns], expected, check_dtype=False)
    top = model.predict({"instances": rows, "explain": True})
    assert "shap_contribution_3" in top.columns
    plain = model.predict({"instances": rows, "explain": False})
    assert not any(column.startswith("shap_") for column in plain.columns)
    with pytest.raises(mlflow.exceptions.MlflowException, match="'explain' option"):
        model.predict({"instances": rows, "explain": 11})

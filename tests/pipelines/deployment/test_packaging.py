"""model.tar.gz and code/inference.py, called the way AWS's SKLearn container calls them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import orjson
import pandas as pd
import pytest

from geo_busyness.model.explain import explain_busyness
from geo_busyness.model.predict import predict_busyness
from geo_busyness.pipelines.deployment.packaging import unpack_package
from geo_busyness.serving.requests import RequestError
from tests.serving.cases import GOOD_ROW


def test_package_layout(model_package, mlflow_model_dir):
    with tarfile.open(model_package["path"]) as tar:
        names = set(tar.getnames())
    model_files = {p.relative_to(mlflow_model_dir).as_posix() for p in mlflow_model_dir.rglob("*")}
    assert {name for name in model_files if "." in name or name == "MLmodel"} <= names
    assert {"MLmodel", "code/inference.py", "code/requirements.txt"} <= names
    assert {"forecaster/artifact_sha256", "forecaster/manifest.json"} <= names
    assert not any(name.endswith((".pkl", ".pickle")) for name in names)
    assert "code/geo_busyness/serving/requests.py" in names
    for module in ("forecaster", "history", "origin_features", "tree_ensemble", "predict"):
        assert f"code/geo_busyness/model/{module}.py" in names, module  # the artifact's classes
    assert all(not name.startswith(("/", "..")) for name in names)
    requirements = model_package["requirements"]
    # shap: /invocations explains on request (geo_busyness.model.explain imports it lazily)
    for dist in ("scikit-learn", "scipy", "pandas", "h3ronpy", "mlflow", "orjson", "shap"):
        assert any(line.startswith(f"{dist}==") for line in requirements), dist
    assert "code/geo_busyness/model/explain.py" in names


#: Run in a fresh interpreter where the installed project cannot be imported (as in AWS's
#: container or any environment with only the model's requirements): the bundled copy must do.
WITHOUT_PROJECT = """
import json, pathlib, sys
code = pathlib.Path(sys.argv[1])
sys.path[:] = [str(code)] + [p for p in sys.path if not (pathlib.Path(p) / "geo_busyness").is_dir()]
import geo_busyness
assert pathlib.Path(geo_busyness.__file__).parent == code / "geo_busyness", geo_busyness.__file__
"""


def run_without_project(script: str, code: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROJECT + script, str(code), *args],
        capture_output=True,
        text=True,
        cwd=code,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # a subprocess interpreter
def test_the_package_answers_without_the_project_installed(unpacked_package, busyness_model):
    """code/geo_busyness must hold every module the served code imports."""
    script = """
import inference
model = inference.model_fn(sys.argv[2])
data = inference.input_fn(sys.argv[3], "application/json")
print(inference.output_fn(inference.predict_fn(data, model), "application/json")[0].decode())
"""
    rows = [GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.47, "courier_lon": -104.55}]
    out = run_without_project(
        script, unpacked_package / "code", str(unpacked_package), orjson.dumps(rows).decode()
    )
    answers = orjson.loads(out.strip().splitlines()[-1])["predictions"]
    expected = predict_busyness(busyness_model, pd.DataFrame(rows))
    for column in ("predicted_busyness", "p10", "p50", "p90", "horizon_hours"):
        assert [a[column] for a in answers] == expected[column].tolist(), column


@pytest.mark.slow  # a subprocess interpreter
def test_the_mlflow_model_loads_without_the_project_installed(mlflow_model_dir, busyness_model):
    """The registry bundles bundle.model_modules() as the model's code_paths: enough to read
    its artifact and answer (through the pyfunc flavour, with no pickle allowed)."""
    script = """
import os, mlflow.pyfunc, pandas as pd
from geo_busyness.model.predict import predict_busyness
assert os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION") != "true"
model = mlflow.pyfunc.load_model(sys.argv[2]).get_raw_model()
print(json.dumps(predict_busyness(model, pd.DataFrame(json.loads(sys.argv[3])))
      [["predicted_busyness", "p10", "p90", "horizon_hours"]].values.tolist()))
"""
    rows = [GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.47, "courier_lon": -104.55}]
    out = run_without_project(
        script, mlflow_model_dir / "code", str(mlflow_model_dir), orjson.dumps(rows).decode()
    )
    expected = predict_busyness(busyness_model, pd.DataFrame(rows))
    columns = ["predicted_busyness", "p10", "p90", "horizon_hours"]
    assert json.loads(out.strip().splitlines()[-1]) == expected[columns].values.tolist()


@pytest.fixture(scope="module")
def inference(unpacked_package):
    """code/inference.py imported from the unpacked tarball, as the container imports it."""
    path = unpacked_package / "code" / "inference.py"
    spec = importlib.util.spec_from_file_location("inference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("inference", None)


def test_inference_functions_answer_predict_busyness(inference, unpacked_package, busyness_model):
    model = inference.model_fn(str(unpacked_package))
    rows = [GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.47, "courier_lon": -104.55}]
    data = inference.input_fn(orjson.dumps(rows), "application/json")
    prediction = inference.predict_fn(data, model)
    body, media = inference.output_fn(prediction, "application/json")
    assert media == "application/json"
    answers = orjson.loads(body)["predictions"]
    expected = predict_busyness(busyness_model, pd.DataFrame(rows))
    for column in ("h3_cell", "predicted_busyness", "p10", "p50", "p90", "horizon_hours"):
        assert [a[column] for a in answers] == expected[column].tolist(), column

    csv_body, csv_media = inference.output_fn(
        inference.predict_fn(
            inference.input_fn(pd.DataFrame(rows).to_csv(index=False), "text/csv"), model
        ),
        "text/csv",
    )
    assert csv_media == "text/csv"
    header = csv_body.decode().splitlines()[0]
    assert header == "h3_cell,hour,predicted_busyness,p10,p50,p90,horizon_hours"


def test_inference_functions_explain_on_request(inference, unpacked_package, busyness_model):
    """The container takes the server's "explain" option and answers with the same numbers."""
    model = inference.model_fn(str(unpacked_package))
    rows = [GOOD_ROW, {**GOOD_ROW, "courier_lat": 50.47, "courier_lon": -104.55}]
    body = orjson.dumps({"instances": rows, "explain": 2})
    prediction = inference.predict_fn(inference.input_fn(body, "application/json"), model)
    document = orjson.loads(inference.output_fn(prediction, "application/json")[0])
    assert document["explanations"]["method"] == "gradient_boosting"
    expected = explain_busyness(busyness_model, pd.DataFrame(rows), 2)
    for answer, (_, want) in zip(document["predictions"], expected.iterrows(), strict=True):
        top = answer["explanation"]["top"]
        assert [item["feature"] for item in top] == [want["shap_feature_1"], want["shap_feature_2"]]
        assert [item["contribution"] for item in top] == [
            want["shap_contribution_1"],
            want["shap_contribution_2"],
        ]
    with pytest.raises(RequestError) as caught:
        inference.input_fn(orjson.dumps({"instances": rows, "explain": -1}), "application/json")
    assert caught.value.status == 400


def test_inference_input_fn_refuses_bad_requests(inference):
    with pytest.raises(RequestError) as caught:
        inference.input_fn(b'[{"courier_lat": 91}]', "application/json")
    assert caught.value.status == 400
    with pytest.raises(RequestError) as caught:
        inference.input_fn(b"x", "application/xml")
    assert caught.value.status == 415


def test_inside_the_sagemaker_toolkit_a_bad_request_keeps_its_4xx(unpacked_package, monkeypatch):
    """The toolkit answers BaseInferenceToolkitError with its status; other errors become 500."""

    class BaseInferenceToolkitError(Exception):  # the toolkit's signature
        def __init__(self, status_code, message, phrase):
            super().__init__(status_code, message, phrase)
            self.status_code, self.message, self.phrase = status_code, message, phrase

    toolkit = types.ModuleType("sagemaker_inference")
    errors = types.ModuleType("sagemaker_inference.errors")
    errors.BaseInferenceToolkitError = BaseInferenceToolkitError
    toolkit.errors = errors
    monkeypatch.setitem(sys.modules, "sagemaker_inference", toolkit)
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", errors)
    path = unpacked_package / "code" / "inference.py"
    spec = importlib.util.spec_from_file_location("inference_in_toolkit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(BaseInferenceToolkitError) as caught:
        module.input_fn(b'[{"courier_lat": 91}]', "application/json")
    assert caught.value.status_code == 400
    assert "courier_location_timestamp" in orjson.loads(caught.value.phrase)["error"]


@pytest.mark.parametrize("hide_filters", [False, True], ids=["this-python", "no-filters"])
def test_unpacking_refuses_a_member_outside_the_package(tmp_path, monkeypatch, hide_filters):
    """Python's extraction filter where it exists, and the check used where it does not."""
    if hide_filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(evil, arcname="../escaped.txt")
    with pytest.raises((ValueError, tarfile.TarError)):
        unpack_package(tarball, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_the_container_refuses_points_outside_the_area_as_the_server_does(
    inference, unpacked_package
):
    """A swapped pair and a point in another city: 400 with the server's reasons, not scored."""
    model = inference.model_fn(str(unpacked_package))
    far = {**GOOD_ROW, "courier_lat": 40.75, "courier_lon": -73.98}  # New York
    swapped = {
        **GOOD_ROW,
        "courier_lat": GOOD_ROW["courier_lon"],
        "courier_lon": GOOD_ROW["courier_lat"],
    }
    for row, reason in ((far, "outside_service_area"), (swapped, "swapped_coordinates")):
        with pytest.raises(RequestError, match=reason) as refused:  # in input_fn or predict_fn
            inference.predict_fn(inference.input_fn(orjson.dumps([row]), "application/json"), model)
        assert refused.value.status == 400


def test_the_container_follows_a_published_counts_state(
    inference, unpacked_package, busyness_model, tmp_path, monkeypatch
):
    """With GEO_BUSYNESS_COUNTS_STATE set, the next hours are forecast from the state's end."""
    from geo_busyness.model.counts_state import counts_state, write_counts_state  # noqa: PLC0415

    origin = busyness_model.origin
    cells = busyness_model.history_.cells[:3]
    counts = pd.DataFrame(
        {
            "cell": cells,
            "hour": [origin] * len(cells),
            "busyness": [50.0] * len(cells),
        }
    )
    path = tmp_path / "counts_state.parquet"
    write_counts_state(counts_state(counts, origin + pd.Timedelta(hours=1)), str(path))
    monkeypatch.setenv("GEO_BUSYNESS_COUNTS_STATE", str(path))
    model = inference.model_fn(str(unpacked_package))
    assert model.model().origin == origin + pd.Timedelta(hours=1)
    monkeypatch.delenv("GEO_BUSYNESS_COUNTS_STATE")
    assert inference.model_fn(str(unpacked_package)).model().origin == origin

"""The Airflow DAG (airflow/dags/): kedro-airflow's output from the project's template, parsed by
Airflow's own DagBag in the Airflow worker environment (the `airflow` extra, in .venv-airflow).

Airflow pins FastAPI below the main environment's, so it lives in an environment of its own
(`uv sync --no-dev --extra airflow`, the lock's separate resolution): the DagBag check runs
there as a subprocess, tests/airflow_dag_check.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from geo_busyness.testing import PROJECT_ROOT, make_project_copy
from tests.alerting import write_credentials
from tests.conftest import copy_project
from tests.pipelines.monitoring.test_pipeline import write_recent_window

DAGS = PROJECT_ROOT / "airflow" / "dags"
TEMPLATE = PROJECT_ROOT / "airflow" / "dag_template.j2"
DAG_FILE = DAGS / "geo_busyness_monitoring_dag.py"
DAG_ID = "geo_busyness_monitoring_retraining"
AIRFLOW_VENV = PROJECT_ROOT / ".venv-airflow"
CHECK = Path(__file__).with_name("airflow_dag_check.py")
RECORDS = Path("data") / "08_reporting" / "retraining" / "retraining_record.json"


def makefile_recipe(target: str) -> list[str]:
    """The command lines of a Makefile target."""
    lines = (PROJECT_ROOT / "Makefile").read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"{target}:")))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if not line.strip().startswith("@#"):
            recipe.append(line.strip())
    return recipe


def generation_command(target_dir: Path) -> list[str]:
    """`make airflow-dag`'s `kedro airflow create ...`, writing to ``target_dir`` instead."""
    line = next(line for line in makefile_recipe("airflow-dag") if "kedro airflow create" in line)
    words = shlex.split(line)
    words = words[words.index("kedro") + 1 :]
    words[words.index("--target-dir") + 1] = str(target_dir)
    return [sys.executable, "-m", "kedro", *words]


def test_the_makefile_regenerates_the_committed_dag_folder_from_the_template():
    command = generation_command(Path("OUT"))
    assert command[3:7] == ["airflow", "create", "--pipelines", "monitoring"]
    assert command[command.index("--jinja-file") + 1] == str(TEMPLATE.relative_to(PROJECT_ROOT))
    assert any("--target-dir airflow/dags" in line for line in makefile_recipe("airflow-dag"))
    assert sorted(path.name for path in DAGS.glob("*.py")) == [DAG_FILE.name]


@pytest.mark.slow
def test_committed_dag_is_what_kedro_airflow_generates(tmp_path):
    """Regenerated with the Makefile's command in a project copy: byte for byte the same file."""
    project = make_project_copy(tmp_path / "project")
    (project / "airflow").mkdir()
    shutil.copy(TEMPLATE, project / "airflow" / TEMPLATE.name)
    out = tmp_path / "dags"
    result = subprocess.run(
        generation_command(out), cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    generated = sorted(out.iterdir())
    assert [path.name for path in generated] == [DAG_FILE.name]
    assert generated[0].read_text() == DAG_FILE.read_text(), (
        "airflow/dags/ differs from kedro-airflow's output: run `make airflow-dag`"
    )


def airflow_python() -> Path:
    """The Airflow worker environment's Python, synced from the lock (`make install-airflow`)."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build the Airflow environment (.venv-airflow)"
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(AIRFLOW_VENV)
    result = subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--extra", "airflow"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return AIRFLOW_VENV / "bin" / "python"


@pytest.fixture(scope="module")
def dag_check(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What Airflow's DagBag found and what DAG runs did (tests/airflow_dag_check.py)."""
    python = airflow_python()
    work = tmp_path_factory.mktemp("airflow")
    project = make_project_copy(work / "project")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    # Compiled once into .venv-airflow, rather than on every run where CI sets it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "AIRFLOW_HOME": str(work / "airflow_home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "GEO_BUSYNESS_PROJECT_PATH": str(project),
        "KEDRO_ENV": "local",  # instead of the DAG's `cloud`: no tracking server here
        "KEDRO_DISABLE_TELEMETRY": "1",
    }
    out = work / "dag_check.json"
    result = subprocess.run(
        [str(python), str(CHECK), str(DAGS), DAG_ID, str(out)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_airflow_parses_the_dag_folder_without_errors(dag_check):
    assert dag_check["import_errors"] == {}
    assert dag_check["dag_ids"] == [DAG_ID]


@pytest.mark.slow
def test_the_dag_schedule_and_guards(dag_check):
    dag = dag_check["dag"]
    assert (dag["schedule"], dag["timetable"]) == ("0 5 * * *", "CronTriggerTimetable")
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False
    assert dag["params"] == {"force": False, "target": None}
    assert dag["target_accepts"] == {"None": True, "local": True, "sagemaker": True, "gcp": False}


@pytest.mark.slow
def test_the_dag_tasks_and_their_order(dag_check):
    tasks = dag_check["dag"]["tasks"]
    order = ["monitoring", "retrain_due", "retraining", "deployment"]
    assert set(tasks) == set(order)
    for before, after in zip(order, order[1:], strict=False):
        assert tasks[before]["downstream"] == [after]
        assert tasks[after]["upstream"] == [before]
    assert tasks["monitoring"]["upstream"] == [] and tasks["deployment"]["downstream"] == []
    # the two short-circuits: retraining only when due, deployment only of a registered version
    assert tasks["retrain_due"]["operator"] == "_ShortCircuitDecoratedOperator"
    assert tasks["retraining"]["operator"] == "_ShortCircuitDecoratedOperator"


@pytest.mark.slow
def test_the_dag_runs_the_job_steps_it_should(dag_check):
    """Real DAG runs (Airflow's dag.test) of the project's real job steps on scripted sessions:
    the short-circuits skip what they should, `force` and `target` reach the tasks, the
    registered version reaches deployment, and each run saves the record and sends the alert
    `kedro retrain` does (before: no record, no alert on the Airflow path)."""
    runs = dag_check["runs"]
    assert all(run["state"] == "success" for run in runs.values()), runs
    deploy_9 = {"deployment": {"model_version": "9", "target": "local"}}
    expected = {
        "not_recommended": (
            {"retraining": "skipped", "deployment": "skipped"},
            [["ingestion", None], ["monitoring", None]],
            (["skipped"], []),
        ),
        "forced_to_sagemaker": (
            {"retraining": "success", "deployment": "success"},
            [
                ["ingestion", None],
                ["monitoring", None],
                ["retraining", None],
                ["deployment", {"deployment": {"model_version": "9", "target": "sagemaker"}}],
            ],
            (["promoted"], ["challenger_promoted"]),
        ),
        "recommended_not_registered": (
            {"retraining": "success", "deployment": "skipped"},
            [["ingestion", None], ["monitoring", None], ["retraining", None]],
            (["champion_kept"], ["challenger_rejected"]),
        ),
        "recommended": (
            {"retraining": "success", "deployment": "success"},
            [
                ["ingestion", None],
                ["monitoring", None],
                ["retraining", None],
                ["deployment", deploy_9],
            ],
            (["promoted"], ["challenger_promoted"]),
        ),
    }
    for name, (states, pipeline_runs, (records, alerts)) in expected.items():
        tasks = runs[name]["tasks"]
        assert (tasks["monitoring"], tasks["retrain_due"]) == ("success", "success"), name
        assert {task: tasks[task] for task in states} == states, name
        assert runs[name]["runs"] == pipeline_runs, name
        assert (runs[name]["records"], runs[name]["alerts"]) == (records, alerts), name


@pytest.mark.slow
def test_the_tasks_job_is_the_workers_project_in_this_environment(dag_check):
    """The job the DAG builds: GEO_BUSYNESS_PROJECT_PATH and KEDRO_ENV; a real Kedro session
    of the project read its parameters in the Airflow environment, its paths absolute from the
    project (the worker runs in another folder)."""
    job = dag_check["job"]
    assert Path(job["project_path"]).name == "project" and job["env"] == "local"
    parameters = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_retraining.yml").read_text())
    lock_file = Path(job["project_path"]) / parameters["retraining"]["lock_file"]
    assert job["lock_file"] == lock_file.as_posix()


def _relative_mlflow_store(project: Path) -> None:
    """Back to conf/base's relative ``sqlite:///mlflow.db`` (the copy helper makes it absolute)."""
    config = project / "conf" / "base" / "mlflow.yml"
    text = re.sub(
        r"(?m)^(\s*mlflow_tracking_uri:)\s*\S+", r"\1 sqlite:///mlflow.db", config.read_text()
    )
    config.write_text(text)


def _registry(project: Path) -> tuple[list[str], dict[str, str]]:
    """The project store's registered versions and aliases (read with sqlite3: no MLflow)."""
    with sqlite3.connect(project / "mlflow.db") as db:
        versions = [str(row[0]) for row in db.execute("SELECT version FROM model_versions")]
        aliases = dict(db.execute("SELECT alias, version FROM registered_model_aliases"))
    return sorted(versions), {alias: str(version) for alias, version in aliases.items()}


@pytest.fixture
def made_run(trained_project, tmp_path) -> Path:
    """A project as `make run` leaves it: trained, version 1 registered as the challenger,
    nothing deployed (a copy of the session's trained sample, registry included: only the
    registry and the data matter)."""
    return copy_project(trained_project.path, tmp_path / "project", with_mlflow=True)


@pytest.mark.slow
def test_the_dag_run_from_another_folder_uses_the_projects_registry(made_run, tmp_path, webhook):
    """`airflow dags test`'s run (dag.test) with the real job, started in a folder other than
    the project, whose mlflow.yml says the relative `sqlite:///mlflow.db`: the project's own
    registry is used and nothing lands in the worker's folder (before: a new, empty registry
    there, a first model trained into it). The project is as `make run` leaves it (version 1
    registered as challenger, no champion) and monitoring sees no reason to retrain: the job
    deploys version 1 instead of training again, records it and sends one alert."""
    python = airflow_python()
    project = made_run
    _relative_mlflow_store(project)
    write_recent_window(project, {})
    (project / "conf" / "local" / "parameters_alerts.yml").write_text(
        yaml.safe_dump({"alerts": {"enabled": True, "webhook": {"retry_wait_seconds": 0}}})
    )
    write_credentials(project, {"alerts_webhook": {"url": webhook.url}})
    assert _registry(project) == (["1"], {"challenger": "1"})

    worker = tmp_path / "airflow_home"  # the worker's working directory, as in issue #24
    worker.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "AIRFLOW_HOME": str(worker),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "GEO_BUSYNESS_PROJECT_PATH": str(project),
        "KEDRO_ENV": "local",
        "KEDRO_DISABLE_TELEMETRY": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "real_run.json"
    result = subprocess.run(
        [str(python), str(CHECK), str(DAGS), DAG_ID, str(out), "real"],
        cwd=worker,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    run = json.loads(out.read_text())
    assert run["state"] == "success", run
    assert set(run["tasks"].values()) == {"success"}, run["tasks"]

    assert not {"mlflow.db", "mlruns", "data"} & {path.name for path in worker.iterdir()}
    assert _registry(project) == (["1"], {"challenger": "1", "champion": "1"})
    records = sorted((project / RECORDS).glob("*/*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "promoted" and record["pending_version"] == "1"
    assert (record["champion_before"], record["champion_after"]) == (None, "1")
    assert [step["step"] for step in record["steps"]] == [
        "ingestion",
        "monitoring",
        "decision",
        "deployment",
    ]
    assert (project / "data/06_models/deployment/serving/geo-busyness-v1").is_dir()
    events = [payload["text"].split()[2].rstrip(":") for payload in webhook.payloads()]
    assert events == ["challenger_promoted"]

"""Run by the Airflow environment's Python (tests/test_airflow_dag.py), never collected by pytest.

``python airflow_dag_check.py DAG_FOLDER DAG_ID OUT_JSON [real]``: parses DAG_FOLDER with Airflow's own
DagBag and describes the DAG; runs it (``dag.test``) in a few scenarios, its tasks calling the
project's real ``operations.steps`` on a stand-in job (no pipeline runs); builds the job the
DAG builds from the environment and reads the project's parameters through it (one real Kedro
session of the project in this environment); writes all of it to OUT_JSON. With ``real``: one
DAG run of the real job over the project (GEO_BUSYNESS_PROJECT_PATH), its task states. The caller sets
AIRFLOW_HOME (a scratch folder) and AIRFLOW__CORE__DAGS_FOLDER (DAG_FOLDER).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from airflow.models import DagBag

from geo_busyness.operations.job import RetrainingJob


class StandInJob(RetrainingJob):
    """The project's real ``RetrainingJob`` (its steps, record and alerts) with its Kedro
    sessions replaced: a scripted registry and catalog; it records the pipelines it is asked
    to run, the records it saves and the alerts it sends."""

    def __init__(self, project_path: Path) -> None:
        super().__init__(
            project_path, notify=lambda event, summary, record: self.alerts.append(event)
        )
        self.runs: list[list[Any]] = []
        self.saved: list[dict[str, Any]] = []
        self.alerts: list[str] = []
        self.champion: str | None = "6"
        self.datasets: dict[str, Any] = {
            "retrain_recommended": {"retrain_recommended": False, "reasons": []},
            "evaluation_report": {"registration": {"registered": True, "version": "7"}},
        }

    def params(self) -> dict[str, Any]:
        return {
            "retraining": {"lock_file": "data/retraining.lock", "deployment_target": None},
            "deployment": {"target": "local", "aliases": ["challenger"]},
        }

    def champion_version(self, params: dict[str, Any]) -> str | None:
        return self.champion

    def challenger(self, params: dict[str, Any]) -> tuple[str, float] | None:
        return None

    def run_pipeline(self, name: str, extra: dict[str, Any] | None = None) -> None:
        self.runs.append([name, extra])
        if name == "deployment":
            self.champion = extra["deployment"]["model_version"]

    def load(self, name: str) -> Any:
        return self.datasets.get(name)

    def save_record(self, record: dict[str, Any]) -> None:
        self.saved.append(json.loads(json.dumps(record)))


def describe(dag: Any) -> dict[str, Any]:
    defaults = dag.params.dump()
    accepted = {}
    for value in (None, "local", "sagemaker", "gcp"):
        try:  # on a copy: resolve() keeps the value it validated
            copy.deepcopy(dag.params.get_param("target")).resolve(value)
            accepted[str(value)] = True
        except Exception:  # noqa: BLE001 - Airflow's ParamValidationError, whatever its module
            accepted[str(value)] = False
    return {
        "schedule": str(dag.schedule),
        "timetable": type(dag.timetable).__name__,
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "dagrun_timeout_s": dag.dagrun_timeout.total_seconds(),
        "start_date": dag.start_date.isoformat(),
        "params": defaults,
        "target_accepts": accepted,
        "tags": sorted(dag.tags),
        "tasks": {
            task.task_id: {
                "operator": type(task).__name__,
                "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids),
                "retries": task.retries,
            }
            for task in dag.tasks
        },
    }


#: (monitoring's verdict, the run's conf, what retraining registered) per scenario. Each conf
#: names every param: in one process, dag.test keeps the previous run's values as defaults.
DEFAULTS = {"force": False, "target": None}
SCENARIOS = {
    "not_recommended": (False, DEFAULTS, "9"),
    "forced_to_sagemaker": (False, {"force": True, "target": "sagemaker"}, "9"),
    "recommended_not_registered": (True, DEFAULTS, None),
    "recommended": (True, DEFAULTS, "9"),
}


def run_scenarios(dag: Any, workdir: Path) -> dict[str, Any]:
    """Real DAG runs (``dag.test``: Airflow's scheduler logic, params, XCom, short-circuits in
    this process, on a SQLite metadata database) with a stand-in job."""
    from airflow.utils import db  # noqa: PLC0415 - needs AIRFLOW_HOME set by the caller

    db.initdb()
    module_globals = dag.get_task("monitoring").python_callable.__globals__
    real_job = module_globals["_job"]
    results = {}
    for name, (verdict, conf, version) in SCENARIOS.items():
        job = StandInJob(workdir)
        job.datasets["retrain_recommended"] = {"retrain_recommended": verdict}
        job.datasets["evaluation_report"] = {
            "registration": {"registered": version is not None, "version": version}
        }
        module_globals["_job"] = lambda job=job: job
        run = dag.test(run_conf=conf)
        results[name] = {
            "state": str(run.state),
            "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
            "runs": job.runs,
            "records": [record["status"] for record in job.saved],
            "alerts": job.alerts,
        }
    module_globals["_job"] = real_job
    return results


def build_job(dag: Any) -> dict[str, Any]:
    """The job the DAG builds from the worker's environment, and its parameters read through a
    real Kedro session of the project in this environment."""
    job = dag.get_task("monitoring").python_callable.__globals__["_job"]()
    return {
        "project_path": str(job.project_path),
        "env": job.env,
        "lock_file": job.params()["retraining"]["lock_file"],
    }


def real_run(dag: Any) -> dict[str, Any]:
    """One DAG run (``dag.test``) with the job the DAG builds: real Kedro sessions of the
    project at GEO_BUSYNESS_PROJECT_PATH, from this process's working directory."""
    from airflow.utils import db  # noqa: PLC0415 - needs AIRFLOW_HOME set by the caller

    db.initdb()
    for task in dag.tasks:  # a failure ends the run here rather than waiting out retry_delay
        task.retries = 0
    run = dag.test(run_conf={"force": False, "target": None})
    return {
        "state": str(run.state),
        "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
    }


def main(dag_folder: str, dag_id: str, out_path: str, mode: str = "check") -> None:
    bag = DagBag(dag_folder=dag_folder)
    if mode == "real":
        Path(out_path).write_text(json.dumps(real_run(bag.dags[dag_id]), indent=2, default=str))
        return
    result: dict[str, Any] = {
        "import_errors": {str(path): str(error) for path, error in bag.import_errors.items()},
        "dag_ids": sorted(bag.dag_ids),
    }
    dag = bag.dags.get(dag_id)
    if dag is not None:
        result["dag"] = describe(dag)
        result["runs"] = run_scenarios(dag, Path(out_path).parent)
        result["job"] = build_job(dag)
    Path(out_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])

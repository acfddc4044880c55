"""The retraining job behind ``kedro retrain``: monitoring -> decide -> retrain -> deploy -> record.

Each step is a Kedro session of its own (its own MLflow run). The champion alias moves only in
the deployment's last node, so a failure anywhere leaves the champion serving; the record names
the step that failed, and a rerun resumes from a challenger the failed job already registered.
A file lock keeps two jobs on one machine from racing on the registry.

The steps are methods of ``RetrainingJob`` over one record (a JSON-safe dict): ``run`` calls
them in one process; ``operations.steps`` calls the same methods one per Airflow task, the
record travelling between tasks as XCom. Both save the same record and send the same alerts
(``announce``): one per outcome, the pipelines' own ``pipeline_failed``/``gate_failed`` kept
quiet meanwhile (``alerts.job_reports``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The record's dataset (conf/base/catalog_retraining.yml).
RECORD = "retraining_record"
#: Steps in order; ``failed_step`` is one of these (or ``lock``: another job held it).
STEPS = ("ingestion", "monitoring", "decision", "training", "deployment")
#: What the job does after monitoring: nothing, train a challenger, or deploy a registered one.
SKIP, TRAIN, DEPLOY = "skip", "train", "deploy"


class RetrainingLocked(RuntimeError):
    """Another retraining job holds the lock."""


class RetrainingFailed(RuntimeError):
    """A step failed; the record says which, the champion keeps serving."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        super().__init__(failure_message(record))


def retraining_due(retrain_recommended: bool, force: bool) -> bool:
    """Retrain when monitoring recommends it or when forced."""
    return bool(retrain_recommended) or bool(force)


def recommended(verdict: dict[str, Any] | None) -> bool:
    """Monitoring's ``retrain_recommended`` dataset as a bool (None: not written)."""
    return bool((verdict or {}).get("retrain_recommended"))


def registered_version(report: dict[str, Any] | None) -> str | None:
    """The version a training run registered (None: the gates kept the champion)."""
    registration = (report or {}).get("registration") or {}
    return str(registration["version"]) if registration.get("registered") else None


def deployment_target(params: dict[str, Any], requested: str | None) -> str:
    """``requested``, else ``retraining.deployment_target``, else ``deployment.target``."""
    return (
        requested or params["retraining"].get("deployment_target") or params["deployment"]["target"]
    )


def lock_path(project_path: Path, params: dict[str, Any]) -> Path:
    """The job's lock file: ``retraining.lock_file``, from the project path when relative."""
    return Path(project_path) / params["retraining"]["lock_file"]


@contextmanager
def retraining_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed), or raise ``RetrainingLocked``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            raise RetrainingLocked(
                f"Another retraining job holds {path} ({holder}); this one did nothing."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {_now()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def failure_message(record: dict[str, Any]) -> str:
    """One line: which step failed, why, and who serves."""
    champion = record.get("champion_after") or record.get("champion_before")
    serving = f"The champion (version {champion}) keeps serving" if champion else "No champion"
    return (
        f"Retraining failed at step '{record['failed_step']}': {record['error']}."
        f" {serving}; see {RECORD}."
    )


def resumable_version(last: dict[str, Any] | None) -> str | None:
    """The challenger a previous job registered but did not deploy (it failed at training,
    after registering, or at deployment); None for any other outcome (a rollback included)."""
    if not last or last.get("status") != "failed":
        return None
    if last.get("failed_step") not in ("training", "deployment"):
        return None
    return last.get("registered_version")


def outcome_alert(record: dict[str, Any]) -> tuple[str, str] | None:
    """The (event, summary) the job's outcome calls for; None when it needs no alert (skipped;
    a rollback is announced by the deployment run itself as ``deployment_rolled_back``)."""
    status = record["status"]
    if status == "failed":
        return "retraining_failed", failure_message(record)
    if status == "locked":
        return "retraining_failed", record["error"]
    if status == "promoted":
        before = record.get("champion_before")
        beat = f"beat the champion (v{before})" if before else "is the first champion"
        if record.get("pending_version"):
            beat = "was registered before, no champion served: it is the first champion"
        return (
            "challenger_promoted",
            f"Version {record['registered_version']} {beat} and now serves.",
        )
    if status == "champion_kept":
        champion = record.get("champion_after")
        keeps = f"champion v{champion} keeps serving" if champion else "no champion serves yet"
        return "challenger_rejected", f"The retrained model was not registered; {keeps}."
    return None


def alert_details(record: dict[str, Any]) -> dict[str, Any]:
    """The record's facts an alert shows: outcome, versions, and the reasons (listed once)."""
    keys = ("status", "failed_step", "registered_version", "champion_before", "champion_after")
    details = {key: record[key] for key in keys if record.get(key) is not None}
    details["reasons"] = (record.get("gate") or {}).get("reasons") or record.get("reasons") or []
    return details


class RetrainingJob:
    """One retraining job over a project: ``run`` returns (and saves) its record."""

    def __init__(
        self,
        project_path: Path,
        env: str | None = None,
        runtime_params: dict[str, Any] | None = None,
        notify: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.project_path = Path(project_path).resolve()
        self.env = env
        self.runtime_params = runtime_params or {}
        self.notify = notify or self.send_alert

    # ------------------------------------------------------------------ sessions
    def _session(self, extra: dict[str, Any] | None = None):
        from kedro.framework.session import KedroSession  # noqa: PLC0415
        from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

        bootstrap_project(self.project_path)
        params = _merge(self.runtime_params, extra or {})
        return KedroSession.create(
            project_path=self.project_path, env=self.env, runtime_params=params
        )

    def run_pipeline(self, name: str, extra: dict[str, Any] | None = None) -> None:
        """Run one registered pipeline in a session of its own; the job reports its failures
        and failed gates itself (``alerts.job_reports``), the run's hook stays quiet on them."""
        from kedro.runner import SequentialRunner  # noqa: PLC0415

        from geo_busyness.operations.alerts import job_reports  # noqa: PLC0415

        with job_reports(), self._session(extra) as session:
            session.run(pipeline_names=[name], runner=SequentialRunner())

    def load(self, name: str) -> Any:
        """A dataset of the project's catalog (None when it does not exist yet)."""
        from kedro.io import DatasetError  # noqa: PLC0415

        with self._session() as session:
            try:
                return session.load_context().catalog.load(name)
            except DatasetError:
                return None

    def save_record(self, record: dict[str, Any]) -> None:
        with self._session() as session:
            session.load_context().catalog.save(RECORD, record)

    def send_alert(self, event: str, summary: str, record: dict[str, Any]) -> None:
        """The job's alert through the project's ``alerts`` settings (off by default)."""
        from geo_busyness.operations.alerts import Alert, read_credentials, send_alert  # noqa: PLC0415

        with self._session() as session:
            context = session.load_context()
            where = {"env": self.env or context.env, "pipelines": ["retrain"]}
            alert = Alert(event, summary, alert_details(record), where)
            send_alert(alert, context.params.get("alerts"), read_credentials(context.config_loader))

    def params(self) -> dict[str, Any]:
        with self._session() as session:
            return session.load_context().params

    def _alias(self, params: dict[str, Any], alias: str) -> Any:
        """The registry's model version behind ``alias`` (None when there is none)."""
        with self._session() as session:
            session.load_context().catalog  # noqa: B018 - sets the MLflow tracking URI
            from mlflow import MlflowClient  # noqa: PLC0415 - heavy

            try:
                return MlflowClient().get_model_version_by_alias(
                    params["deployment"]["registered_model_name"], alias
                )
            except Exception:  # noqa: BLE001 - MlflowException: no such model or alias
                return None

    def champion_version(self, params: dict[str, Any]) -> str | None:
        found = self._alias(params, params["deployment"]["champion_alias"])
        return str(found.version) if found is not None else None

    def challenger(self, params: dict[str, Any]) -> tuple[str, float] | None:
        """The version behind the challenger alias and when it was registered (epoch s); None
        when there is none or it did not pass the gate (deployment would refuse it)."""
        deployment = params["deployment"]
        found = self._alias(params, deployment["aliases"][0])
        gate = deployment.get("gate_tag", "gate")
        if found is None or (found.tags or {}).get(gate) != deployment.get(
            "gate_passed_value", "passed"
        ):
            return None
        return str(found.version), (found.creation_timestamp or 0) / 1000

    # ------------------------------------------------------------------ the steps
    @contextmanager
    def locked(self, params: dict[str, Any], *, announce: bool = True) -> Iterator[None]:
        """The job's file lock; when another job holds it, the ``locked`` outcome is alerted
        (``announce``) and ``RetrainingLocked`` raised: no record (the holder writes its own)."""
        try:
            with retraining_lock(lock_path(self.project_path, params)):
                yield
        except RetrainingLocked as error:
            if announce:
                self.announce({"status": "locked", "error": str(error)})
            raise

    def start(self, params: dict[str, Any], *, force: bool, target: str | None) -> dict[str, Any]:
        """A new record: when, forced or not, where a challenger goes, who serves."""
        return {
            "started_at": _now(),
            "forced": bool(force),
            "target": deployment_target(params, target),
            "champion_before": self.champion_version(params),
            "steps": [],
        }

    def plan(self, record: dict[str, Any], params: dict[str, Any]) -> str:
        """Monitoring and the decision: ``SKIP``, ``TRAIN`` or ``DEPLOY`` (then
        ``record["registered_version"]`` is the version to deploy: one an earlier job
        registered and did not deploy, or the first registered one when no champion serves)."""
        self._ingest(record)
        version = resumable_version(self.load(RECORD))
        if version is not None:
            record |= {"resumed_version": version, "registered_version": version}
            self.log(record, "monitoring", "skipped", f"resuming deployment of v{version}")
            return DEPLOY
        pending = self.challenger(params) if record["champion_before"] is None else None
        if record["champion_before"] is None and pending is None:
            self.log(record, "monitoring", "skipped", "no champion yet: training the first one")
            record["reasons"] = ["no champion serving yet"]
            return TRAIN
        due = retraining_due(self._monitor(record), record["forced"])
        if due:
            self.log(
                record, "decision", "ok", "retrain" + (" (forced)" if record["forced"] else "")
            )
            return TRAIN
        if pending is not None:
            record |= {"pending_version": pending[0], "registered_version": pending[0]}
            detail = f"no champion yet: deploying v{pending[0]}, registered before"
            self.log(record, "decision", "ok", detail)
            return DEPLOY
        self.log(record, "decision", "ok", "no reason to retrain")
        return SKIP

    def _ingest(self, record: dict[str, Any]) -> None:
        """Batches landed since the last job into the history, and the counts state the
        server follows (the ingestion pipeline), before anything judges or trains on them."""
        started = time.monotonic()
        self.run_pipeline("ingestion")
        run = (self.load("ingestion_record") or {}).get("last_run") or {}
        taken = [*run.get("appended", []), *run.get("corrected", [])]
        detail = f"{run.get('rows_added', 0):,} rows from {', '.join(taken) or 'no new batch'}"
        if run.get("refused"):
            detail += f"; refused {', '.join(run['refused'])}"
        record["ingested"] = {"batches": taken, "rows_added": run.get("rows_added", 0)}
        self.log(record, "ingestion", "ok", detail, started)

    def _monitor(self, record: dict[str, Any]) -> bool:
        """Monitoring's recommendation (against the champion, else the registered challenger)."""
        started = time.monotonic()
        self.run_pipeline("monitoring")
        verdict = self.load("retrain_recommended") or {}
        record["reasons"] = list(verdict.get("reasons", []))
        due = recommended(verdict)
        self.log(record, "monitoring", "ok", f"retrain_recommended={due}", started)
        return due

    def train(self, record: dict[str, Any], params: dict[str, Any]) -> str | None:
        """The retraining pipeline; the version it registered (None: a gate kept the champion).
        A challenger registered since the job started (an earlier attempt of this step that
        failed after registering) is resumed from, not trained again."""
        earlier = self.registered_since(record, params)
        if earlier is not None:
            record["registered_version"] = earlier
            self.log(record, "training", "skipped", f"v{earlier} registered by an earlier attempt")
            return earlier
        started = time.monotonic()
        self.run_pipeline("retraining")
        report = self.load("evaluation_report") or {}
        gate = report.get("gate", {})
        record["gate"] = {
            key: gate.get(key) for key in ("passed", "baseline_gate_passed", "reasons")
        } | {"champion_comparison": _plain(gate.get("champion_comparison"))}
        version = registered_version(report)
        detail = (
            f"registered v{version}"
            if version
            else "not registered: "
            + "; ".join(gate.get("reasons") or ["see the evaluation report"])
        )
        self.log(record, "training", "ok", detail, started)
        if version is not None:
            record["registered_version"] = version
        return version

    def registered_since(self, record: dict[str, Any], params: dict[str, Any]) -> str | None:
        """The challenger registered after the record started (by this job), if any."""
        found = self.challenger(params)
        started = datetime.fromisoformat(record["started_at"]).timestamp()
        if found is None or found[1] < started or found[0] == record.get("champion_before"):
            return None
        return found[0]

    def deploy(self, record: dict[str, Any], version: str) -> bool:
        """Deploy ``version``; False when the rollout was rolled back (the champion serves)."""
        started = time.monotonic()
        target = record["target"]
        self.run_pipeline(
            "deployment", {"deployment": {"model_version": version, "target": target}}
        )
        deployed = self.load("deployment_record") or {}
        if deployed.get("rolled_back"):
            reason = deployed.get("reason") or "rolled back"
            self.log(record, "deployment", "rolled_back", f"v{version}: {reason}", started)
            return False
        self.log(record, "deployment", "ok", f"v{version} deployed to {target}", started)
        return True

    def step(
        self,
        record: dict[str, Any],
        name: str,
        params: dict[str, Any],
        action: Callable[[], Any],
        *,
        announce: bool = True,
    ) -> Any:
        """``action()``; if it raises, the record says step ``name`` failed, is saved (and
        alerted: ``announce``) and ``RetrainingFailed`` raised."""
        try:
            return action()
        except Exception as error:
            logger.exception("Retraining step %s failed", name)
            self.log(record, name, "failed", str(error).splitlines()[0][:500] if str(error) else "")
            record |= {"failed_step": name, "error": record["steps"][-1]["detail"]}
            if name == "training" and "registered_version" not in record:
                record["registered_version"] = self._quietly(self.registered_since, record, params)
            self.conclude(record, "failed", params, announce=announce)
            raise RetrainingFailed(record) from error

    def conclude(
        self, record: dict[str, Any], status: str, params: dict[str, Any], *, announce: bool = True
    ) -> dict[str, Any]:
        """End the record with ``status``: who serves now, when; save it; send its alert."""
        record["status"] = status
        record["champion_after"] = self._quietly(self.champion_version, params)
        record["finished_at"] = _now()
        self.save_record(record)
        if announce:
            self.announce(record)
        return record

    def announce(self, record: dict[str, Any]) -> None:
        """The alert for the outcome (the alert settings decide whether it is sent)."""
        found = outcome_alert(record)
        if found is not None:
            self.notify(*found, record)

    @staticmethod
    def _quietly(read: Callable[..., Any], *args: Any) -> Any:
        """``read(*args)``, or None when it fails: a record must be saved even then."""
        try:
            return read(*args)
        except Exception as error:  # noqa: BLE001 - the step's own failure is the one reported
            logger.warning("Retraining record: %s failed (%s)", read.__name__, error)
            return None

    # ------------------------------------------------------------------ the job
    def run(self, *, force: bool | None = None, target: str | None = None) -> dict[str, Any]:
        """The job under the lock; raises ``RetrainingFailed`` (record saved) if a step fails."""
        params = self.params()
        force = params["retraining"]["force"] if force is None else force
        with self.locked(params):
            record = self.start(params, force=force, target=target)
            plan = self.step(record, "monitoring", params, lambda: self.plan(record, params))
            if plan == SKIP:
                return self.conclude(record, "skipped", params)
            version = record.get("registered_version")
            if plan == TRAIN:
                version = self.step(record, "training", params, lambda: self.train(record, params))
                if version is None:
                    return self.conclude(record, "champion_kept", params)
            deployed = self.step(record, "deployment", params, lambda: self.deploy(record, version))
            return self.conclude(record, "promoted" if deployed else "rolled_back", params)

    # ------------------------------------------------------------------ record
    def log(
        self,
        record: dict[str, Any],
        step: str,
        status: str,
        detail: str,
        started: float | None = None,
    ) -> None:
        entry: dict[str, Any] = {"step": step, "status": status, "detail": detail}
        if started is not None:
            entry["seconds"] = round(time.monotonic() - started, 1)
        record["steps"].append(entry)
        logger.info("Retraining %s: %s (%s)", step, status, detail)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged key by key (nested dicts merged, not replaced)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _plain(value: Any) -> Any:
    """A JSON-safe copy."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None

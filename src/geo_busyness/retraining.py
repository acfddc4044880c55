"""The retraining job behind ``kedro retrain``: monitoring -> decide -> retrain -> deploy -> record.

Each step is a Kedro session of its own (its own MLflow run). The champion alias moves only in
the deployment's last node, so a failure anywhere leaves the champion serving; the record names
the step that failed, and a rerun resumes a deployment whose challenger was already registered.
A file lock keeps two jobs on one machine from racing on the registry.
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
#: Steps in order; ``failed_step`` is one of these.
STEPS = ("monitoring", "decision", "training", "deployment")


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
    champion = record.get("champion_after") or "none"
    return (
        f"Retraining failed at step '{record['failed_step']}': {record['error']}."
        f" The champion (version {champion}) keeps serving; see {RECORD}."
    )


def resumable_version(last: dict[str, Any] | None) -> str | None:
    """The registered challenger a previous job failed to deploy, if that is where it stopped."""
    if not last or last.get("status") != "failed" or last.get("failed_step") != "deployment":
        return None
    return last.get("registered_version")


class RetrainingJob:
    """One retraining job over a project: ``run`` returns (and saves) its record."""

    def __init__(
        self,
        project_path: Path,
        env: str | None = None,
        runtime_params: dict[str, Any] | None = None,
        notify: Callable[[str, str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.project_path = Path(project_path)
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
        """Run one registered pipeline in a session of its own."""
        from kedro.runner import SequentialRunner  # noqa: PLC0415

        with self._session(extra) as session:
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
        from geo_busyness.alerts import Alert, read_credentials, send_alert  # noqa: PLC0415

        keys = ("status", "failed_step", "registered_version", "champion_before", "champion_after")
        details = {key: record[key] for key in keys if record.get(key) is not None}
        details["reasons"] = record.get("gate", {}).get("reasons") or record.get("reasons") or []
        with self._session() as session:
            context = session.load_context()
            alert = Alert(event, summary, details, {"env": self.env, "pipelines": ["retrain"]})
            send_alert(alert, context.params.get("alerts"), read_credentials(context.config_loader))

    def params(self) -> dict[str, Any]:
        with self._session() as session:
            return session.load_context().params

    def champion_version(self, params: dict[str, Any]) -> str | None:
        from geo_busyness.registry import ModelNotFound, resolve_version  # noqa: PLC0415

        with self._session() as session:
            session.load_context().catalog  # noqa: B018 - sets the MLflow tracking URI
            try:
                found = resolve_version(
                    params["deployment"]["registered_model_name"],
                    aliases=[params["deployment"]["champion_alias"]],
                )
            except ModelNotFound:
                return None
        return found["version"]

    # ------------------------------------------------------------------ the job
    def run(self, *, force: bool | None = None, target: str | None = None) -> dict[str, Any]:
        """The job under the lock; raises ``RetrainingFailed`` (record saved) if a step fails."""
        params = self.params()
        settings = params["retraining"]
        force = settings["force"] if force is None else force
        target = deployment_target(params, target)
        with retraining_lock(self.project_path / settings["lock_file"]):
            record = self._steps(params, force=force, target=target)
        self.save_record(record)
        self._announce(record)
        if record["status"] == "failed":
            raise RetrainingFailed(record)
        return record

    def _steps(self, params: dict[str, Any], *, force: bool, target: str) -> dict[str, Any]:
        record: dict[str, Any] = {
            "started_at": _now(),
            "forced": force,
            "target": target,
            "champion_before": self.champion_version(params),
            "steps": [],
        }
        step = "monitoring"
        try:
            version = resumable_version(self.load(RECORD))
            if version is not None:
                record["resumed_version"] = version
                self._log(record, "monitoring", "skipped", f"resuming deployment of v{version}")
            else:
                due = self._monitor(record)
                step = "decision"
                if not retraining_due(due, force):
                    self._log(record, "decision", "ok", "no reason to retrain")
                    return self._finish(record, "skipped", params)
                self._log(record, "decision", "ok", "retrain" + (" (forced)" if force else ""))
                step = "training"
                version = self._train(record)
            if version is not None:
                step = "deployment"
                record["registered_version"] = version
                if not self._deploy(record, version, target):
                    return self._finish(record, "rolled_back", params)
        except Exception as error:  # noqa: BLE001 - recorded, then raised as RetrainingFailed
            logger.exception("Retraining step %s failed", step)
            self._log(record, step, "failed", str(error).splitlines()[0][:500])
            record |= {"failed_step": step, "error": record["steps"][-1]["detail"]}
            return self._finish(record, "failed", params)
        return self._finish(record, "promoted" if version else "champion_kept", params)

    def _monitor(self, record: dict[str, Any]) -> bool:
        """Monitoring's recommendation (True with a reason when no model is registered yet)."""
        if record["champion_before"] is None:
            self._log(record, "monitoring", "skipped", "no champion yet: training the first one")
            record["reasons"] = ["no champion serving yet"]
            return True
        started = time.monotonic()
        self.run_pipeline("monitoring")
        verdict = self.load("retrain_recommended") or {}
        record["reasons"] = list(verdict.get("reasons", []))
        due = recommended(verdict)
        self._log(record, "monitoring", "ok", f"retrain_recommended={due}", started)
        return due

    def _train(self, record: dict[str, Any]) -> str | None:
        """The retraining pipeline; the version it registered (None: a gate kept the champion)."""
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
        self._log(record, "training", "ok", detail, started)
        return version

    def _deploy(self, record: dict[str, Any], version: str, target: str) -> bool:
        """Deploy ``version``; False when the rollout was rolled back (the champion serves)."""
        started = time.monotonic()
        self.run_pipeline(
            "deployment", {"deployment": {"model_version": version, "target": target}}
        )
        deployed = self.load("deployment_record") or {}
        if deployed.get("rolled_back"):
            reason = deployed.get("reason") or "rolled back"
            self._log(record, "deployment", "rolled_back", f"v{version}: {reason}", started)
            return False
        self._log(record, "deployment", "ok", f"v{version} deployed to {target}", started)
        return True

    # ------------------------------------------------------------------ record
    def _log(
        self,
        record: dict[str, Any],
        step: str,
        status: str,
        detail: str,
        started: float | None = None,
    ) -> None:
        entry = {"step": step, "status": status, "detail": detail}
        if started is not None:
            entry["seconds"] = round(time.monotonic() - started, 1)
        record["steps"].append(entry)
        logger.info("Retraining %s: %s (%s)", step, status, detail)

    def _finish(self, record: dict[str, Any], status: str, params: dict[str, Any]) -> dict:
        record["status"] = status
        record["champion_after"] = self.champion_version(params)
        record["finished_at"] = _now()
        return record

    def _announce(self, record: dict[str, Any]) -> None:
        """The alert for the outcome (the alert settings decide whether it is sent)."""
        status = record["status"]
        if status == "failed":
            self.notify("retraining_failed", failure_message(record), record)
        elif status == "promoted":
            before = record["champion_before"]
            beat = f"beat the champion (v{before})" if before else "is the first champion"
            self.notify(
                "challenger_promoted",
                f"Version {record['registered_version']} {beat} and now serves.",
                record,
            )
        elif status == "champion_kept":
            reasons = "; ".join(record.get("gate", {}).get("reasons") or [])
            self.notify(
                "challenger_rejected",
                f"The retrained model was not registered; champion v{record['champion_after']}"
                f" keeps serving: {reasons}",
                record,
            )


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

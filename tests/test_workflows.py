"""The GitHub workflows parse, and every command they run exists in the project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.project import configure_project

from geo_busyness.cli import cli
from geo_busyness.pipeline_registry import register_pipelines

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(document, dict) and document.get("jobs"), name
    # YAML 1.1 reads the key `on` as True
    assert "on" in document or True in document, f"{name} has no trigger"
    return document


def _run_lines(document: dict) -> list[str]:
    lines = []
    for job in document["jobs"].values():
        for step in job["steps"]:
            assert "uses" in step or "run" in step, step
            if "run" in step:
                lines += [line.strip() for line in step["run"].splitlines() if line.strip()]
    return lines


def _steps(document: dict) -> list[dict]:
    return [step for job in document["jobs"].values() for step in job["steps"]]


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def _check_kedro_run(line: str) -> None:
    words = shlex.split(line.replace("${{", "").replace("}}", ""))
    words = words[words.index("kedro") :]
    assert words[1] == "run", line
    options = dict(zip(words[2::2], words[3::2], strict=False))
    configure_project("geo_busyness")
    pipelines = register_pipelines()
    for name in options.get("--pipelines", "__default__").split(","):
        assert name in pipelines, f"unknown pipeline {name!r} in {line!r}"
    _check_env_and_params(options)


def _check_env_and_params(options: dict[str, str]) -> None:
    """``--env`` names a conf folder and every ``--params`` key is a project parameter."""
    if "--env" in options:
        assert (ROOT / "conf" / options["--env"]).is_dir(), f"no conf/{options['--env']}"
    for pair in options.get("--params", "").split(","):
        if pair:
            key = pair.split("=", 1)[0]
            top = key.split(".", 1)[0]
            params = (ROOT / "conf" / "base" / f"parameters_{top}.yml").read_text()
            leaf = key.rsplit(".", 1)[-1]
            assert re.search(rf"^\s*{leaf}:", params, flags=re.MULTILINE), f"unknown param {key}"


def _kedro_words(line: str) -> list[str]:
    """The words of a `kedro ...` command line, from `kedro` to the end of that command."""
    words = shlex.split(line.replace("${{", "").replace("}}", ""))
    words = words[words.index("kedro") :]
    return words[: words.index("|")] if "|" in words else words


def test_ci_runs_make_test():
    document = _workflow("ci.yml")
    lines = _run_lines(document)
    assert "make test" in lines
    for line in lines:
        if line.startswith("make "):
            assert line.split()[1] in _make_targets(), line


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml", "monitor-and-retrain.yml"])
def test_every_make_target_and_kedro_run_exists(name):
    lines = _run_lines(_workflow(name))
    for line in lines:
        if line.startswith("make "):
            assert line.split()[1] in _make_targets(), line
        if "kedro run" in line:
            _check_kedro_run(line)
        if "docker build" in line:
            dockerfile = shlex.split(line)[shlex.split(line).index("-f") + 1]
            assert (ROOT / dockerfile).is_file(), dockerfile


def test_cd_trains_then_deploys_to_sagemaker_with_oidc():
    document = _workflow("cd.yml")
    assert document["permissions"]["id-token"] == "write"
    lines = _run_lines(document)
    runs = [line for line in lines if "kedro run" in line]
    assert "--pipelines" not in runs[0] and "--env cloud" in runs[0]
    assert "--pipelines deployment" in runs[1] and "deployment.target=sagemaker" in runs[1]
    uses = [step.get("uses", "") for job in document["jobs"].values() for step in job["steps"]]
    assert any(use.startswith("aws-actions/configure-aws-credentials") for use in uses)


def test_monitor_and_retrain_runs_kedro_retrain_daily_one_run_at_a_time():
    document = _workflow("monitor-and-retrain.yml")
    triggers = document.get("on", document.get(True))
    airflow_dag = yaml.safe_load((ROOT / "conf" / "base" / "airflow.yml").read_text())
    assert triggers["schedule"] == [{"cron": airflow_dag["monitoring"]["schedule"]}]
    assert triggers["schedule"][0]["cron"] == "0 5 * * *"
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert (inputs["force"]["type"], inputs["force"]["default"]) == ("boolean", False)
    assert document["concurrency"] == {"group": "monitor-and-retrain", "cancel-in-progress": False}

    runs = [line for line in _run_lines(document) if "kedro " in line]
    assert len(runs) == 1, runs
    words = _kedro_words(runs[0])
    assert words[1] == "retrain", runs[0]
    command = cli.commands["retrain"]
    assert CliRunner().invoke(cli, ["retrain", "--help"]).exit_code == 0
    known = {opt for param in command.params for opt in param.opts}
    used = [word for word in words[2:] if word.startswith("--")]
    assert set(used) <= known, f"not options of kedro retrain: {set(used) - known}"
    assert {"--env", "--target", "--params"} <= set(used)
    options = dict(zip(words[2::2], words[3::2], strict=False))
    assert options["--env"] == "cloud"
    _check_env_and_params(options)
    target = next(param for param in command.params if param.name == "target")
    assert set(inputs["target"]["options"]) <= set(target.type.choices)
    step = next(step for step in _steps(document) if "kedro retrain" in step.get("run", ""))
    assert step["env"]["FORCE"] == "${{ inputs.force && '--force' || '' }}" and "$FORCE" in runs[0]
    assert step["shell"] == "bash"  # -eo pipefail: `| tee` keeps the job's exit code


def test_monitor_and_retrain_reads_its_credentials_from_secrets_and_keeps_the_reports():
    document = _workflow("monitor-and-retrain.yml")
    job = document["jobs"]["retrain"]
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    aws = next(s for s in _steps(document) if s.get("uses", "").startswith("aws-actions/configure"))
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN }}"
    assert document["permissions"]["id-token"] == "write"
    upload = next(
        s for s in _steps(document) if s.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()"
    assert upload["with"]["path"].split() == ["retrain-summary.txt", "reports/"]


def test_kedro_retrain_passes_params_to_every_step(monkeypatch):
    """The workflow's SageMaker settings reach the job as runtime parameters."""
    created = {}

    class StandInJob:
        def __init__(self, project_path, env=None, runtime_params=None):
            created.update(env=env, runtime_params=runtime_params)

        def run(self, *, force, target):
            created.update(force=force, target=target)
            return {"status": "skipped", "champion_before": "1", "champion_after": "1", "steps": []}

    monkeypatch.setattr("geo_busyness.retraining.RetrainingJob", StandInJob)
    result = CliRunner().invoke(
        cli,
        [
            "retrain",
            "--env",
            "cloud",
            "--target",
            "sagemaker",
            "--force",
            "--params",
            "deployment.sagemaker.bucket=b,deployment.sagemaker.role_arn=r",
        ],
        obj=SimpleNamespace(project_path=ROOT),
    )
    assert result.exit_code == 0, result.output
    assert created == {
        "env": "cloud",
        "runtime_params": {"deployment": {"sagemaker": {"bucket": "b", "role_arn": "r"}}},
        "force": True,
        "target": "sagemaker",
    }

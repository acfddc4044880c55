"""The GitHub workflows parse, and every command they run exists in the project."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.project import configure_project

from geo_busyness.cli import cli
from geo_busyness.pipeline_registry import register_pipelines
from geo_busyness.testing import make_project_copy, received_notifications, subscribe_queue
from tests.alerting import moto_client
from tests.cloud.conftest import AWS_ENV

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


def test_the_bucket_tracking_uri_and_webhook_come_from_the_repository():
    """Repository variables and secrets, never a committed value (issue #24 item 3)."""
    job = _workflow("monitor-and-retrain.yml")["jobs"]["retrain"]
    assert job["env"]["GEO_BUSYNESS_BUCKET"] == "${{ vars.DATA_BUCKET }}"
    assert job["env"]["ALERTS_WEBHOOK_URL"] == "${{ secrets.ALERTS_WEBHOOK_URL }}"
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    cloud = yaml.safe_load((ROOT / "conf" / "cloud" / "globals.yml").read_text())
    assert cloud["bucket"] == "${oc.env:GEO_BUSYNESS_BUCKET,geo-busyness-data}"
    alerts = yaml.safe_load((ROOT / "conf" / "cloud" / "parameters_alerts.yml").read_text())
    assert alerts["alerts"]["enabled"] is True
    assert alerts["alerts"]["sns"]["topic_arn"] == "${oc.env:ALERTS_SNS_TOPIC_ARN,null}"


def test_kedro_retrain_passes_params_to_every_step(monkeypatch):
    """The workflow's SageMaker settings reach the job as runtime parameters."""
    created = {}

    class StandInJob:
        def __init__(self, project_path, env=None, runtime_params=None):
            created.update(env=env, runtime_params=runtime_params)

        def run(self, *, force, target):
            created.update(force=force, target=target)
            return {"status": "skipped", "champion_before": "1", "champion_after": "1", "steps": []}

    monkeypatch.setattr("geo_busyness.operations.job.RetrainingJob", StandInJob)
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


# ------------------------------------------------------------------ the workflow, run here
# No local runner for GitHub Actions can run here (`act` is not installed and needs Docker), so
# the test below runs monitor-and-retrain.yml's every `run:` in order, in a checkout-like copy
# of the project, with the environment the runner would give it (workflow, job and step `env`,
# `${{ }}` expressions evaluated against test vars, secrets and inputs), each `uses:` replaced
# by what it does here, and GitHub's shells and `if: always()` rule.
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
#: An alert's first line: ``[project] SEVERITY event: summary`` (the project may hold spaces).
HEADLINE = re.compile(r"^\[[^\]]*\] [A-Z]+ (\w+):")


def _value(token: str, context: dict) -> Any:
    """One operand of a GitHub expression: a quoted string, a boolean, or a context path."""
    if token.startswith("'"):
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    if token == "always()":
        return True
    value: Any = context
    for part in token.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return value


def evaluate(expression: str, context: dict) -> Any:
    """The `a && b || c` subset of GitHub's expression language the workflows use."""
    result: Any = None
    for alternative in expression.split("||"):
        value: Any = True
        for operand in alternative.split("&&"):
            value = value and _value(operand.strip(), context)
        result = value
        if value:
            return value
    return result


def substitute(text: str, context: dict) -> str:
    """``text`` with every ``${{ ... }}`` replaced by its value (false/None as GitHub writes)."""

    def render(match: re.Match) -> str:
        value = evaluate(match.group(1), context)
        return "false" if value is False else "" if value is None else str(value)

    return EXPRESSION.sub(render, text)


def run_workflow(
    document: dict, context: dict, checkout: Path, base_env: dict[str, str], aws: dict[str, str]
) -> list[tuple[str, str]]:
    """Run the workflow's one job here; (step name, outcome) in order."""
    (job,) = document["jobs"].values()
    env = dict(base_env)
    for block in (document.get("env", {}), job.get("env", {})):
        context["env"] = env
        env |= {key: substitute(str(value), context) for key, value in block.items()}
    outcomes, failed = [], False
    for number, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("uses")
        if failed and step.get("if") != "always()":
            outcomes.append((name, "skipped"))
            continue
        uses = step.get("uses", "")
        if uses.startswith("aws-actions/configure-aws-credentials"):
            # OIDC role -> keys; here moto's keys and endpoint, in the region the step names
            region = substitute(step["with"]["aws-region"], context | {"env": env})
            env |= aws | {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        if uses.startswith("actions/upload-artifact"):
            paths = substitute(step["with"]["path"], context).split()
            missing = [path for path in paths if not (checkout / path).exists()]
            outcomes.append((name, "failure" if missing else "success"))
            continue
        if "run" not in step:  # checkout: the copy; setup-python: this machine's python3
            outcomes.append((name, "stand-in"))
            continue
        context["env"] = env
        step_env = env | {k: substitute(str(v), context) for k, v in step.get("env", {}).items()}
        script = substitute(step["run"], context | {"env": step_env})
        if script.strip() == "make install":  # never re-synced here: the locked env is in place
            script = "make -n install >/dev/null"
        path = checkout / f".step_{number}.sh"
        path.write_text(script)
        shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        if step.get("shell") != "bash":
            shell = ["bash", "-e"]  # GitHub's default shell on Linux
        result = subprocess.run(
            [*shell, str(path)],
            cwd=checkout,
            env=step_env,
            capture_output=True,
            text=True,
            check=False,
        )
        (checkout / f".step_{number}.log").write_text(result.stdout + result.stderr)
        outcome = "success" if result.returncode == 0 else "failure"
        failed = failed or outcome == "failure"
        outcomes.append((name, outcome))
    return outcomes


def test_the_expression_subset_reads_like_github():
    context = {"inputs": {"force": False}, "vars": {"B": "bucket"}}
    assert substitute("${{ inputs.force && '--force' || '' }}", context) == ""
    context["inputs"]["force"] = True
    assert substitute("${{ inputs.force && '--force' || '' }}", context) == "--force"
    assert substitute("s3://${{ vars.B }}/${{ vars.P || 'p' }}", context) == "s3://bucket/p"


def _python3_with_uv(venv_bin: Path) -> str | None:
    """A PATH whose ``python3`` has uv (as setup-python + make install leave it), without the
    test's own virtual environment in front; None when there is none here."""
    entries = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != venv_bin]
    path = os.pathsep.join(entries)
    python3 = shutil.which("python3", path=path)
    if python3 is None:
        return None
    probe = subprocess.run([python3, "-m", "uv", "--version"], capture_output=True, check=False)
    return path if probe.returncode == 0 else None


@pytest.mark.slow
def test_the_workflow_runs_its_commands_with_the_repositorys_settings(
    tmp_path, webhook, moto_endpoint
):
    """monitor-and-retrain.yml from start to end against moto (S3, SNS) and a local webhook,
    its bucket, tracking URI and webhook from test vars and secrets: the job (nothing trained
    yet, no data in the bucket) fails at its training step; it saves its record in the bucket
    the variable names, sends one `retraining_failed` to the webhook and SNS, uses the project's
    own registry (the secret says the relative `sqlite:///mlflow.db`) and fetches the reports
    (before: no alerts configured in cloud, no webhook passed, the bucket fixed in globals)."""
    venv_bin = Path(sys.executable).parent
    path = _python3_with_uv(venv_bin)
    if path is None or shutil.which("aws", path=path) is None:
        pytest.skip("needs a python3 with uv and the aws CLI, as the GitHub runner has")
    checkout = make_project_copy(tmp_path / "checkout")
    for name in ("uv.lock", "Makefile"):
        shutil.copy(ROOT / name, checkout / name)
    sns, sqs = moto_client("sns", moto_endpoint), moto_client("sqs", moto_endpoint)
    topic_arn = sns.create_topic(Name="geo-busyness-alerts")["TopicArn"]
    queue_url = subscribe_queue(sns, sqs, topic_arn)
    bucket = "repository-data-bucket"
    moto_client("s3", moto_endpoint).create_bucket(Bucket=bucket)

    context = {
        "vars": {
            "DATA_BUCKET": bucket,
            "DATA_PREFIX": "ci",
            "MODEL_BUCKET": bucket,
            "SKLEARN_IMAGE_URI": "123.dkr.ecr.us-east-1.amazonaws.com/sklearn:1",
            "ALERTS_SNS_TOPIC_ARN": topic_arn,
        },
        "secrets": {
            "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
            "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker",
            "ALERTS_WEBHOOK_URL": webhook.url,
        },
        "inputs": {},  # the schedule: no inputs
        "github": {"run_id": "1"},
    }
    base_env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "UV_PROJECT_ENVIRONMENT": str(venv_bin.parent),  # the installed environment...
        "UV_NO_SYNC": "1",  # ...used as it is (make install is not rerun here)
    }
    aws = AWS_ENV | {"AWS_ENDPOINT_URL": moto_endpoint}
    outcomes = run_workflow(_workflow("monitor-and-retrain.yml"), context, checkout, base_env, aws)
    logs = {p.name: p.read_text()[-3000:] for p in sorted(checkout.glob(".step_*.log"))}
    assert outcomes == [
        ("actions/checkout@v4", "stand-in"),
        ("actions/setup-python@v5", "stand-in"),
        ("aws-actions/configure-aws-credentials@v4", "stand-in"),
        ("Install", "success"),
        ("Check the repository's settings", "success"),
        ("Alert credentials from the environment", "success"),
        ("Monitor, retrain when due, deploy", "failure"),
        ("Fetch the reports from the data bucket", "success"),
        ("Upload the reports", "success"),
    ], logs

    # One alert for the failed step, on both channels (not also the run's pipeline_failed).
    events = [re.match(HEADLINE, payload["text"]).group(1) for payload in webhook.payloads()]
    published = [json.loads(n["Message"])["event"] for n in received_notifications(sqs, queue_url)]
    assert events == published == ["retraining_failed"], logs
    assert "geo-busyness (cloud)" in webhook.payloads()[0]["text"]
    # The record in the bucket the repository variable names, fetched with the reports.
    (record_file,) = (checkout / "reports" / "retraining").glob("*/*/retraining_record.json")
    record = json.loads(record_file.read_text())
    assert (record["status"], record["failed_step"]) == ("failed", "training")
    summary = (checkout / "retrain-summary.txt").read_text()
    assert "Retraining: failed (champion none -> none)" in summary, summary
    # The project's own registry; the webhook URL never written to disk.
    assert (checkout / "mlflow.db").is_file()
    assert webhook.url not in (checkout / "conf" / "cloud" / "credentials.yml").read_text()

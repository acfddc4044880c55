"""The GitHub workflows parse, and every command they run exists in the project."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from kedro.framework.project import configure_project

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
    if "--env" in options:
        assert (ROOT / "conf" / options["--env"]).is_dir(), f"no conf/{options['--env']}"
    for pair in options.get("--params", "").split(","):
        if pair:
            key = pair.split("=", 1)[0]
            top = key.split(".", 1)[0]
            params = (ROOT / "conf" / "base" / f"parameters_{top}.yml").read_text()
            leaf = key.rsplit(".", 1)[-1]
            assert re.search(rf"^\s*{leaf}:", params, flags=re.MULTILINE), f"unknown param {key}"


def test_ci_runs_make_test():
    document = _workflow("ci.yml")
    lines = _run_lines(document)
    assert "make test" in lines
    for line in lines:
        if line.startswith("make "):
            assert line.split()[1] in _make_targets(), line


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
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

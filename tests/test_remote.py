"""Issue #23 item 5: every remote call has a deadline, whoever starts it.

Real failures only: a port nothing listens on, and a server that accepts and never answers
(``tests/remote_endpoints``), for the MLflow tracking server, the registry and S3 (s3fs for
the catalog, boto3 for MLflow's S3 artifacts). Each must fail in under 30 s; before the
deadlines a model download took 249 s against a dead tracking server, over 400 s against a
silent one, and a catalog read from a silent S3 endpoint was still waiting after 590 s.

The in-process checks run with a per-attempt timeout of ``SHORT_TIMEOUT_S`` (an operator's
value, which ``bound_remote_calls`` keeps) and the default attempt counts, and bound the time
by those counts: a silent server costs seconds instead of 12-20 s per check, and a wrong
retry count still fails. That the defaults themselves fit 30 s is checked on the settings.
The entry points' start-up probe waits ``SHORT_PROBE_BUDGET_S`` (``GEO_BUSYNESS_PROBE_BUDGET_S``)
except for ``python -m geo_busyness.serving``, which keeps the default budget end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.session
import mlflow
import pytest
import s3fs
from botocore.config import Config
from kedro.io import DataCatalog, DatasetError
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from geo_busyness import remote
from geo_busyness.hooks.storage import explain_storage_failure
from geo_busyness.remote import (
    ENV_PROBE_BUDGET_S,
    ENVIRONMENT_DEFAULTS,
    PROBE_BUDGET_S,
    UnreachableServiceError,
    bound_remote_calls,
    needs_mlflow_server,
    prepare_model_fetch,
    probe_budget_s,
    require_mlflow_servers,
    server_problem,
)
from tests.conftest import make_project_copy
from tests.remote_endpoints import (
    DEADLINE_S,
    dead_endpoint,
    silent_endpoint,
    watched_silent_endpoint,
)

BUCKET = "geo-busyness-test"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: The per-attempt timeout of the in-process checks against a silent server, in seconds.
SHORT_TIMEOUT_S = 2
#: Room for a loaded machine on top of a computed worst case, in seconds.
LOAD_SLACK_S = 5.0
#: The start-up probe's budget for the entry points checked at a short one, in seconds.
SHORT_PROBE_BUDGET_S = 2.0


def worst_case_s(attempts: int, timeout_s: float, backoff_s: float) -> float:
    """The longest a call may take: ``attempts`` x ``timeout_s`` and the backoffs between them,
    plus room for a loaded machine."""
    return attempts * timeout_s + backoff_s + LOAD_SLACK_S


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No deadline variables set beforehand; whatever a test sets is undone after it."""
    for name in ENVIRONMENT_DEFAULTS:
        monkeypatch.setenv(name, "")  # remembers the value to restore, even "unset"
        monkeypatch.delenv(name)
    return monkeypatch


# ------------------------------------------------------------------------- the settings
def test_the_deadlines_fit_the_30_s_promise():
    tracking = (1 + remote.TRACKING_RETRIES) * remote.TRACKING_TIMEOUT_S
    s3 = remote.AWS_ATTEMPTS * max(remote.S3_CONNECT_TIMEOUT_S, remote.S3_READ_TIMEOUT_S) + 1
    assert tracking <= 20 and s3 * remote.S3FS_TRIES <= 15
    # ... and are the values put in force (the checks below shorten only the timeouts).
    assert ENVIRONMENT_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"] == str(remote.TRACKING_TIMEOUT_S)
    assert ENVIRONMENT_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == str(remote.TRACKING_RETRIES)
    assert ENVIRONMENT_DEFAULTS["AWS_MAX_ATTEMPTS"] == str(remote.AWS_ATTEMPTS)


def test_bound_remote_calls_sets_defaults_and_keeps_an_operators_values(clean_environment):
    clean_environment.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "42")
    bound_remote_calls(storage=False)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "42"
    for name, value in ENVIRONMENT_DEFAULTS.items():
        if name != "MLFLOW_HTTP_REQUEST_TIMEOUT":
            assert os.environ[name] == value


def test_boto3_default_clients_get_the_s3_deadlines_unless_they_say_otherwise(clean_environment):

    clean_environment.setattr(boto3, "DEFAULT_SESSION", None)
    bound_remote_calls(storage=False)
    plain = boto3.client("s3", region_name="us-east-1")
    assert plain.meta.config.read_timeout == remote.S3_READ_TIMEOUT_S
    assert plain.meta.config.connect_timeout == remote.S3_CONNECT_TIMEOUT_S
    assert plain.meta.config.retries["total_max_attempts"] == remote.AWS_ATTEMPTS
    own = boto3.client("s3", region_name="us-east-1", config=Config(read_timeout=99))
    assert own.meta.config.read_timeout == 99
    assert own.meta.config.connect_timeout == remote.S3_CONNECT_TIMEOUT_S


def test_s3fs_gets_the_s3_deadlines_and_one_try(clean_environment):

    for name in ("connect_timeout", "read_timeout", "retries"):
        clean_environment.setattr(s3fs.S3FileSystem, name, getattr(s3fs.S3FileSystem, name))
    bound_remote_calls()
    assert s3fs.S3FileSystem.read_timeout == remote.S3_READ_TIMEOUT_S
    assert s3fs.S3FileSystem.connect_timeout == remote.S3_CONNECT_TIMEOUT_S
    assert s3fs.S3FileSystem.retries == remote.S3FS_TRIES


@pytest.mark.parametrize(
    ("location", "needed"),
    [
        ("models:/geo-busyness@champion", True),
        ("runs:/abc/model", True),
        ("/opt/ml/model", False),
        ("data/06_models/deployment/serving", False),
        (None, False),
    ],
)
def test_only_registry_and_run_uris_need_an_mlflow_server(location, needed):
    assert needs_mlflow_server(location) is needed


def test_sqlite_and_file_stores_are_not_probed():
    assert server_problem("sqlite:///mlflow.db", budget_s=0.1) is None
    assert server_problem("file:///tmp/mlruns", budget_s=0.1) is None


def test_a_dead_port_is_reported_with_its_reason():
    problem = server_problem(dead_endpoint(), budget_s=0.5)
    assert problem is not None and "refused" in problem


def test_the_probe_budget_is_the_default_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv(ENV_PROBE_BUDGET_S, raising=False)
    assert probe_budget_s() == PROBE_BUDGET_S == 10.0
    monkeypatch.setenv(ENV_PROBE_BUDGET_S, " 2.5 ")
    assert probe_budget_s() == 2.5


@pytest.mark.parametrize("text", ["abc", "0", "-1", "nan", "inf", "10s"])
def test_a_bad_probe_budget_is_refused_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(ENV_PROBE_BUDGET_S, text)
    expected = f"GEO_BUSYNESS_PROBE_BUDGET_S='{text}': expected a positive number of seconds"
    with pytest.raises(ValueError, match=expected):
        server_problem(dead_endpoint())


def test_the_probe_budget_from_the_environment_bounds_a_probe(monkeypatch):
    """At the default budget a dead port is retried for ~9 s; the variable's 0.5 s ends it at
    once (the first refusal leaves less than the 1 s between tries)."""
    monkeypatch.setenv(ENV_PROBE_BUDGET_S, "0.5")
    started = time.monotonic()
    problem = server_problem(dead_endpoint())
    assert time.monotonic() - started < 2
    assert problem is not None and "refused" in problem


def test_a_local_model_starts_without_asking_any_server(clean_environment, tmp_path):
    clean_environment.setenv("MLFLOW_TRACKING_URI", dead_endpoint())
    started = time.monotonic()
    prepare_model_fetch(str(tmp_path), None)
    assert time.monotonic() - started < 1


def test_the_registry_is_named_when_it_is_the_one_down(clean_environment):
    clean_environment.setitem(sys.modules, "mlflow", None)  # resolve from the environment
    clean_environment.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    clean_environment.setenv("MLFLOW_REGISTRY_URI", dead := dead_endpoint())
    with pytest.raises(UnreachableServiceError) as failed:
        require_mlflow_servers(budget_s=0.5)
    assert str(failed.value).startswith(f"The MLflow model registry {dead} does not answer")


# --------------------------------------------------------------- MLflow, past the probe
@pytest.mark.slow
@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_each_mlflow_request_has_a_deadline(failure, clean_environment):
    """The probe only runs at start-up: a server that stops answering later is bounded by
    the per-request deadline (MlflowClient straight at it, no probe): the default retries and
    backoff, a 2 s timeout per attempt."""

    clean_environment.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(SHORT_TIMEOUT_S))
    bound_remote_calls(storage=False)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == str(remote.TRACKING_RETRIES)
    # urllib3 retries the first time at once, then waits backoff_factor (1 s) + jitter (0.5 s).
    bound = worst_case_s(
        1 + remote.TRACKING_RETRIES, SHORT_TIMEOUT_S, remote.TRACKING_RETRIES * 1.5
    )
    with silent_endpoint() as silent:
        uri = dead_endpoint() if failure == "dead" else silent
        started = time.monotonic()
        with pytest.raises(MlflowException) as failed:
            MlflowClient(tracking_uri=uri).get_registered_model("geo-busyness")
        elapsed = time.monotonic() - started
    assert elapsed < bound, f"took {elapsed:.1f} s"
    assert f"API request to {uri}/api/2.0/mlflow/" in str(failed.value)


# --------------------------------------------------------------- the model server's start
_KEDRO = str(Path(sys.executable).with_name("kedro"))
_REGISTRY_MODEL = "models:/geo-busyness@champion"
#: The one entry point started at the default probe budget (the others at the short one).
AT_DEFAULT_BUDGET = "python -m geo_busyness.serving"
#: The commands that must fail fast when the tracking server is down.
ENTRY_COMMANDS = {
    "kedro serve": [_KEDRO, "serve", "--model", _REGISTRY_MODEL, "--port", "1"],
    "python -m geo_busyness.serving": [
        *(sys.executable, "-m", "geo_busyness.serving"),
        *("--model", _REGISTRY_MODEL, "--port", "1"),
    ],
    "kedro retrain": [_KEDRO, "retrain", "--env", "cloud"],
}


@dataclass(frozen=True)
class FailedStart:
    """How a command ended against one tracking server."""

    uri: str
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def last_line(self) -> str:
        return (self.stdout + self.stderr).strip().splitlines()[-1]


def start_against_down_servers(
    command: list[str], folder: Path, probe_budget: dict[str, str]
) -> dict[str, FailedStart]:
    """``command`` in two project copies, against a silent tracking server, then a dead one,
    with ``probe_budget`` (the budget's variable, or nothing for the default) in the environment.

    Each process starts up (CPU), then waits out the start-up probe (idle). The second starts
    once the silent server has been called, so its start-up overlaps the first one's wait
    rather than competing with the first one's start-up. Each time is the process's own,
    from its start to its exit.
    """
    inherited = (*ENVIRONMENT_DEFAULTS, ENV_PROBE_BUDGET_S)
    env = {k: v for k, v in os.environ.items() if k not in inherited} | probe_budget
    with watched_silent_endpoint() as (silent, called):
        uris = {"silent": silent, "dead": dead_endpoint()}
        running = {}
        for failure, uri in uris.items():
            project = make_project_copy(folder / failure)
            out = (folder / f"{failure}.stdout").open("w+")
            err = (folder / f"{failure}.stderr").open("w+")
            process = subprocess.Popen(  # noqa: S603 - our own entry points
                command,
                cwd=project,
                env={**env, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "1"},
                stdout=out,
                stderr=err,
                text=True,
            )
            running[failure] = (time.monotonic(), process, out, err)
            if failure == "silent":  # until its probe has begun (or it ended without one)
                give_up = time.monotonic() + 60
                while not called.wait(0.05) and process.poll() is None:
                    if time.monotonic() > give_up:
                        break
        ended = _wait_for_all(running, timeout_s=120)
    results = {}
    for failure, (_, process, out, err) in running.items():
        with out, err:
            out.seek(0)
            err.seek(0)
            results[failure] = FailedStart(
                uris[failure], process.returncode, out.read(), err.read(), ended[failure]
            )
    return results


def _wait_for_all(running: dict, timeout_s: float) -> dict[str, float]:
    """Seconds each process took (polled every 50 ms); kills them all past ``timeout_s``."""
    ended: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(ended) < len(running):
        for failure, (started, process, _, _) in running.items():
            if failure not in ended and process.poll() is not None:
                ended[failure] = time.monotonic() - started
        if time.monotonic() > deadline:
            for _, process, _, _ in running.values():
                process.kill()
                process.wait()
            raise AssertionError(f"still running after {timeout_s} s: {sorted(running)}")
        time.sleep(0.05)
    return ended


@pytest.fixture(scope="module")
def failed_starts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], dict[str, FailedStart]]:
    """Each entry of ``ENTRY_COMMANDS`` against a dead and a silent server, run once (on first
    use) for both of its tests; all but ``AT_DEFAULT_BUDGET`` with the short probe budget."""
    runs: dict[str, dict[str, FailedStart]] = {}

    def of(entry: str) -> dict[str, FailedStart]:
        if entry not in runs:
            folder = tmp_path_factory.mktemp("down-tracking-server")
            budget = (
                {}
                if entry == AT_DEFAULT_BUDGET
                else {ENV_PROBE_BUDGET_S: str(SHORT_PROBE_BUDGET_S)}
            )
            runs[entry] = start_against_down_servers(ENTRY_COMMANDS[entry], folder, budget)
        return runs[entry]

    return of


def assert_failed_fast_naming_the_server(result: FailedStart) -> None:
    """A non-zero exit within the deadline, the last line naming the tracking server."""
    assert result.returncode != 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.elapsed_s < DEADLINE_S, f"took {result.elapsed_s:.0f} s"
    expected = f"The MLflow tracking server {result.uri} does not answer"
    assert expected in result.last_line, result.last_line


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["kedro serve", "python -m geo_busyness.serving"])
@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_serving_a_registry_model_fails_fast_naming_the_tracking_server(
    entry, failure, failed_starts
):
    """``--model models:/...`` with the tracking server down: one line naming it, < 30 s.

    ``python -m geo_busyness.serving`` needs ``prepare_model_fetch`` called in
    ``serving/__main__.serve`` (see the issue #23 report).
    """
    assert_failed_fast_naming_the_server(failed_starts(entry)[failure])


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_kedro_retrain_fails_fast_naming_the_tracking_server(failure, failed_starts):
    """The retraining job's sessions go through the same hook: one line, < 30 s."""
    assert_failed_fast_naming_the_server(failed_starts("kedro retrain")[failure])


# --------------------------------------------------------------------------------- S3
def _csv_on(endpoint: str):
    """A catalog CSV dataset on the test bucket behind ``endpoint``, as conf/cloud makes one."""

    return DataCatalog.from_config(
        {
            "raw_events": {
                "type": "geo_busyness.datasets.CSVDataset",
                "filepath": f"s3://{BUCKET}/01_raw/courier_events.csv",
                "credentials": "s3",
            }
        },
        credentials={
            "s3": {
                "key": "testing",
                "secret": "testing",
                "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        },
    )


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_a_catalog_read_from_s3_fails_fast_naming_the_dataset_and_the_store(
    failure, clean_environment
):

    for name in ("connect_timeout", "read_timeout", "retries"):
        clean_environment.setattr(s3fs.S3FileSystem, name, getattr(s3fs.S3FileSystem, name))
    for name, value in AWS_TEST_ENV.items():
        clean_environment.setenv(name, value)
    bound_remote_calls()
    assert s3fs.S3FileSystem.retries == remote.S3FS_TRIES
    clean_environment.setattr(s3fs.S3FileSystem, "connect_timeout", SHORT_TIMEOUT_S)
    clean_environment.setattr(s3fs.S3FileSystem, "read_timeout", SHORT_TIMEOUT_S)
    s3fs.S3FileSystem.clear_instance_cache()
    # botocore's standard mode waits at most 1 s before its retry.
    attempts = remote.S3FS_TRIES * remote.AWS_ATTEMPTS
    bound = worst_case_s(attempts, SHORT_TIMEOUT_S, attempts - 1)
    with silent_endpoint() as silent:
        endpoint = dead_endpoint() if failure == "dead" else silent
        catalog = _csv_on(endpoint)
        started = time.monotonic()
        with pytest.raises(DatasetError) as failed:
            catalog.load("raw_events")
        elapsed = time.monotonic() - started
    assert elapsed < bound, f"took {elapsed:.1f} s"
    explanation = explain_storage_failure(failed.value, catalog)
    assert explanation == (
        f"Could not load dataset 'raw_events' at s3://{BUCKET}/01_raw/courier_events.csv: the"
        " storage endpoint could not be reached (check AWS_ENDPOINT_URL, the network, or the"
        " region)."
    )


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["dead", "silent"])
def test_an_mlflow_artifact_download_from_s3_fails_fast_naming_the_endpoint(
    failure, clean_environment
):
    """MLflow's S3 artifact store (boto3's default session), as a cloud model download uses it:
    the default attempts, the session's own 2 s timeouts (which ``bound_remote_calls`` keeps)."""

    for name, value in AWS_TEST_ENV.items():
        clean_environment.setenv(name, value)
    core = botocore.session.get_session()
    core.set_default_client_config(
        Config(connect_timeout=SHORT_TIMEOUT_S, read_timeout=SHORT_TIMEOUT_S)
    )
    clean_environment.setattr(boto3, "DEFAULT_SESSION", boto3.Session(botocore_session=core))
    bound_remote_calls(storage=False)
    config = boto3.client("s3").meta.config
    assert config.retries["total_max_attempts"] == remote.AWS_ATTEMPTS
    assert config.read_timeout == SHORT_TIMEOUT_S
    bound = worst_case_s(remote.AWS_ATTEMPTS, SHORT_TIMEOUT_S, remote.AWS_ATTEMPTS - 1)
    with silent_endpoint() as silent:
        endpoint = dead_endpoint() if failure == "dead" else silent
        clean_environment.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
        started = time.monotonic()
        with pytest.raises(Exception) as failed:  # noqa: PT011 - botocore's own classes
            mlflow.artifacts.download_artifacts(f"s3://{BUCKET}/mlflow-artifacts/1/model")
        elapsed = time.monotonic() - started
    assert elapsed < bound, f"took {elapsed:.1f} s"
    assert endpoint in str(failed.value)

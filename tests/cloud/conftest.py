"""A real S3 API (moto's server on loopback) and a real MLflow server for the cloud environment.

In-process ``mock_aws`` does not intercept s3fs (aiobotocore), so catalog I/O needs the server.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
import s3fs

from geo_busyness.testing import FAKE_AWS, start_moto

BUCKET = "geo-busyness-test"
AWS_ENV = FAKE_AWS


def wait_for(url: str, process: subprocess.Popen, seconds: float) -> None:
    """Poll ``url`` until it answers 200, failing fast if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def use_endpoint(monkeypatch: pytest.MonkeyPatch, endpoint: str, **overrides: str) -> None:
    """Point every AWS client of this process (s3fs, boto3, MLflow) at ``endpoint``."""
    for name, value in {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint, **overrides}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    s3fs.S3FileSystem.clear_instance_cache()  # instances remember the endpoint they were made with


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server with the test bucket, for the whole session."""
    process, endpoint = start_moto()
    try:
        client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        stop(process)


@pytest.fixture
def cloud_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's AWS clients talk to the session's moto server."""
    use_endpoint(monkeypatch, s3_endpoint)
    return s3_endpoint


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def s3_client(endpoint: str):
    """A boto3 S3 client on the moto server."""
    return boto3.client("s3", endpoint_url=endpoint, **_boto_credentials())


def object_keys(endpoint: str, prefix: str) -> set[str]:
    """Every key under ``prefix`` in the test bucket."""
    pages = (
        s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}

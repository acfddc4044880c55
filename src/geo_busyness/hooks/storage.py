"""``StorageErrorHook``: a storage fault as one sentence naming the dataset, its URL and the fix.

A storage fault (missing file, bucket or object, refused credentials, unreachable endpoint)
surfaces from Kedro as a chain of wrapped exceptions. ``StorageErrorHook`` turns it into one
sentence, raised as ``StorageError`` (an ``errors.ExplainedError``, so the CLI prints the
sentence rather than a traceback; ``--verbose`` still shows everything).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError
from kedro.io.core import VersionNotFoundError

from geo_busyness.datasets import exception_chain
from geo_busyness.errors import ExplainedError

logger = logging.getLogger(__name__)

# Exception class names (from botocore, aiohttp, urllib3) meaning "could not reach the store".
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerTimeoutError",
    "NewConnectionError",
    "ReadTimeoutError",  # an endpoint that accepts and never answers (remote.S3_READ_TIMEOUT_S)
}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden"}


class StorageError(ExplainedError):
    """A dataset could not be read or written; the message names it, its URL and the fix."""


def dataset_url(name: str, dataset: Any) -> str | None:
    """The URL a file-based dataset reads and writes, or None for other datasets."""
    described = getattr(dataset, "_describe", lambda: {})()
    path = described.get("filepath")
    if path is None:
        return None
    protocol = described.get("protocol") or getattr(dataset, "_protocol", "file")
    return f"{protocol}://{path}" if protocol not in ("file", "local") else str(path)


def _find_dataset(message: str, catalog: Any) -> tuple[str, str] | None:
    """The catalog name and URL of the dataset whose path a Kedro error message quotes."""
    for name in catalog.keys():
        try:
            url = dataset_url(name, catalog.get(name))
        except Exception:  # noqa: BLE001 - a dataset that cannot describe itself is not the one
            continue
        if url and url.split("://")[-1] in message:
            return name, url
    return None


#: Datasets no pipeline writes -> what writes them (the missing-file message names it).
WRITTEN_OUTSIDE_PIPELINES = {
    "shadow_log": "serve with `kedro serve --shadow` first (it logs each request's champion"
    " and challenger answers)",
}


def explain_storage_failure(error: BaseException, catalog: Any) -> str | None:
    """One sentence on a dataset load/save fault, or None when ``error`` is not one."""
    chain = exception_chain(error)
    dataset_error = next((e for e in chain if isinstance(e, DatasetError)), None)
    if dataset_error is None:
        return None
    messages = " ".join(str(e) for e in chain if isinstance(e, DatasetError))
    saving = (
        "while loading" not in messages
        and re.search(r"while saving|cannot save|save path", messages, re.IGNORECASE) is not None
    )
    action = "save to" if saving else "load"
    found = _find_dataset(str(dataset_error), catalog)
    if found is None:
        return None
    name, url = found
    names = {type(e).__name__ for e in chain} | {
        # (a timeout's ``response`` is None)
        str((getattr(e, "response", None) or {}).get("Error", {}).get("Code", ""))
        for e in chain
    }
    bucket = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else None
    not_found = any(isinstance(e, FileNotFoundError | VersionNotFoundError) for e in chain)
    if names & _UNREACHABLE:
        why = (
            "the storage endpoint could not be reached (check AWS_ENDPOINT_URL, the network, "
            "or the region)"
        )
    elif names & _BAD_CREDENTIALS or any(isinstance(e, PermissionError) for e in chain):
        why = (
            "the credentials were refused (check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or conf/<env>/credentials.yml)"
        )
    elif "NoCredentialsError" in names:
        why = "no AWS credentials were found (set AWS_* or conf/<env>/credentials.yml)"
    elif "NoSuchBucket" in names or (
        not_found and bucket and _bucket_missing(catalog.get(name), bucket)
    ):
        why = f"the bucket '{bucket}' does not exist (check data_root in conf/<env>/globals.yml)"
    elif not_found and not saving:
        why = (
            f"nothing is stored there yet: {WRITTEN_OUTSIDE_PIPELINES[name]}"
            if name in WRITTEN_OUTSIDE_PIPELINES
            else "nothing is stored there: run the pipeline that writes it first "
            "(README, Pipelines), or point the catalog at your file"
        )
    else:
        return None
    return f"Could not {action} dataset '{name}' at {url}: {why}."


def _bucket_missing(dataset: Any, bucket: str) -> bool:
    """True when the dataset's filesystem says the bucket is absent (False if it cannot tell)."""
    try:
        return not dataset._fs.exists(bucket)
    except Exception:  # noqa: BLE001 - unknown: let the generic message stand
        return False


class StorageErrorHook:
    """Re-raise storage faults as one clear sentence (after other hooks saw the original)."""

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception, catalog: Any) -> None:
        """Raise ``StorageError`` in place of a wrapped storage fault."""
        explanation = explain_storage_failure(error, catalog)
        if explanation:
            logger.error(explanation)
            raise StorageError(explanation) from error

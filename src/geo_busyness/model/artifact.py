"""The forecaster on disk in a format whose loading cannot run code.

An artifact is a folder::

    state.json        the forecaster's attributes as tagged JSON (scalars, params, lists,
                      timestamps, the nested CountHistory and BusynessFeatures)
    arrays.npz        every numpy array, read with ``allow_pickle=False`` (no object arrays)
    <name>.skops      each scikit-learn estimator (the regressor, the KMeans), loaded by skops
                      with an explicit list of trusted types; any other type is refused
    manifest.json     the sha256 of each file above (and of the code an MLflow model
                      directory bundles beside it, ``bundled``)
    artifact_sha256   the sha256 of manifest.json: the artifact's digest

``load_forecaster`` checks the digest (against the record beside it and, when the caller has
one, the registry's), then each file's sha256, before it parses a byte of model state: a
changed, missing, extra or digest-less file is refused with ``ArtifactIntegrityError`` naming
it. Derived caches (``_derived``, ``_neighbourhood``) are not stored (rebuilt lazily); a random
forest's ``search_`` (the GridSearchCV, only read while fitting and in the selection report)
is dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from geo_busyness.model.features import BusynessFeatures
from geo_busyness.model.forecaster import BusynessForecaster
from geo_busyness.model.history import CountHistory
from geo_busyness.model.loading import ArtifactIntegrityError

FORMAT = "geo-busyness-forecaster"
FORMAT_VERSION = 1
STATE, ARRAYS, MANIFEST, DIGEST_FILE = (
    "state.json",
    "arrays.npz",
    "manifest.json",
    "artifact_sha256",
)
#: Attributes never stored: caches rebuilt on first use, and fit-only state.
DROPPED = frozenset({"_derived", "_neighbourhood", "search_"})
#: The project's classes an artifact may hold (state.json names them by these keys).
CLASSES: dict[str, type] = {
    "BusynessForecaster": BusynessForecaster,
    "BusynessFeatures": BusynessFeatures,
}
#: The scikit-learn estimators an artifact may hold, by skops type name.
ESTIMATORS = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.cluster._kmeans.KMeans",
    }
)
#: Types skops does not trust by default that those estimators hold (their fitted trees).
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)


# ---------------------------------------------------------------------------- digests
def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_digest(directory: str | Path) -> str | None:
    """The digest an artifact folder records for itself (None when it records none)."""
    record = Path(directory) / DIGEST_FILE
    return record.read_text().strip() if record.is_file() else None


def verify_artifact(directory: str | Path, expected: str | None = None) -> dict[str, str]:
    """The checked manifest of an artifact folder (file -> sha256); raises
    ``ArtifactIntegrityError`` naming the file unless the manifest hashes to the recorded
    digest (and to ``expected``, the registry's, when given) and every file to its entry."""
    root = Path(directory)
    recorded = recorded_digest(root)
    if not recorded:
        raise ArtifactIntegrityError(
            f"{root / DIGEST_FILE} is missing: the artifact records no digest, refused."
        )
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactIntegrityError(f"{manifest_path} is missing: refused.")
    actual = file_sha256(manifest_path)
    for source, digest in (("the artifact's record", recorded), ("the registry", expected)):
        if digest is not None and actual != digest:
            raise ArtifactIntegrityError(
                f"{manifest_path} hashes to {actual[:16]}..., {source} says {digest[:16]}...:"
                " the artifact was changed after it was saved; refused."
            )
    manifest = json.loads(manifest_path.read_bytes())
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("format") != FORMAT:
        raise ArtifactIntegrityError(f"{manifest_path} is not a {FORMAT} manifest: refused.")
    present = {p.name for p in root.iterdir() if p.name not in (MANIFEST, DIGEST_FILE)}
    extra, missing = present - set(files), set(files) - present
    if extra or missing:
        raise ArtifactIntegrityError(
            f"{root}: files {sorted(extra)} are not in the manifest, {sorted(missing)} are"
            " missing; refused."
        )
    for name, digest in files.items():
        if file_sha256(root / name) != digest:
            raise ArtifactIntegrityError(
                f"{root / name} does not match its sha256 in {manifest_path}: refused."
            )
    return files


def verify_bundled(directory: str | Path) -> None:
    """Check the files the manifest lists beside the artifact (``bundled``: the code a model
    directory carries, relative to the artifact folder's parent) against their sha256; call
    after ``verify_artifact``. Files added beside them later (a package's serving code) are
    not the model's and not checked."""
    root = Path(directory)
    manifest = json.loads((root / MANIFEST).read_bytes())
    parent = root.parent.resolve()
    for relative, digest in (manifest.get("bundled") or {}).items():
        path = (parent / relative).resolve()
        if not path.is_relative_to(parent) or not path.is_file():
            raise ArtifactIntegrityError(f"{parent / relative} is missing: refused.")
        if file_sha256(path) != digest:
            raise ArtifactIntegrityError(
                f"{parent / relative} does not match its sha256 in {root / MANIFEST}: the"
                " model's bundled code was changed; refused."
            )


# ---------------------------------------------------------------------------- save
@dataclasses.dataclass
class _Writer:
    """What encoding collects besides the JSON tree: arrays and skops blobs."""

    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def array(self, value: np.ndarray, where: str) -> dict[str, str]:
        if value.dtype.hasobject:
            raise TypeError(f"{where}: object arrays cannot be stored safely.")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return {"__array__": key}

    def estimator(self, value: BaseEstimator) -> dict[str, str]:
        import skops.io as sio  # noqa: PLC0415 - only when saving or loading a learned model

        name = f"e{len(self.blobs)}.skops"
        self.blobs[name] = sio.dumps(value)
        return {"__skops__": name}


def _encode(value: Any, writer: _Writer, where: str) -> Any:
    """``value`` as tagged JSON (arrays and estimators go to ``writer``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    for kind, encode in _ENCODERS:
        if isinstance(value, kind):
            return encode(value, writer, where)
    name = type(value).__name__
    if CLASSES.get(name) is type(value):
        state = {k: v for k, v in vars(value).items() if k not in DROPPED}
        return {"__object__": name, "state": _encode(state, writer, where)}
    if isinstance(value, BaseEstimator):
        return writer.estimator(value)
    raise TypeError(f"{where}: a {name} cannot be stored in the artifact.")


def _encode_sequence(value: list | tuple, writer: _Writer, where: str) -> Any:
    items = [_encode(item, writer, f"{where}[{i}]") for i, item in enumerate(value)]
    return {"__tuple__": items} if isinstance(value, tuple) else items


def _encode_dict(value: dict, writer: _Writer, where: str) -> dict[str, Any]:
    if not all(isinstance(key, str) for key in value):
        raise TypeError(f"{where}: only dicts with text keys can be stored.")
    return {"__dict__": {k: _encode(v, writer, f"{where}.{k}") for k, v in value.items()}}


def _encode_timestamp(value: pd.Timestamp, writer: _Writer, where: str) -> dict[str, Any]:
    return {
        "__timestamp__": value.value,
        "tz": str(value.tz) if value.tz else None,
        "unit": value.unit,
    }


def _encode_history(value: CountHistory, writer: _Writer, where: str) -> dict[str, Any]:
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return {"__count_history__": _encode(fields, writer, where)}


def _encode_series(series: pd.Series, writer: _Writer, where: str) -> dict[str, Any]:
    """A Series (the features' known counts, indexed by cell and hour) as level arrays."""
    index = series.index
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    return {
        "__series__": {
            "name": series.name,
            "names": list(index.names),
            "levels": [_encode_index(level, writer, f"{where}.index") for level in levels],
            "values": writer.array(series.to_numpy(), where),
        }
    }


def _encode_index(level: pd.Index, writer: _Writer, where: str) -> dict[str, Any]:
    if isinstance(level, pd.DatetimeIndex):
        return {
            "datetime": writer.array(level.asi8, where),
            "unit": level.unit,
            "tz": str(level.tz) if level.tz else None,
        }
    return {"values": writer.array(level.to_numpy(), where)}


_ENCODERS: tuple[tuple[type, Callable[[Any, _Writer, str], Any]], ...] = (
    (np.generic, lambda v, w, where: {"__scalar__": v.dtype.str, "value": v.item()}),
    (np.ndarray, lambda v, w, where: w.array(v, where)),
    (pd.Timestamp, _encode_timestamp),
    (list | tuple, _encode_sequence),
    (dict, _encode_dict),
    (pd.Series, _encode_series),
    (CountHistory, _encode_history),
)


def save_forecaster(
    model: BusynessForecaster, directory: str | Path, bundled: dict[str, str] | None = None
) -> str:
    """Write ``model`` to the (new or empty) folder ``directory``; its digest. ``bundled``
    (path relative to the folder's parent -> sha256: the code saved beside it) is recorded in
    the manifest, so the digest covers it too (``verify_bundled``)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: an artifact is written to a new folder.")
    if type(model) is not BusynessForecaster:
        raise TypeError(f"Expected a BusynessForecaster, got {type(model).__name__}.")
    writer = _Writer()
    state = _encode(model, writer, "forecaster")
    body = {"format": FORMAT, "version": FORMAT_VERSION, "model": state}
    (root / STATE).write_text(json.dumps(body, allow_nan=True, sort_keys=True))
    with (root / ARRAYS).open("wb") as stream:
        np.savez(stream, **writer.arrays)
    for name, blob in writer.blobs.items():
        (root / name).write_bytes(blob)
    files = {p.name: file_sha256(p) for p in sorted(root.iterdir())}
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
    if bundled:
        manifest["bundled"] = dict(sorted(bundled.items()))
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    digest = file_sha256(root / MANIFEST)
    (root / DIGEST_FILE).write_text(digest + "\n")
    return digest


# ---------------------------------------------------------------------------- load
@dataclasses.dataclass
class _Reader:
    """Arrays and estimators of a verified artifact folder."""

    root: Path
    arrays: Any

    def array(self, node: dict[str, str]) -> np.ndarray:
        key = node["__array__"]
        if key not in self.arrays.files:
            raise ArtifactIntegrityError(f"{self.root / ARRAYS} has no array {key!r}.")
        try:
            return self.arrays[key]
        except ValueError as error:  # an object array: reading it would unpickle
            raise ArtifactIntegrityError(
                f"{self.root / ARRAYS}: array {key!r} cannot be read safely ({error}); refused."
            ) from None

    def estimator(self, name: str) -> BaseEstimator:
        import skops.io as sio  # noqa: PLC0415

        path = self.root / name
        if Path(name).name != name or not path.is_file():
            raise ArtifactIntegrityError(f"{path}: no such estimator file in the artifact.")
        data = path.read_bytes()
        untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
        if untrusted:
            raise ArtifactIntegrityError(
                f"{path} holds types outside the trusted list: {sorted(untrusted)}; refused."
            )
        estimator = sio.loads(data, trusted=list(TRUSTED_TYPES))
        kind = f"{type(estimator).__module__}.{type(estimator).__qualname__}"
        if kind not in ESTIMATORS:
            raise ArtifactIntegrityError(f"{path} holds a {kind}, not a known estimator.")
        return estimator


_TAGS: dict[str, Callable[[Any, _Reader], Any]] = {}


def _decode(node: Any, reader: _Reader) -> Any:
    """The value a tagged JSON node encodes."""
    if isinstance(node, list):
        return [_decode(item, reader) for item in node]
    if not isinstance(node, dict):
        return node
    for tag, build in _TAGS.items():
        if tag in node:
            return build(node, reader)
    raise ArtifactIntegrityError(f"Unknown node in {reader.root / STATE}: keys {sorted(node)}.")


def _tag(name: str) -> Callable[[Callable[[Any, _Reader], Any]], Callable[[Any, _Reader], Any]]:
    def register(build: Callable[[Any, _Reader], Any]) -> Callable[[Any, _Reader], Any]:
        _TAGS[name] = build
        return build

    return register


@_tag("__array__")
def _array(node: dict[str, str], reader: _Reader) -> np.ndarray:
    return reader.array(node)


@_tag("__scalar__")
def _scalar(node: dict[str, Any], reader: _Reader) -> np.generic:
    return np.dtype(node["__scalar__"]).type(node["value"])


@_tag("__timestamp__")
def _timestamp(node: dict[str, Any], reader: _Reader) -> pd.Timestamp:
    return pd.Timestamp(int(node["__timestamp__"]), tz=node["tz"]).as_unit(node["unit"])


@_tag("__tuple__")
def _tuple(node: dict[str, Any], reader: _Reader) -> tuple:
    return tuple(_decode(item, reader) for item in node["__tuple__"])


@_tag("__dict__")
def _dict(node: dict[str, Any], reader: _Reader) -> dict[str, Any]:
    return {key: _decode(value, reader) for key, value in node["__dict__"].items()}


@_tag("__skops__")
def _skops(node: dict[str, str], reader: _Reader) -> BaseEstimator:
    return reader.estimator(node["__skops__"])


@_tag("__count_history__")
def _count_history(node: dict[str, Any], reader: _Reader) -> CountHistory:
    fields = _decode(node["__count_history__"], reader)
    fields["start_ns"] = int(fields["start_ns"])
    return CountHistory(**fields)


@_tag("__series__")
def _series(node: dict[str, Any], reader: _Reader) -> pd.Series:
    spec = node["__series__"]
    levels = []
    for level in spec["levels"]:
        if "datetime" in level:
            values = reader.array(level["datetime"]).astype(f"datetime64[{level['unit']}]")
            index = pd.DatetimeIndex(values)
            levels.append(
                index.tz_localize("UTC").tz_convert(level["tz"]) if level["tz"] else index
            )
        else:
            levels.append(pd.Index(reader.array(level["values"])))
    index = (
        pd.MultiIndex.from_arrays(levels, names=spec["names"])
        if len(levels) > 1
        else levels[0].rename(spec["names"][0])
    )
    return pd.Series(reader.array(spec["values"]), index=index, name=spec["name"])


@_tag("__object__")
def _object(node: dict[str, Any], reader: _Reader) -> Any:
    cls = CLASSES.get(node["__object__"])
    if cls is None:
        raise ArtifactIntegrityError(f"{reader.root / STATE} names an unknown class.")
    state = _decode(node["state"], reader)
    instance = cls.__new__(cls)
    if cls is BusynessForecaster:
        # __setstate__ fills in attributes older states lack; search_ is never stored.
        instance.__setstate__({"search_": None, **state})
    else:
        instance.__dict__.update(state)
    return instance


def load_forecaster(directory: str | Path, expected: str | None = None) -> BusynessForecaster:
    """The forecaster of an artifact folder, verified first (``verify_artifact``)."""
    root = Path(directory)
    verify_artifact(root, expected)
    body = json.loads((root / STATE).read_bytes())
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ArtifactIntegrityError(f"{root / STATE} is not a {FORMAT} state.")
    with np.load(root / ARRAYS, allow_pickle=False) as arrays:
        model = _decode(body["model"], _Reader(root, arrays))
    if type(model) is not BusynessForecaster:
        raise ArtifactIntegrityError(f"{root / STATE} does not hold a BusynessForecaster.")
    return model

"""What an attacker who can write a model store does: a pickle that runs code when loaded,
planted in an artifact whose manifest and digest record are resealed (tests, the fuzz
benchmark)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from geo_busyness.model.artifact import ARRAYS, DIGEST_FILE, MANIFEST, file_sha256


class WritesMarker:
    """A pickle payload that creates ``marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def plant_pickle(folder: Path, marker: Path) -> None:
    """Replace the artifact's arrays by a pickle that writes ``marker`` when loaded, and reseal
    the manifest and the digest record, as an attacker who can write the store would."""
    payload = np.empty(1, dtype=object)
    payload[0] = WritesMarker(marker)
    buffer = io.BytesIO()
    np.savez(buffer, a0=payload)
    (folder / ARRAYS).write_bytes(buffer.getvalue())
    body = json.loads((folder / MANIFEST).read_text())
    body["files"][ARRAYS] = file_sha256(folder / ARRAYS)
    (folder / MANIFEST).write_text(json.dumps(body))
    (folder / DIGEST_FILE).write_text(file_sha256(folder / MANIFEST))

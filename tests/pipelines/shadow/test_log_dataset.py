"""The shadow log written by a rotating ``ShadowLog`` and read back in bounded chunks."""

from __future__ import annotations

import orjson
import pytest
from kedro.io import DatasetError

from geo_busyness.pipelines.shadow.log_dataset import ShadowLogDataset
from geo_busyness.pipelines.shadow.nodes import parse_shadow_log
from geo_busyness.serving.shadow import ShadowLog
from tests.pipelines.shadow.test_nodes import H, _line


def _write(path, batches: int, per_batch: int, max_bytes: int) -> list[bytes]:
    """Append ``batches`` batches of ``per_batch`` lines through a rotating log."""
    log = ShadowLog(path, max_bytes)
    lines = []
    try:
        for batch in range(batches):
            part = [
                _line(H, (float(batch), 1.0), (float(i), 1.0)) + b"\n" for i in range(per_batch)
            ]
            log.append(b"".join(part))
            lines += part
    finally:
        log.close()
    return lines


def test_the_log_is_rotated_by_size_and_read_back_whole_in_chunks(tmp_path):
    path = tmp_path / "shadow" / "shadow_predictions.jsonl"
    lines = _write(path, batches=12, per_batch=5, max_bytes=4000)
    files = sorted(path.parent.glob("shadow_predictions*.jsonl"))
    assert len(files) > 3  # rotated several times
    batch_bytes = len(b"".join(lines[:5]))
    assert all(f.stat().st_size < 4000 + batch_bytes for f in files)  # full, plus one batch

    dataset = ShadowLogDataset(filepath=str(path), chunk_bytes=1500)
    assert dataset.files()[-1] == str(path)  # the active file last
    chunks = list(dataset.load())
    assert len(chunks) > len(files)  # more than one chunk per file
    assert all(len(chunk) < 1500 + len(lines[0]) for chunk in chunks)  # bounded
    assert "".join(chunks).encode() == b"".join(lines)  # every line once, in order

    frame, summary = parse_shadow_log(dataset.load())
    assert summary == {"logged_predictions": len(lines), "malformed_lines": 0}
    expected = [orjson.loads(line)["champion"]["predicted_busyness"] for line in lines]
    assert frame["champion_predicted_busyness"].tolist() == expected


def test_a_missing_log_reads_as_nothing_and_cannot_be_written(tmp_path):
    dataset = ShadowLogDataset(filepath=str(tmp_path / "none.jsonl"))
    assert list(dataset.load()) == [] and not dataset.exists()
    with pytest.raises(DatasetError, match="written by `kedro serve --shadow`"):
        dataset.save("text")
    with pytest.raises(DatasetError, match="chunk_bytes"):
        ShadowLogDataset(filepath=str(tmp_path / "x.jsonl"), chunk_bytes=0)


def test_a_writer_whose_file_was_rotated_by_another_reopens_the_path(tmp_path):
    """Two worker processes share one log: the one that did not rotate writes to the new file."""
    path = tmp_path / "log.jsonl"
    first, second = ShadowLog(path, 100), ShadowLog(path, 100)
    try:
        first.append(b"x" * 120 + b"\n")
        first.append(b"a\n")  # full: rotated, "a" starts the new file
        second.append(b"b\n")  # its open file was renamed: it reopens the path
    finally:
        first.close()
        second.close()
    assert path.read_bytes() == b"a\nb\n"
    (rotated,) = [f for f in tmp_path.glob("log.*.jsonl")]
    assert rotated.read_bytes() == b"x" * 120 + b"\n"

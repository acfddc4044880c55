"""docker/Dockerfile cannot be built here; check by reading that what it copies and runs exists."""

from __future__ import annotations

import fnmatch
import os
import shlex
from pathlib import Path

from geo_busyness.serving.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _kept_by_dockerignore(path: str) -> bool:
    kept = True
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            kept = negate
    return kept


def test_every_copied_file_exists_and_is_in_the_build_context():
    for instruction, arguments in _instructions():
        if instruction != "COPY" or arguments.startswith("--from"):
            continue
        *sources, _destination = shlex.split(arguments)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert _kept_by_dockerignore(source.rstrip("/")), (
                f"{source} is excluded from the context"
            )


def test_the_image_runs_serve_and_serve_runs_the_server():
    instructions = dict(_instructions())
    assert instructions["CMD"] == '["serve"]'
    serve = DOCKER / "serve"
    assert os.access(serve, os.X_OK)
    assert "python -m geo_busyness.serving" in serve.read_text()
    assert "COPY docker/serve /usr/local/bin/serve" in (DOCKER / "Dockerfile").read_text()
    args = build_parser().parse_args(["--port", "8080"])
    assert (args.port, args.workers) == (8080, 1)

"""kedro-viz: the static build of the project's pipelines renders in a real headless browser."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from kedro.framework.project import configure_project
from matplotlib import image

from geo_busyness.pipeline_registry import register_pipelines
from geo_busyness.scratch import make_project_copy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep Chromium off the network (this machine has none) and quiet as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
    "--virtual-time-budget=20000",
)


@pytest.fixture(scope="module")
def viz_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kedro viz build` in a project copy, served over HTTP on a free loopback port."""
    if CHROMIUM is None:
        message = (
            "CHROMIUM IS NOT INSTALLED: the kedro-viz browser check did not run. "
            "`.ci/run` installs it with apt-get; install Debian's `chromium` to run it here."
        )
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    project = make_project_copy(tmp_path_factory.mktemp("viz"))
    kedro = str(Path(sys.executable).with_name("kedro"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    subprocess.run(
        [kedro, "viz", "build"], cwd=project, env=env, check=True, capture_output=True, timeout=300
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(project / "build"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def _chromium(args: list[str], profile: Path) -> str:
    done = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_static_build_renders_every_pipeline_node(viz_site: str, tmp_path: Path) -> None:
    dom = _chromium(["--dump-dom", viz_site], tmp_path / "profile")
    assert "pipeline-graph" in dom or "<svg" in dom, "no graph in the rendered page"
    configure_project("geo_busyness")
    node_names = {node.name for node in register_pipelines()["__default__"].nodes}
    missing = sorted(name for name in node_names if name not in dom)
    assert not missing, f"nodes absent from the rendered graph: {missing}"


def test_screenshot_is_not_blank(viz_site: str, tmp_path: Path) -> None:
    shot = tmp_path / "viz.png"
    _chromium([f"--screenshot={shot}", viz_site], tmp_path / "profile")
    pixels = image.imread(shot)[..., :3].reshape(-1, 3)
    distinct_colours = len(np.unique(np.round(pixels * 255).astype(np.uint8), axis=0))
    assert pixels.std() > 0.02 and distinct_colours > 50, "the kedro-viz page rendered blank"

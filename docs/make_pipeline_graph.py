"""Build the kedro-viz static site (graph left to right) and draw build/pipeline_graph.png from it.

    uv run python docs/make_pipeline_graph.py            # from the project root
    uv run python docs/make_pipeline_graph.py --pipeline reporting --out /tmp/reporting.png

Run it again after changing a pipeline and commit the PNG. It leaves the site in ``build/``
(``kedro viz build --include-previews``: tables and plotly figures of the data already on disk
show in the side panel); serve it with ``python -m http.server -d build``. Needs Debian's
``chromium`` (headless) and no network: the site is served on a loopback port.

kedro-viz 12.5 has no setting, server option or URL parameter for the graph's orientation. Its
app starts from the state it saves in the browser's localStorage ("KedroViz"), so
``build_site`` adds a small inline script to ``build/index.html`` that seeds left to right (a
choice already saved in that browser for that address still wins). ``kedro viz run`` serves the
package's own index.html and starts top to bottom: toggle it in the toolbar there.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image, ImageChops

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The state kedro-viz starts from in a build of this project.
SITE_DEFAULTS = {"orientation": "horizontal"}
#: Extra state for the picture only: light theme, no side panel, minimap or feature tour. The
#: picture runs top to bottom: left to right, the default pipeline is ~15x wider than tall and
#: its labels are unreadable at any README width.
PICTURE_DEFAULTS = {
    "orientation": "vertical",
    "theme": "light",
    "showFeatureHints": False,
    "visible": {"sidebar": False, "miniMap": False},
}
#: Width of kedro-viz's navigation bar and toolbar, cropped off the picture (CSS pixels).
_TOOLBARS_PX = 137
_MARK = "<!-- geo-busyness: kedro-viz defaults -->"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
)


def defaults_script(defaults: dict) -> str:
    """An inline script that seeds kedro-viz's saved state before the app (a module) starts."""
    return (
        f"{_MARK}\n<script>(function () {{ try {{\n"
        '  var key = "KedroViz", saved = JSON.parse(localStorage.getItem(key) || "{}");\n'
        f"  var state = Object.assign({json.dumps(defaults)}, saved);\n"
        "  localStorage.setItem(key, JSON.stringify(state));\n"
        "} catch (error) {} })();</script>\n"
    )


def with_defaults(index_html: str, defaults: dict) -> str:
    """kedro-viz's index.html with ``defaults`` seeded first in <head> (idempotent)."""
    if _MARK in index_html:
        index_html = (
            index_html[: index_html.index(_MARK)]
            + index_html[
                index_html.index("</script>", index_html.index(_MARK)) + len("</script>\n") :
            ]
        )
    return index_html.replace("<head>", "<head>\n" + defaults_script(defaults), 1)


def build_site(project: Path = PROJECT_ROOT) -> Path:
    """``kedro viz build`` in ``project``, left to right by default; returns the build folder."""
    kedro = str(Path(sys.executable).with_name("kedro"))
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    subprocess.run(
        [kedro, "viz", "build", "--include-previews"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    index = project / "build" / "index.html"
    index.write_text(with_defaults(index.read_text(encoding="utf-8"), SITE_DEFAULTS))
    return project / "build"


@contextmanager
def serve(site: Path, index_html: str | None = None) -> Iterator[str]:
    """Serve ``site`` on a free loopback port (optionally with another index page)."""

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if index_html is None or self.path.split("?")[0] not in ("/", "/index.html"):
                return super().do_GET()
            body = index_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium(args: list[str], window: tuple[int, int] = (1600, 1000)) -> str:
    """Run headless Chromium with a throw-away profile; returns its stdout."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--window-size={window[0]},{window[1]}",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
    return done.stdout


def crop_to_graph(picture: Path, margin: int = 24) -> None:
    """Cut the toolbars and the empty canvas around the graph off a screenshot, then pad it."""
    with Image.open(picture) as shot:
        graph = shot.convert("RGB").crop((_TOOLBARS_PX, 0, shot.width, shot.height))
    colour = graph.getpixel((graph.width - 1, graph.height - 1))
    difference = ImageChops.difference(graph, Image.new("RGB", graph.size, colour)).convert("L")
    box = difference.point(lambda value: 255 if value > 8 else 0).getbbox()  # ignore shading
    if box is None:
        raise RuntimeError(f"{picture} is blank: kedro-viz drew no graph")
    content = graph.crop(box)
    padded = Image.new("RGB", (content.width + 2 * margin, content.height + 2 * margin), colour)
    padded.paste(content, (margin, margin))
    padded.save(picture)


def screenshot(site: Path, out: Path, pipeline: str, window: tuple[int, int]) -> Path:
    """A cropped picture of one pipeline's graph from a built site, with the picture defaults."""
    index = with_defaults((site / "index.html").read_text(encoding="utf-8"), PICTURE_DEFAULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve(site, index) as url:
        chromium([f"--screenshot={out.resolve()}", f"{url}?pid={pipeline}"], window)
    crop_to_graph(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build" / "pipeline_graph.png")
    parser.add_argument("--pipeline", default="__default__")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200)
    parser.add_argument("--skip-build", action="store_true", help="reuse the project's build/")
    args = parser.parse_args()
    site = args.project / "build" if args.skip_build else build_site(args.project)
    picture = screenshot(site, args.out, args.pipeline, (args.width, args.height))
    sys.stdout.write(f"{picture}\n")


if __name__ == "__main__":
    main()

"""Pictures of the HTML reports taken in a real headless browser (Debian's ``chromium``),
offline: the pages embed plotly.js, and without network the map's hexagons draw on a blank
background. Driven over the DevTools protocol (``websocket-client``, installed with
kedro-viz's jupyter-server). Used by the browser test and to refresh docs/images/:

    uv run python -m geo_busyness.pipelines.reporting.screenshots \\
        --report data/08_reporting/reporting/report.html \\
        --map data/08_reporting/reporting/busyness_map.html --out docs/images
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

#: Headless, no network services, no GPU (WebGL for the map falls back to SwiftShader, which
#: newer Chromium wants asked for explicitly).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
#: Largest picture committed to docs/images/.
MAX_PNG_BYTES = 300_000
#: True once the page is loaded, every plotly figure on it drawn and every map's hexagons (its
#: GeoJSON sources) loaded. MapLibre draws in web workers, which a virtual-time budget
#: (``--virtual-time-budget``) does not wait for: the same page came out blank in some
#: screenshots and drawn in others, so the browser is asked, in real time, over DevTools.
PAGE_DRAWN = """(() => {
  if (document.readyState !== "complete") return false;
  const divs = [...document.querySelectorAll(".plotly-graph-div, #busyness-map")];
  if (!divs.every((div) => div._fullLayout)) return false;
  return divs.every((div) => Object.keys(div._fullLayout)
    .filter((key) => /^map[0-9]*$/.test(key))
    .every((key) => {
      const map = div._fullLayout[key]._subplot.map;
      const style = map.getStyle();
      const shapes = Object.keys(style.sources).filter((id) => style.sources[id].type === "geojson");
      return shapes.length > 0 && shapes.every((id) => map.isSourceLoaded(id)) && !map.isMoving();
    }));
})()"""


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (or ``chromium-browser``), None when neither is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(
    page: Path, out: Path, window: tuple[int, int] = (1400, 1800), timeout_s: float = 90.0
) -> Path:
    """A PNG of ``page`` (a local HTML file) once headless Chromium has drawn every figure and
    map (``PAGE_DRAWN``), taken over the DevTools protocol; fails after ``timeout_s``."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    if not page.is_file():
        raise FileNotFoundError(f"No HTML page at {page}: run the reporting pipeline first")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Chromium's helper processes may still write to the profile as it is removed.
    with tempfile.TemporaryDirectory(
        prefix="geo-busyness-chromium-", ignore_cleanup_errors=True
    ) as profile:
        browser = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                "--remote-debugging-port=0",
                f"--window-size={window[0]},{window[1]}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout_s
            with _DevTools(_debugger_url(Path(profile), deadline)) as tools:
                tools.call("Page.navigate", url=page.resolve().as_uri())
                while not tools.evaluate(PAGE_DRAWN):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{page} was not drawn within {timeout_s:.0f} s")
                    time.sleep(0.25)
                time.sleep(1.0)  # the last frame reaches the screen
                shot = tools.call("Page.captureScreenshot", format="png")
            out.write_bytes(base64.b64decode(shot["data"]))
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    return out


def _debugger_url(profile: Path, deadline: float) -> str:
    """The page target's DevTools WebSocket address (Chromium writes its port to the profile)."""
    port_file = profile / "DevToolsActivePort"
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        time.sleep(0.1)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
        targets = json.load(answer)
    return next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")


class _DevTools:
    """A minimal DevTools protocol client: one command at a time, events skipped."""

    def __init__(self, url: str) -> None:
        import websocket  # noqa: PLC0415 - websocket-client, only for pictures

        self._socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._next = 0

    def __enter__(self) -> _DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()

    def call(self, method: str, **params: object) -> dict:
        self._next += 1
        self._socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def compact_png(path: Path, max_bytes: int = MAX_PNG_BYTES) -> int:
    """Shrink a screenshot in place to at most ``max_bytes``: a 256-colour palette first (charts
    have few colours), then smaller by steps; returns the final size."""
    from PIL import Image  # noqa: PLC0415 - only for docs pictures

    image = Image.open(path).convert("RGB")
    scale = 1.0
    while True:
        size = (round(image.width * scale), round(image.height * scale))
        resized = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
        resized.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
        if path.stat().st_size <= max_bytes or scale < 0.3:
            return path.stat().st_size
        scale *= 0.85


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--report", type=Path, default=Path("data/08_reporting/reporting/report.html")
    )
    parser.add_argument(
        "--map", type=Path, default=Path("data/08_reporting/reporting/busyness_map.html")
    )
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    for page, name, window in (
        (args.report, "report.png", (1400, 3400)),
        (args.map, "busyness_map.png", (1400, 1250)),
    ):
        picture = screenshot(page, args.out / name, window)
        print(f"{picture}: {compact_png(picture):,} bytes")  # noqa: T201 - a CLI


if __name__ == "__main__":
    main()

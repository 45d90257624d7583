"""A real X server (Xvfb) for tests, and the test pattern shown on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHOW_PATTERN = Path(__file__).parent / "show_pattern.py"


@contextmanager
def x_server(width: int, height: int, display: str | None = None) -> Iterator[str]:
    """Xvfb of `width` x `height` on `display` or a display number nobody uses, reachable only
    through its Unix socket; yields the display name."""
    if display is None:
        number = next(n for n in range(90, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    else:
        number = int(display.removeprefix(":"))
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert server.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def showing_pattern(display: str, width: int, height: int) -> Iterator[None]:
    """The moving, stamped test pattern full screen on `display`, for a block."""
    shower = subprocess.Popen(
        [sys.executable, str(SHOW_PATTERN), str(width), str(height)],
        env={**os.environ, "DISPLAY": display, "SDL_VIDEODRIVER": "x11"},
    )
    try:
        time.sleep(0.5)
        assert shower.poll() is None, "the pattern window did not open"
        yield
    finally:
        shower.terminate()
        shower.wait(10)

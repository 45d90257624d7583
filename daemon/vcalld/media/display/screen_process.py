"""The screen's own process: it opens the display, then draws each scene the daemon sends.

Apart from the daemon because a display can take its process down with it: Xlib ends the
process when the X server goes away (its I/O error exit handler cannot be replaced for the
second connection libSDL2 opens), libSDL2 2.26 waits forever for an unmap on a dead X
connection when a window is closed, and a GPU driver can crash or hang. Here any of that ends
or stalls only this process; the daemon, still in the call, starts a new one (Chromium keeps
its GPU work in a process of its own for the same reasons).

Run by the daemon as `python -m vcalld.media.display.screen_process FD ARENA DRIVER WIDTH
HEIGHT ROTATION`, FD being its end of a socket pair and ARENA the pictures' shared memory.
It ends when the daemon says so or goes away."""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from vcalld.media.display.arena import ArenaReader
from vcalld.media.display.compositor import compose
from vcalld.media.display.scene import Failed, Opened, Scene, SceneReceiver, Shown
from vcalld.media.display.sdl import DisplayError, SdlScreen


def serve(channel: Connection, screen: SdlScreen, arena: ArenaReader) -> None:
    """Draws scenes until the daemon sends None or closes its end."""
    receiver = SceneReceiver(arena)
    while True:
        try:
            scene: Scene | None = channel.recv()
        except EOFError:
            return
        if scene is None:
            return
        remote, own, gone = receiver.views(scene)
        for key in gone:
            screen.forget(key)
        tiles = compose(screen, remote, own, scene.idle)
        pixels = screen.present(capture=scene.capture)
        channel.send(Shown(tiles, pixels))
        screen.pump()


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal reaches the whole process group: the daemon decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, arena_path, driver, width, height, rotation = argv
    channel = Connection(int(fd))
    arena = ArenaReader(Path(arena_path))
    screen = SdlScreen(driver, int(width), int(height), int(rotation))
    try:
        try:
            screen.open()
        except DisplayError as error:
            channel.send(Failed(str(error)))
            return 0
        width_, height_ = screen.output
        channel.send(
            Opened((width_, height_), screen.refresh_hz, screen.vsync, screen.renderer_name)
        )
        try:
            serve(channel, screen, arena)
        except DisplayError as error:
            channel.send(Failed(str(error)))
        return 0
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the daemon went first
    finally:
        screen.close()
        arena.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

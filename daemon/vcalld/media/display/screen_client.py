"""The daemon's handle on its screen process (`screen_process`): start it, show scenes through
it, and treat its death or silence as a lost display."""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import TypeVar

from vcalld.config.models import DisplayConfig
from vcalld.media.display.arena import PictureArena
from vcalld.media.display.scene import Failed, Opened, Scene, SceneSender, Shown
from vcalld.media.display.sdl import DisplayError

# Opening and the first screen, which compiles a GL driver's shaders: SDL with EGL on llvmpipe
# took 25-30 s to open in the test bed's emulated VM.
OPEN_SECONDS = 90.0
SHOW_SECONDS = 10.0  # a later screen not shown by then: the display (or its driver) hangs
QUIT_SECONDS = 2.0
POLL_SECONDS = 0.1
NOT_SHOWN = f"the display has not shown a screen for {SHOW_SECONDS:.0f} s"

Reply = TypeVar("Reply", Opened, Shown)


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """SO_SNDTIMEO takes a struct timeval, two 32- or 64-bit fields as the platform has it
    (armhf: either); the kernel's own answer says which."""
    size = len(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    layout = "@qq" if size == 16 else "@ii"
    timeval = struct.pack(layout, int(seconds), int(seconds % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


class ScreenProcess:
    """Used by the display thread only."""

    def __init__(self, config: DisplayConfig, stopping: threading.Event) -> None:
        ours, theirs = socket.socketpair()
        # A process stuck in a present stops reading: a picture bigger than the socket's
        # buffer must not then block the display thread for good.
        _set_send_timeout(ours, SHOW_SECONDS)
        self._arena = PictureArena()
        with theirs:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "vcalld.media.display.screen_process",
                     str(theirs.fileno()), str(self._arena.path), config.driver,
                     str(config.width), str(config.height), str(config.rotation)],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except OSError as error:
                ours.close()
                self._arena.close()
                raise DisplayError(f"cannot start the screen's process: {error}") from None
        self._channel = Connection(ours.detach())
        self.sender = SceneSender(self._arena)
        self._shown_one = False
        try:
            self.opened = self._opened(stopping)
        except BaseException:
            self.close()
            raise
        finally:
            self._arena.forget_path()  # any answer comes after the process has opened it

    def _opened(self, stopping: threading.Event) -> Opened:
        waited = 0.0
        while not self._channel.poll(POLL_SECONDS):
            waited += POLL_SECONDS
            if stopping.is_set():
                raise DisplayError("stopped while the display was opening")
            if waited >= OPEN_SECONDS:
                raise DisplayError(f"the display did not open within {OPEN_SECONDS:.0f} s")
        return self._receive(Opened)

    @property
    def pid(self) -> int:
        return self._process.pid

    def show(self, scene: Scene) -> Shown:
        try:
            self._channel.send(scene)
        except BlockingIOError:  # SO_SNDTIMEO: it has not read for SHOW_SECONDS
            raise DisplayError(NOT_SHOWN) from None
        except OSError:
            raise DisplayError(self._ended()) from None
        if not self._channel.poll(SHOW_SECONDS if self._shown_one else OPEN_SECONDS):
            raise DisplayError(NOT_SHOWN)
        shown = self._receive(Shown)
        self._shown_one = True
        return shown

    def _receive(self, expected: type[Reply]) -> Reply:
        """The reply that is there to read; `Failed` or the process's end as DisplayError."""
        try:
            reply = self._channel.recv()
        except (EOFError, OSError):
            raise DisplayError(self._ended()) from None
        if isinstance(reply, Failed):
            raise DisplayError(reply.reason)
        assert isinstance(reply, expected), reply
        return reply

    def _ended(self) -> str:
        try:
            code = self._process.wait(QUIT_SECONDS)
        except subprocess.TimeoutExpired:
            return "the display's process stopped answering"
        return f"the display's process ended (exit code {code})"

    def close(self) -> None:
        """Asks the process to close the display; one that does not within QUIT_SECONDS (a
        driver stuck on a display that went away) is killed."""
        with contextlib.suppress(OSError):  # it may be gone already
            self._channel.send(None)
        self._channel.close()
        try:
            self._process.wait(QUIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._arena.close()

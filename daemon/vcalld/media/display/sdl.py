"""The screen through SDL2: Debian's libSDL2 (through PySDL2's ctypes bindings) drives KMS/DRM
with no X, X11, Wayland, or an offscreen buffer for tests, the same way on every architecture.
A GPU takes pictures as the decoder made them (yuv420p textures) and turns them into RGB as it
draws; without one, each new picture is turned into RGB once, at the size it is shown."""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sdl2
from av import VideoFrame
from av.video.reformatter import VideoReformatter
from sdl2 import sdlttf

from vcalld.media.display.compositor import Anchor
from vcalld.media.display.layout import Rect, logical_size
from vcalld.media.display.tiles import TileView
from vcalld.media.text import FONT_LOCK, WHITE, TextError, font

DRIVERS: dict[str, bytes | None] = {
    "auto": None,  # SDL's own choice: Wayland or X11 when there is a session, else KMS/DRM
    "kmsdrm": b"KMSDRM",
    "x11": b"x11",
    "wayland": b"wayland",
    "offscreen": b"offscreen",
}
TEXT_CACHE = 64  # rendered labels kept as textures (names change rarely)


class DisplayError(Exception):
    """The display cannot be opened or was lost."""


@dataclass
class _Texture:
    texture: Any
    width: int
    height: int
    sequence: int = -1
    # One scaler per tile: each frame from a decoder is a new object, and a frame's own
    # reformat() would build (and fill the filter tables of) a new scaler for every one.
    scaler: VideoReformatter = field(default_factory=VideoReformatter)


class SdlScreen:
    """Used by one thread only (SDL's video calls are not thread-safe); ctypes releases the
    GIL around each call, so a present that waits for the display's refresh blocks no one."""

    def __init__(self, driver: str, width: int, height: int, rotation: int) -> None:
        self._driver = DRIVERS[driver]
        self._requested = (width, height)  # 0x0: the display's own mode, full screen
        self._rotation = rotation
        self._window: Any = None
        self._renderer: Any = None
        self._target: Any = None  # what is drawn before it is turned, for a rotated screen
        self._pictures: dict[str, _Texture] = {}
        self._texts: OrderedDict[tuple[str, int], _Texture] = OrderedDict()
        self.output = (0, 0)
        self.refresh_hz = 0  # 0: unknown
        self.vsync = False
        self._software = False
        self.renderer_name = ""

    def open(self) -> None:
        if self._driver is not None:
            sdl2.SDL_SetHint(sdl2.SDL_HINT_VIDEODRIVER, self._driver)
        sdl2.SDL_SetHint(sdl2.SDL_HINT_VIDEO_ALLOW_SCREENSAVER, b"0")
        # SIGTERM ends the process as usual, not as a quit event nobody asked for.
        sdl2.SDL_SetHint(sdl2.SDL_HINT_NO_SIGNAL_HANDLERS, b"1")
        if sdl2.SDL_Init(sdl2.SDL_INIT_VIDEO) != 0:
            raise DisplayError(_sdl_error("cannot open the display"))
        mode = sdl2.SDL_DisplayMode()
        has_mode = sdl2.SDL_GetDesktopDisplayMode(0, ctypes.byref(mode)) == 0
        self.refresh_hz = mode.refresh_rate if has_mode else 0
        width, height = self._requested
        flags = sdl2.SDL_WINDOW_SHOWN
        if not width:
            if not has_mode:
                raise DisplayError(_sdl_error("the display reports no mode"))
            width, height = mode.w, mode.h
            flags |= sdl2.SDL_WINDOW_FULLSCREEN_DESKTOP
        self._window = sdl2.SDL_CreateWindow(
            b"vcalld", sdl2.SDL_WINDOWPOS_UNDEFINED, sdl2.SDL_WINDOWPOS_UNDEFINED,
            width, height, flags,
        )  # fmt: skip
        if not self._window:
            raise DisplayError(_sdl_error("cannot open a window"))
        self._renderer = self._create_renderer()
        info = sdl2.SDL_RendererInfo()
        sdl2.SDL_GetRendererInfo(self._renderer, ctypes.byref(info))
        self.vsync = bool(info.flags & sdl2.SDL_RENDERER_PRESENTVSYNC)
        self._software = bool(info.flags & sdl2.SDL_RENDERER_SOFTWARE)
        self.renderer_name = info.name.decode()
        out_width, out_height = ctypes.c_int(), ctypes.c_int()
        sdl2.SDL_GetRendererOutputSize(
            self._renderer, ctypes.byref(out_width), ctypes.byref(out_height)
        )
        self.output = (out_width.value, out_height.value)
        if self._rotation:
            self._target = sdl2.SDL_CreateTexture(
                self._renderer, sdl2.SDL_PIXELFORMAT_ARGB8888, sdl2.SDL_TEXTUREACCESS_TARGET,
                *self.size,
            )  # fmt: skip
            if not self._target:
                raise DisplayError(_sdl_error("cannot turn the picture"))
        sdl2.SDL_ShowCursor(sdl2.SDL_DISABLE)

    def _create_renderer(self) -> Any:
        """The GPU, with presents paced by the display's refresh; else SDL's software one."""
        accelerated = (
            sdl2.SDL_RENDERER_ACCELERATED
            | sdl2.SDL_RENDERER_PRESENTVSYNC
            | sdl2.SDL_RENDERER_TARGETTEXTURE
        )
        software = sdl2.SDL_RENDERER_SOFTWARE | sdl2.SDL_RENDERER_TARGETTEXTURE
        for flags in (accelerated, software):
            renderer = sdl2.SDL_CreateRenderer(self._window, -1, flags)
            if renderer:
                return renderer
        raise DisplayError(_sdl_error("cannot draw on the display"))

    @property
    def size(self) -> tuple[int, int]:
        return logical_size(*self.output, self._rotation)

    def clear(self) -> None:
        if self._target is not None:
            sdl2.SDL_SetRenderTarget(self._renderer, self._target)
        sdl2.SDL_SetRenderDrawColor(self._renderer, 0, 0, 0, 255)
        sdl2.SDL_RenderClear(self._renderer)

    def fill(self, rect: Rect, grey: int) -> None:
        sdl2.SDL_SetRenderDrawColor(self._renderer, grey, grey, grey, 255)
        sdl2.SDL_RenderFillRect(self._renderer, ctypes.byref(_sdl_rect(rect)))

    def picture(self, view: TileView, rect: Rect) -> None:
        """A GPU takes the picture as it is and scales and converts it while it draws. SDL's
        software renderer would do both again on every screen, for every tile: there each new
        picture is scaled and converted once, by swscale, to the size and pixel format it is
        shown at, and every screen only copies it (measured: bench/camera_display.py)."""
        frame = view.frame
        assert frame is not None
        size = (rect.width, rect.height) if self._software else (frame.width, frame.height)
        held = self._pictures.get(view.key)
        if held is None or (held.width, held.height) != size:
            if held is not None:
                sdl2.SDL_DestroyTexture(held.texture)
            pixel_format = (
                sdl2.SDL_PIXELFORMAT_ARGB8888 if self._software else sdl2.SDL_PIXELFORMAT_IYUV
            )
            texture = sdl2.SDL_CreateTexture(
                self._renderer, pixel_format, sdl2.SDL_TEXTUREACCESS_STREAMING, *size
            )
            held = self._pictures[view.key] = _Texture(texture, *size)
        if held.sequence != view.sequence:  # a new picture: upload it, once
            if self._software:
                _upload_scaled(held, frame)
            else:
                _upload_yuv(held, frame)
            held.sequence = view.sequence
        sdl2.SDL_RenderCopy(self._renderer, held.texture, None, ctypes.byref(_sdl_rect(rect)))

    def measure(self, text: str, height: int) -> tuple[int, int]:
        held = self._text(text, height)
        return held.width, held.height

    def text(self, text: str, x: int, y: int, height: int, anchor: Anchor) -> None:
        held = self._text(text, height)
        if anchor == "centre":
            x, y = x - held.width // 2, y - held.height // 2
        else:
            y -= held.height
        where = sdl2.SDL_Rect(x, y, held.width, held.height)
        sdl2.SDL_RenderCopy(self._renderer, held.texture, None, ctypes.byref(where))

    def _text(self, text: str, height: int) -> _Texture:
        key = (text, height)
        held = self._texts.get(key)
        if held is not None:
            self._texts.move_to_end(key)
            return held
        with FONT_LOCK:
            try:
                label_font = font(height)
            except TextError as error:
                raise DisplayError(str(error)) from None
            surface = sdlttf.TTF_RenderUTF8_Blended(label_font, text.encode() or b" ", WHITE)
        if not surface:
            raise DisplayError(_sdl_error("cannot write a label"))
        try:
            texture = sdl2.SDL_CreateTextureFromSurface(self._renderer, surface)
            held = _Texture(texture, surface.contents.w, surface.contents.h)
        finally:
            sdl2.SDL_FreeSurface(surface)
        self._texts[key] = held
        if len(self._texts) > TEXT_CACHE:
            _, oldest = self._texts.popitem(last=False)
            sdl2.SDL_DestroyTexture(oldest.texture)
        return held

    def present(self, capture: bool = False) -> np.ndarray | None:
        """Shows what was drawn, turned for the screen; with `capture`, also returns it as the
        screen shows it (height x width x RGB)."""
        if self._target is not None:
            sdl2.SDL_SetRenderTarget(self._renderer, None)
            sdl2.SDL_SetRenderDrawColor(self._renderer, 0, 0, 0, 255)
            sdl2.SDL_RenderClear(self._renderer)
            width, height = self.size
            out_width, out_height = self.output
            # Turned about its centre, a width x height picture covers the screen.
            where = sdl2.SDL_Rect(
                (out_width - width) // 2, (out_height - height) // 2, width, height
            )
            sdl2.SDL_RenderCopyEx(
                self._renderer, self._target, None, ctypes.byref(where), float(self._rotation),
                None, sdl2.SDL_FLIP_NONE,
            )  # fmt: skip
        pixels = self._read() if capture else None
        sdl2.SDL_RenderPresent(self._renderer)
        return pixels

    def _read(self) -> np.ndarray:
        width, height = self.output
        pixels = np.empty((height, width, 3), np.uint8)
        if sdl2.SDL_RenderReadPixels(
            self._renderer, None, sdl2.SDL_PIXELFORMAT_RGB24,
            pixels.ctypes.data_as(ctypes.c_void_p), width * 3,
        ) != 0:  # fmt: skip
            raise DisplayError(_sdl_error("cannot read the screen back"))
        return pixels

    def forget(self, key: str) -> None:
        held = self._pictures.pop(key, None)
        if held is not None:
            sdl2.SDL_DestroyTexture(held.texture)

    def pump(self) -> None:
        """Answers the window system (a window that does not is "not responding"). SDL says
        quit when the display server closed the connection (a Wayland compositor that ended)
        or the window was closed: either way this screen is gone."""
        event = sdl2.SDL_Event()
        while sdl2.SDL_PollEvent(ctypes.byref(event)):
            if event.type == sdl2.SDL_QUIT:
                raise DisplayError("the display server closed the window or its connection")

    def close(self) -> None:
        for held in [*self._pictures.values(), *self._texts.values()]:
            sdl2.SDL_DestroyTexture(held.texture)
        self._pictures.clear()
        self._texts.clear()
        if self._target is not None:
            sdl2.SDL_DestroyTexture(self._target)
        if self._renderer:
            sdl2.SDL_DestroyRenderer(self._renderer)
        if self._window:
            sdl2.SDL_DestroyWindow(self._window)
        self._window = self._renderer = self._target = None
        sdl2.SDL_Quit()


def _upload_yuv(held: _Texture, frame: VideoFrame) -> None:
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes = [np.frombuffer(memoryview(plane), np.uint8) for plane in frame.planes]
    pointers = [plane.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)) for plane in planes]
    pitches = [plane.line_size for plane in frame.planes]
    sdl2.SDL_UpdateYUVTexture(
        held.texture, None, pointers[0], pitches[0], pointers[1], pitches[1], pointers[2],
        pitches[2],
    )  # fmt: skip


def _upload_scaled(held: _Texture, frame: VideoFrame) -> None:
    """ARGB8888 is B, G, R, A in memory on little-endian boards: FFmpeg's bgra."""
    shown = held.scaler.reformat(frame, width=held.width, height=held.height, format="bgra")
    plane = shown.planes[0]
    pixels = np.frombuffer(memoryview(plane), np.uint8)
    sdl2.SDL_UpdateTexture(
        held.texture, None, pixels.ctypes.data_as(ctypes.c_void_p), plane.line_size
    )


def _sdl_rect(rect: Rect) -> sdl2.SDL_Rect:
    return sdl2.SDL_Rect(rect.x, rect.y, rect.width, rect.height)


def _sdl_error(what: str) -> str:
    reason = sdl2.SDL_GetError().decode(errors="replace")
    return f"{what}: {reason}" if reason else what

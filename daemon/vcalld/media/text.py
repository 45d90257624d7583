"""Text as an alpha mask, by SDL_ttf (FreeType) with Debian's DejaVu Sans: for overlays on
frames and for the display's labels. FreeType's library is one for the process and not
thread-safe, so every use of it takes `FONT_LOCK`."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import sdl2
from sdl2 import sdlttf

FONT = b"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's fonts-dejavu-core
FONT_LOCK = threading.RLock()
WHITE = sdl2.SDL_Color(255, 255, 255, 255)

_fonts: dict[int, Any] = {}


class TextError(RuntimeError):
    pass


def font(height: int) -> Any:
    """The font at `height` pixels, opened once (the caller holds FONT_LOCK)."""
    opened = _fonts.get(height)
    if opened is None:
        if not sdlttf.TTF_WasInit() and sdlttf.TTF_Init() != 0:
            raise TextError(f"cannot start the font renderer: {sdlttf.TTF_GetError().decode()}")
        opened = sdlttf.TTF_OpenFont(FONT, height)
        if not opened:
            raise TextError(f"cannot open {FONT.decode()}: {sdlttf.TTF_GetError().decode()}")
        _fonts[height] = opened
    return opened


def text_mask(text: str, height: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """How much each pixel of `text` set in white at `height` px is covered (0-255)."""
    with FONT_LOCK:
        surface = sdlttf.TTF_RenderUTF8_Blended(font(height), text.encode() or b" ", WHITE)
        if not surface:
            raise TextError(f"cannot set {text!r}: {sdlttf.TTF_GetError().decode()}")
        try:
            converted = sdl2.SDL_ConvertSurfaceFormat(surface, sdl2.SDL_PIXELFORMAT_ARGB8888, 0)
            if not converted:
                raise TextError(f"cannot convert {text!r}: {sdl2.SDL_GetError().decode()}")
            try:
                shown = converted.contents
                size = shown.pitch * shown.h
                raw = ctypes.string_at(shown.pixels, size)
            finally:
                sdl2.SDL_FreeSurface(converted)
        finally:
            sdl2.SDL_FreeSurface(surface)
    pixels = np.frombuffer(raw, np.uint32).reshape(shown.h, shown.pitch // 4)[:, : shown.w]
    alpha: np.ndarray[Any, np.dtype[np.uint8]] = (pixels >> 24).astype(np.uint8)
    return alpha

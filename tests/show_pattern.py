"""Shows the stamped test pattern full screen at 15 fps on $DISPLAY until terminated: the
screen a screen-sharing test grabs (run by tests/xserver.py)."""

from __future__ import annotations

import signal
import sys
import time

import sdl2

from vcalld.media.pattern import PatternPainter


def main(width: int, height: int) -> None:
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.clear())
    if sdl2.SDL_Init(sdl2.SDL_INIT_VIDEO) != 0:
        raise SystemExit(sdl2.SDL_GetError().decode())
    window = sdl2.SDL_CreateWindow(
        b"pattern", 0, 0, width, height, sdl2.SDL_WINDOW_BORDERLESS | sdl2.SDL_WINDOW_SHOWN
    )
    renderer = sdl2.SDL_CreateRenderer(window, -1, sdl2.SDL_RENDERER_SOFTWARE)
    texture = sdl2.SDL_CreateTexture(
        renderer, sdl2.SDL_PIXELFORMAT_IYUV, sdl2.SDL_TEXTUREACCESS_STREAMING, width, height
    )
    painter, index, event = PatternPainter(width, height), 0, sdl2.SDL_Event()
    while running:
        planes = painter.paint(index)  # yuv420p, as IYUV takes it
        sdl2.SDL_UpdateTexture(texture, None, planes.ctypes.data, width)
        sdl2.SDL_RenderCopy(renderer, texture, None, None)
        sdl2.SDL_RenderPresent(renderer)
        while sdl2.SDL_PollEvent(event):
            pass
        index += 1
        time.sleep(1 / 15)
    sdl2.SDL_Quit()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))

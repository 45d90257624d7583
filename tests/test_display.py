"""The kiosk screen through real SDL2 (Debian's libSDL2, its offscreen driver): the composed
screen is read back and every tile checked for its participant's picture at its place, with
labels, placeholders, letterboxing, rotation and the self view; and a call shown on it."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av import AudioFrame, VideoFrame

from tests.helpers import eventually, received, running, video_ok
from tests.xserver import x_server
from vcalld.commands import SetMuteCommand
from vcalld.config import VcalldConfig
from vcalld.media.display.arena import INITIAL_BYTES, ArenaReader, PictureArena
from vcalld.media.display.compositor import PLACEHOLDER_GREY
from vcalld.media.display.layout import GAP, Rect, grid, letterbox, self_view
from vcalld.media.display.screen_client import NOT_SHOWN, QUIT_SECONDS, SHOW_SECONDS
from vcalld.media.display.screen_thread import Screenshot
from vcalld.media.display.tiles import Tiles
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import bars_match, read_stamp
from vcalld.media.sinks.display import DisplayRenderer
from vcalld.room.server import RoomServer
from vcalld.state import CallState, DeviceState, Participant, screen_of

WIDTH, HEIGHT = 1280, 720
# One colour per participant, far enough apart to tell after YUV and back.
COLOURS = [
    (220, 40, 40),
    (40, 200, 40),
    (40, 60, 220),
    (230, 220, 40),
    (200, 40, 200),
    (40, 210, 210),
    (240, 140, 30),
]


def test_grid_shapes_for_one_to_seven_and_a_portrait_screen() -> None:
    half = (WIDTH - GAP) // 2
    assert grid(1, WIDTH, HEIGHT) == [Rect(0, 0, WIDTH, HEIGHT)]
    assert grid(2, WIDTH, HEIGHT) == [Rect(0, 0, half, HEIGHT), Rect(half + GAP, 0, half, HEIGHT)]
    row = (HEIGHT - GAP) // 2
    assert grid(4, WIDTH, HEIGHT) == [
        Rect(0, 0, half, row),
        Rect(half + GAP, 0, half, row),
        Rect(0, row + GAP, half, row),
        Rect(half + GAP, row + GAP, half, row),
    ]
    seven = grid(7, WIDTH, HEIGHT)  # 3 + 3 + 1, the last one centred
    third, row = (WIDTH - 2 * GAP) // 3, (HEIGHT - 2 * GAP) // 3
    assert [tile.y for tile in seven] == [0] * 3 + [row + GAP] * 3 + [2 * (row + GAP)]
    assert seven[6] == Rect((WIDTH - third) // 2, 2 * (row + GAP), third, row)
    # A portrait screen stacks two people rather than squeezing them side by side.
    assert grid(2, 720, 1280) == [Rect(0, 0, 720, 638), Rect(0, 642, 720, 638)]


def test_letterbox_keeps_the_shape_and_self_view_sits_in_the_corner() -> None:
    assert letterbox(640, 480, Rect(0, 0, 1280, 720)) == Rect(160, 0, 960, 720)
    assert letterbox(1280, 720, Rect(100, 0, 400, 600)) == Rect(100, 188, 400, 224)
    assert self_view(1280, 720, 640, 480) == Rect(1280 - 320 - 16, 720 - 240 - 16, 320, 240)


def solid(rgb: tuple[int, int, int], width: int = 640, height: int = 360) -> VideoFrame:
    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = rgb
    return VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")


def colour_near(pixel: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 14) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(rgb)) <= tolerance))


@asynccontextmanager
async def screen(
    problems: list[str | None] | None = None, **display: Any
) -> AsyncIterator[DisplayRenderer]:
    """The display renderer, running; `problems` hears what it reports."""
    settings = {"renderer": "display", "driver": "offscreen", "width": WIDTH, "height": HEIGHT}
    config = VcalldConfig.model_validate({"display": {**settings, **display}})
    renderer = DisplayRenderer(config)
    problems = [] if problems is None else problems
    task = asyncio.create_task(renderer.run(problems.append))
    try:
        await eventually(lambda: problems == [None], within=5)
        yield renderer
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def in_call(*people: tuple[str, str, str]) -> DeviceState:
    participants = [Participant(id=i, name=n, connection=c) for i, n, c in people]
    return DeviceState(device_id="kiosk", call=CallState.IN_CALL, participants=participants)


def show(renderer: DisplayRenderer, count: int) -> None:
    people = [(f"p{index}", f"Person {index}", "connected") for index in range(count)]
    renderer.show_state(in_call(*people))
    for index in range(count):
        renderer.take_frame(f"p{index}", solid(COLOURS[index]))


@asynccontextmanager
async def feeding(renderer: DisplayRenderer, count: int) -> AsyncIterator[None]:
    """`show`, and the same pictures again at 30 fps, as a call sends them."""

    async def again() -> None:
        while True:
            show(renderer, count)
            await asyncio.sleep(1 / 30)

    task = asyncio.create_task(again())
    try:
        yield
    finally:
        task.cancel()


def label_is_written(pixels: np.ndarray, tile: Rect, picture: tuple[int, int] = (640, 360)) -> bool:
    """White text on the dark backing in the bottom left corner of the tile's picture."""
    shown = letterbox(*picture, tile)
    corner = pixels[
        shown.y + shown.height * 3 // 4 : shown.y + shown.height, shown.x : shown.x + 200
    ]
    return bool((corner.min(axis=2) > 200).sum() > 30)


@pytest.mark.parametrize("count", [1, 2, 4, 7])
async def test_every_participant_is_in_its_tile_with_its_name(count: int) -> None:
    async with screen() as renderer:
        show(renderer, count)
        shot = await renderer.screenshot()
    assert shot.pixels.shape == (HEIGHT, WIDTH, 3)
    assert len(shot.tiles) == count
    for index, tile in enumerate(shot.tiles):
        x, y = tile.centre
        assert colour_near(shot.pixels[y, x], COLOURS[index]), (index, shot.pixels[y, x])
        assert label_is_written(shot.pixels, tile), index
    # Tiles are the grid's: left to right, then top to bottom.
    assert [tile.centre for tile in shot.tiles] == sorted(
        (tile.centre for tile in shot.tiles), key=lambda centre: (centre[1], centre[0])
    )


async def test_placeholders_say_why_there_is_no_picture() -> None:
    async with screen() as renderer:
        renderer.show_state(
            in_call(("a", "Ann", "connecting"), ("b", "Ben", "connected"), ("c", "Cy", "connected"))
        )
        renderer.take_frame("c", solid((0, 0, 0)))  # what a muted camera sends
        shot = await renderer.screenshot()
    for tile in shot.tiles:
        region = shot.pixels[tile.y + 20 : tile.y + tile.height // 3, tile.x + 20 : tile.x + 200]
        assert (region == PLACEHOLDER_GREY).all()  # grey, not a picture
        x, y = tile.centre
        middle = shot.pixels[y - 20 : y + 20, x - 150 : x + 150]
        assert (middle.min(axis=2) > 200).sum() > 50  # "connecting…" / "camera off" written


async def test_a_picture_of_another_shape_is_letterboxed() -> None:
    async with screen() as renderer:
        renderer.show_state(in_call(("a", "Ann", "connected")))
        renderer.take_frame("a", solid(COLOURS[0], 640, 480))  # 4:3 on a 16:9 screen
        shot = await renderer.screenshot()
    assert (shot.pixels[HEIGHT // 2, :150] == 0).all()  # bars left and right
    assert (shot.pixels[HEIGHT // 2, -150:] == 0).all()
    assert colour_near(shot.pixels[HEIGHT // 2, 170], COLOURS[0])
    assert colour_near(shot.pixels[HEIGHT // 2, WIDTH - 170], COLOURS[0])


@pytest.mark.parametrize("rotation", [90, 180, 270])
async def test_a_turned_screen_shows_the_grid_turned(rotation: int) -> None:
    """Portrait kiosks: the grid is laid out for the turned screen and turned as a whole."""
    async with screen(rotation=rotation) as renderer:
        show(renderer, 2)
        shot = await renderer.screenshot()
    assert shot.pixels.shape == (HEIGHT, WIDTH, 3)
    turned = np.rot90(shot.pixels, k=rotation // 90)  # undo the clockwise turn
    if rotation in (90, 270):
        assert turned.shape == (WIDTH, HEIGHT, 3)  # laid out portrait: one above the other
        assert shot.tiles[0].y < shot.tiles[1].y
    for index, tile in enumerate(shot.tiles):
        x, y = tile.centre
        assert colour_near(turned[y, x], COLOURS[index]), (rotation, index, turned[y, x])


async def test_the_self_view_is_drawn_over_the_corner() -> None:
    async with screen(self_view=True) as renderer:
        show(renderer, 1)
        own = asyncio.Queue[VideoFrame]()
        await own.put(solid(COLOURS[3], 640, 480))

        class OwnTrack:
            kind = "video"

            async def recv(self) -> VideoFrame:
                return await own.get()

        task = asyncio.create_task(renderer.render_local(OwnTrack()))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        shot = await renderer.screenshot()
        task.cancel()
    corner = self_view(WIDTH, HEIGHT, 640, 480)
    x, y = corner.centre
    assert colour_near(shot.pixels[y, x], COLOURS[3])
    assert colour_near(shot.pixels[100, 640], COLOURS[0])  # the remote tile around it


def tile_picture(shot: Screenshot, index: int, width: int, height: int) -> VideoFrame:
    """What a tile shows, cut out of the screen and made a frame of the sent size again."""
    box = letterbox(width, height, shot.tiles[index])
    rgb = shot.pixels[box.y : box.y + box.height, box.x : box.x + box.width]
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(width=width, height=height, format="yuv420p")


@pytest.mark.slow
async def test_a_call_on_the_screen_shows_the_peer_and_its_camera_going_off(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    """The far end's stamped test pattern, decoded from the screen itself; then black frames
    (video muted over there) turn the tile into "camera off"."""
    display = {"renderer": "display", "driver": "offscreen", "width": WIDTH, "height": HEIGHT}
    kiosk_config = daemon_config(room_server, "kiosk", display=display)
    async with (
        running(kiosk_config) as kiosk,
        running(daemon_config(room_server, "peer")) as peer,
    ):
        assert isinstance(kiosk.renderer, DisplayRenderer)
        renderer = kiosk.renderer
        await eventually(lambda: video_ok(received(kiosk, "peer")), within=30)
        shot = await renderer.screenshot()
        assert len(shot.tiles) == 1
        seen = tile_picture(shot, 0, 640, 480)
        luma = picture_plane(seen, 0)
        assert read_stamp(luma) is not None
        assert bars_match(luma, picture_plane(seen, 1), picture_plane(seen, 2))
        assert label_is_written(shot.pixels, shot.tiles[0], (640, 480))

        assert (await peer.execute(SetMuteCommand(video=True))).ok

        async def camera_off() -> bool:
            shot = await renderer.screenshot()
            x, y = shot.tiles[0].x + 30, shot.tiles[0].y + 30
            return bool((shot.pixels[y, x] == PLACEHOLDER_GREY).all())

        await eventually(camera_off, within=10)
    assert kiosk.state.current.display_problem is None


@pytest.fixture
def x_display() -> Iterator[str]:
    with x_server(WIDTH, HEIGHT) as display:
        yield display


def grab_x_screen(display: str) -> np.ndarray:
    """What the X server shows, read by FFmpeg's x11grab: not what SDL thinks it drew."""
    with av.open(display, format="x11grab", options={"video_size": f"{WIDTH}x{HEIGHT}"}) as grab:
        frame = next(grab.decode(video=0))
        return frame.to_ndarray(format="rgb24")


async def test_under_x11_the_screen_fills_the_display_with_every_tile(
    x_display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full screen in the display's own mode (width and height 0) on a real X server."""
    monkeypatch.setenv("DISPLAY", x_display)
    async with screen(driver="x11", width=0, height=0) as renderer, feeding(renderer, 4):
        drawn = await renderer.screenshot()
        await asyncio.sleep(0.5)  # presented, and composited by the X server
        pixels = await asyncio.to_thread(grab_x_screen, x_display)
    assert drawn.pixels.shape == (HEIGHT, WIDTH, 3)
    for index, tile in enumerate(drawn.tiles):
        x, y = tile.centre
        assert colour_near(pixels[y, x], COLOURS[index]), (index, pixels[y, x])
        assert label_is_written(pixels, tile), index


def tiles_shown(pixels: np.ndarray, tiles: list[Rect]) -> bool:
    return all(
        colour_near(pixels[tile.centre[1], tile.centre[0]], COLOURS[index])
        for index, tile in enumerate(tiles)
    )


async def lost_and_back(
    driver: str,
    server: ExitStack,
    start_again: Callable[[], AbstractContextManager[object]],
    grab: Callable[[], np.ndarray],
) -> list[str | None]:
    """With the call's tiles on the screen (`driver`, full screen), the display server held by
    `server` ends (as when it crashes or restarts): the display is reported lost; with the one
    `start_again` starts, the tiles are shown again where they were (`grab`: what that server
    shows). Returns the problems reported."""
    problems: list[str | None] = []
    async with (
        screen(problems, driver=driver, width=0, height=0) as renderer,
        feeding(renderer, 2),
    ):
        await _shown_again(renderer, problems, server, start_again, grab)
    return problems


async def _shown_again(
    renderer: DisplayRenderer,
    problems: list[str | None],
    server: ExitStack,
    start_again: Callable[[], AbstractContextManager[object]],
    grab: Callable[[], np.ndarray],
) -> None:

    async def drawn() -> bool:
        shot = await renderer.screenshot()
        return tiles_shown(shot.pixels, shot.tiles)

    await eventually(drawn, within=5)
    before = await renderer.screenshot()
    server.close()
    await eventually(lambda: "display lost" in str(problems[-1]), within=10)
    with start_again():
        await eventually(lambda: problems[-1] is None, within=15)
        await asyncio.sleep(1.0)  # presented, and composited by the display server
        pixels = await asyncio.to_thread(grab)
        assert tiles_shown(pixels, before.tiles)


async def test_a_lost_x_server_is_reported_and_the_screen_comes_back_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Xlib ends the process whose X server goes away: that must be the screen's process, not
    the daemon (this one, here)."""
    with ExitStack() as first_server:
        display = first_server.enter_context(x_server(WIDTH, HEIGHT))
        monkeypatch.setenv("DISPLAY", display)
        problems = await lost_and_back(
            "x11",
            first_server,
            functools.partial(x_server, WIDTH, HEIGHT, display),
            functools.partial(grab_x_screen, display),
        )
    assert str(problems[1]).startswith("display lost: the display's process ended"), problems


def test_pictures_cross_to_the_screen_process_exactly_whatever_their_size() -> None:
    """Through the shared arena, growing it midway: odd sizes (chroma rounded up), a frame
    in another pixel format, and a picture bigger than the arena as it stood."""
    rng = np.random.default_rng(7)
    arena = PictureArena()
    reader = ArenaReader(arena.path)
    try:
        arena.forget_path()
        frames = [
            VideoFrame.from_ndarray(rng.integers(0, 256, (361, 641, 3), np.uint8), format="rgb24"),
            solid(COLOURS[1], 3840, 2160),
            solid(COLOURS[2], 64, 36),
        ]
        arena.begin_scene()
        pictures = [arena.put(frame) for frame in frames]
        assert arena.size > INITIAL_BYTES  # grown for the 4K picture
        for frame, picture in zip(frames, pictures, strict=True):
            sent = frame.reformat(format="yuv420p")
            shown = reader.frame(picture, arena.size)
            assert (shown.width, shown.height) == (frame.width, frame.height)
            for ours, theirs in zip(sent.planes, shown.planes, strict=True):
                width = ours.width
                mine = np.frombuffer(memoryview(ours), np.uint8).reshape(-1, ours.line_size)
                got = np.frombuffer(memoryview(theirs), np.uint8).reshape(-1, theirs.line_size)
                assert (mine[:, :width] == got[:, :width]).all()
    finally:
        reader.close()
        arena.close()


async def test_a_display_that_stops_answering_is_lost_and_opened_again() -> None:
    """A driver stuck in a present (here: the screen process stopped) must not stop the
    daemon's screen for good: after SHOW_SECONDS it is killed and the display opened anew."""
    problems: list[str | None] = []
    async with screen(problems) as renderer, feeding(renderer, 1):
        await renderer.screenshot()  # past the first screen, which may take OPEN_SECONDS
        stuck = renderer.screen_pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)
        await eventually(lambda: len(problems) == 3, within=2 * SHOW_SECONDS + QUIT_SECONDS + 10)
        assert problems[1:] == [f"display lost: {NOT_SHOWN}", None]
        assert renderer.screen_pid not in (None, stuck)
        assert not _alive(stuck)  # killed
        shot = await renderer.screenshot()
        centre = shot.tiles[0].centre
        assert colour_near(shot.pixels[centre[1], centre[0]], COLOURS[0])


def test_the_screen_process_ends_with_the_daemon(tmp_path: Path) -> None:
    """A daemon killed outright leaves no screen process behind on the display."""
    script = (
        "import os, sys, threading\n"
        "from vcalld.config.models import DisplayConfig\n"
        "from vcalld.media.display.screen_client import ScreenProcess\n"
        "process = ScreenProcess(DisplayConfig(driver='offscreen', width=64, height=64),"
        " threading.Event())\n"
        "print(process.pid, flush=True)\n"
        "os._exit(9)\n"
    )
    daemon = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert daemon.returncode == 9, daemon.stderr
    orphan = int(daemon.stdout)
    deadline = time.monotonic() + 5
    while _alive(orphan):
        assert time.monotonic() < deadline, "the screen process outlived the daemon"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running, not ended (a zombie not yet reaped by whoever inherited it has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@contextmanager
def weston(x_display: str, runtime: Path, socket: str) -> Iterator[None]:
    """A Wayland compositor (weston) drawing on the X server, so x11grab reads what it shows.
    (Weston's headless backend is no stand-in: libSDL2 2.26 crashes in its Wayland start-up
    against it, and starts fine on this one.)"""
    compositor = subprocess.Popen(
        # Its window covers the X screen (--fullscreen would wait for a window manager).
        ["weston", "--backend=x11-backend.so", f"--width={WIDTH}", f"--height={HEIGHT}",
         f"--socket={socket}", "--idle-time=0"],
        env={**os.environ, "DISPLAY": x_display, "XDG_RUNTIME_DIR": str(runtime)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (runtime / socket).exists():
            assert compositor.poll() is None and time.monotonic() < deadline, "no weston"
            time.sleep(0.05)
        yield
    finally:
        compositor.terminate()
        compositor.wait(10)


@pytest.fixture
def wayland_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The runtime folder and socket name of a Wayland session, in the environment."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    socket = "wayland-vcalld"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("WAYLAND_DISPLAY", socket)
    return runtime, socket


async def test_under_wayland_the_screen_fills_the_display_with_every_tile(
    x_display: str, wayland_session: tuple[Path, str]
) -> None:
    with weston(x_display, *wayland_session):
        async with screen(driver="wayland", width=0, height=0) as renderer, feeding(renderer, 4):
            drawn = await renderer.screenshot()
            await asyncio.sleep(1.0)  # presented, and composited by weston onto the X screen
            pixels = await asyncio.to_thread(grab_x_screen, x_display)
    for index, tile in enumerate(drawn.tiles):
        x, y = tile.centre
        assert colour_near(pixels[y, x], COLOURS[index]), (index, pixels[y, x])
        assert label_is_written(pixels, tile), index


async def test_a_wayland_compositor_that_ends_is_reported_and_the_screen_comes_back(
    x_display: str, wayland_session: tuple[Path, str]
) -> None:
    with ExitStack() as compositor:
        compositor.enter_context(weston(x_display, *wayland_session))
        await lost_and_back(
            "wayland",
            compositor,
            functools.partial(weston, x_display, *wayland_session),
            functools.partial(grab_x_screen, x_display),
        )


def audio(value: int, samples: int = 960) -> AudioFrame:
    frame = AudioFrame.from_ndarray(np.full((1, samples * 2), value, np.int16), "s16", "stereo")
    frame.sample_rate = 48000
    return frame


def test_a_second_of_digital_silence_reads_as_muted_and_sound_clears_it() -> None:
    """What a muted browser or vcalld sends is exact zeros; a live microphone never is."""
    now = [100.0]
    tiles = Tiles(clock=lambda: now[0])
    tiles.participants([("a", "Ann", "connected")])
    tiles.audio("a", audio(0))
    now[0] += 0.9
    tiles.audio("a", audio(0))
    assert not tiles.views()[0][0].muted
    now[0] += 0.2
    assert tiles.views()[0][0].muted
    tiles.audio("a", audio(3))  # quiet, but a microphone
    assert not tiles.views()[0][0].muted


def test_a_shared_screen_has_a_tile_after_its_sharer_s_while_its_pictures_come() -> None:
    now = [100.0]
    tiles = Tiles(clock=lambda: now[0])
    tiles.participants([("a", "Ann", "connected"), ("b", "Bo", "connected")])
    picture = VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), format="rgb24")
    tiles.video(screen_of("a"), picture)
    tiles.video(screen_of("nobody"), picture)  # not in the call: no tile
    remote, _ = tiles.views()
    assert [(view.key, view.name) for view in remote] == [
        ("a", "Ann"),
        (screen_of("a"), "Ann's screen"),
        ("b", "Bo"),
    ]
    assert remote[1].frame is picture
    tiles.participants([("a", "Ann", "connected"), ("b", "Bo", "connected")])
    assert len(tiles.views()[0]) == 3  # kept with its sharer
    now[0] += 1.1  # sharing stopped: its pictures did
    assert [view.key for view in tiles.views()[0]] == ["a", "b"]
    tiles.video(screen_of("a"), picture)
    tiles.forget("a")
    assert [view.key for view in tiles.views()[0]] == ["b"]


async def test_a_muted_participant_is_marked_after_the_name() -> None:
    async with screen() as renderer:
        show(renderer, 1)
        plain = await renderer.screenshot()
        renderer.take_frame("p0", audio(0))
        await asyncio.sleep(1.1)
        renderer.take_frame("p0", audio(0))
        show(renderer, 1)
        marked = await renderer.screenshot()

    def label_width(shot: Screenshot) -> int:
        shown = letterbox(640, 360, shot.tiles[0])
        rows = shot.pixels[shown.y + shown.height * 3 // 4 : shown.y + shown.height]
        white_columns = np.nonzero((rows.min(axis=2) > 200).any(axis=0))[0]
        return int(white_columns.max() - white_columns.min())

    assert label_width(marked) > label_width(plain) + 50  # "Person 0  (muted)"

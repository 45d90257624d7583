"""Debian's headless Chromium running the browser client, in calls with daemons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.chromium import (
    Page,
    chromium_page,
    element_picture,
    install_probe,
    remote_picture,
    remote_pitch,
    write_pattern_clip,
    write_tone_wav,
)
from tests.helpers import MIN_FPS, assert_receives, eventually, received, running, tone_ok
from tests.lossy import Loss, ice_connection, impair
from tests.xserver import showing_pattern, x_server
from vcalld.call import aiortc_hooks
from vcalld.commands import SetVideoCommand, StartScreenShareCommand
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.media.pattern import bars_match, read_stamp
from vcalld.room import tokens
from vcalld.room.server import RoomServer

pytestmark = pytest.mark.slow
BROWSER_TONE_HZ = 660.0
WIDTH, HEIGHT, FPS = 640, 480, 30
FPS_WINDOW_SECONDS = 3.0


@dataclass(frozen=True)
class BrowserMedia:
    clip: Path
    wav: Path


@pytest.fixture(scope="module")
def browser_media(tmp_path_factory: pytest.TempPathFactory) -> BrowserMedia:
    folder = tmp_path_factory.mktemp("browser-media")
    return BrowserMedia(
        clip=write_pattern_clip(folder / "pattern.y4m", WIDTH, HEIGHT, FPS, frames=2 * FPS),
        wav=write_tone_wav(folder / "tone.wav", BROWSER_TONE_HZ, seconds=2),
    )


@asynccontextmanager
async def browser(
    server: RoomServer, secret_file: Path, media: BrowserMedia, name: str
) -> AsyncIterator[Page]:
    """Chromium in room "test", with a token as `vcalld room-token` gives one."""
    query = urlencode({"room": "test", "name": name, "autojoin": "1", "audio_processing": "off"})
    token = tokens.issue(tokens.read_secret(secret_file), "test", 600)
    url = f"http://127.0.0.1:{server.port}/?{query}#token={token}"
    async with chromium_page(url, video_clip=media.clip, audio_wav=media.wav) as page:
        await eventually(lambda: page.evaluate("typeof vcall === 'object'"), 10)
        await install_probe(page)
        yield page


async def inbound(page: Page, name: str) -> dict[str, Any]:
    """getStats' inbound video and audio from participant `name`, keyed by kind."""
    for entry in (await page.evaluate("vcall.stats()")).values():
        if entry["name"] == name:
            inbound_stats: dict[str, Any] = entry["inbound"]
            return inbound_stats
    return {}


async def wait_for_inbound(page: Page, name: str, within: float) -> None:
    """Until the page decodes `name`'s video at full size and plays audible audio."""
    async with asyncio.timeout(within):
        while True:
            stats = await inbound(page, name)
            video, audio = stats.get("video", {}), stats.get("audio", {})
            if (
                video.get("framesDecoded", 0) > FPS
                and (video.get("frameWidth"), video.get("frameHeight")) == (WIDTH, HEIGHT)
                and audio.get("audioLevel", 0) > 0.05
            ):
                return
            await asyncio.sleep(0.3)


async def assert_page_receives(
    page: Page, name: str, tone_hz: float, min_fps: float = MIN_FPS
) -> None:
    """Frame rate, picture content and pitch of `name` as seen and heard in Chromium."""
    await wait_for_inbound(page, name, 20)
    before = (await inbound(page, name))["video"]["framesDecoded"]
    await asyncio.sleep(FPS_WINDOW_SECONDS)
    decoded = (await inbound(page, name))["video"]["framesDecoded"] - before
    assert decoded >= FPS_WINDOW_SECONDS * min_fps, f"{decoded} frames from {name} in 3 s"

    stamps = []
    for _ in range(2):
        picture = await remote_picture(page, name)
        assert picture is not None
        luma, u, v = picture
        assert luma.shape == (HEIGHT, WIDTH)
        assert bars_match(luma, u, v), (
            f"colour bars from {name} are not where the pattern puts them"
        )
        stamps.append(read_stamp(luma))
        await asyncio.sleep(0.5)
    assert None not in stamps and stamps[0] != stamps[1], stamps

    pitch = await remote_pitch(page, name)
    assert pitch is not None and pitch["frequency"] == pytest.approx(tone_hz, abs=10), pitch


async def tiles(page: Page) -> int:
    """Remote participants' tiles (the self view is not one)."""
    return int(await page.evaluate("document.querySelectorAll('#tiles .tile:not(.self)').length"))


async def video_tracks(page: Page) -> int:
    """Video tracks in the stream the page shows for its (only) peer."""
    script = "vcall.peers.values().next().value.stream.getVideoTracks().length"
    return int(await page.evaluate(script))


async def hears(page: Page, name: str, tone_hz: float) -> bool:
    pitch = await remote_pitch(page, name)
    return pitch is not None and abs(pitch["frequency"] - tone_hz) < 10


async def test_chromium_and_daemon_call_both_ways_with_video_and_screen_switched_live(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    browser_media: BrowserMedia,
) -> None:
    """The kiosk joins voice-only: Chromium gets no video track from it. `set-video` on asks
    Chromium (which offered) to renegotiate: the pattern arrives in the same tile, the audio
    plays on with no more concealment than before; off, the video stops again. Its screen,
    shared as a second track, then shows in a tile of its own."""
    with x_server(WIDTH, HEIGHT) as display, showing_pattern(display, WIDTH, HEIGHT):
        config = daemon_config(
            room_server,
            "kiosk",
            audio={"tone_frequency_hz": 440.0},
            video={"send_at_start": False},
            screen_share={"display": display, "fps": 15, "mouse": False, "second_track": True},
        )
        async with (
            running(config) as kiosk,
            browser(room_server, room_secret_file, browser_media, "chromium") as page,
        ):
            await voice_only_then_video_then_not(kiosk, page)
            assert await page.evaluate("document.querySelector('.tile.screen') === null")
            assert (await kiosk.execute(StartScreenShareCommand())).ok
            await eventually(lambda: screen_shown(page), 15)
            assert await tiles(page) == 2
            assert not page.exceptions and not await page.evaluate("vcall.errors")


async def voice_only_then_video_then_not(kiosk: Daemon, page: Page) -> None:
    # Chromium may scale its camera down while its bandwidth estimate ramps up.
    await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=None)
    await eventually(lambda: hears(page, "kiosk", 440.0), 10)
    assert "video" not in await inbound(page, "kiosk")
    assert await video_tracks(page) == 0

    concealed_before, total_before = audio_counters(await inbound(page, "kiosk"))
    assert (await kiosk.execute(SetVideoCommand(enabled=True))).ok
    await assert_page_receives(page, "kiosk", 440.0)
    concealed, total = audio_counters(await inbound(page, "kiosk"))
    share = (concealed - concealed_before) / (total - total_before)
    assert share < 0.02, f"Chromium concealed {share:.1%} of our audio across the switch"
    assert await tiles(page) == 1 and await video_tracks(page) == 1

    assert (await kiosk.execute(SetVideoCommand(enabled=False))).ok
    await asyncio.sleep(1.0)
    decoded = (await inbound(page, "kiosk"))["video"]["framesDecoded"]
    await asyncio.sleep(1.5)
    assert (await inbound(page, "kiosk"))["video"]["framesDecoded"] == decoded
    assert tone_ok(received(kiosk, "chromium"), BROWSER_TONE_HZ)


async def screen_shown(page: Page) -> bool:
    """The screen tile is shown with the pattern the X server shows, at its size."""
    if await page.evaluate("(document.querySelector('.tile.screen') || {hidden: true}).hidden"):
        return False
    picture = await element_picture(page, ".tile.screen video")
    return picture is not None and picture[0].shape == (HEIGHT, WIDTH) and bars_match(*picture)


async def test_two_daemons_and_chromium_all_receive_everyone(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    browser_media: BrowserMedia,
) -> None:
    tones = {"dev-a": 440.0, "dev-b": 1000.0, "chromium": BROWSER_TONE_HZ}
    a = daemon_config(room_server, "dev-a", audio={"tone_frequency_hz": tones["dev-a"]})
    b = daemon_config(room_server, "dev-b", audio={"tone_frequency_hz": tones["dev-b"]})
    async with (
        running(a) as alice,
        running(b) as bob,
        browser(room_server, room_secret_file, browser_media, "chromium") as page,
    ):
        daemons = {"dev-a": alice, "dev-b": bob}
        for name, daemon in daemons.items():
            for peer in tones.keys() - {name}:
                await assert_receives(daemon, peer, tones[peer], size=None, min_fps=15)
        for name in daemons:
            # Five VP8 streams on two cores: content and motion matter here, not full rate.
            await assert_page_receives(page, name, tones[name], min_fps=15)
        # Seconds into the call, Chromium may send each daemon what the daemon starts its
        # estimate at: aiortc's own estimate would have fallen to what this simple picture
        # needs (~400 kbit/s) and then crept up at ~8% a second.
        start = alice.outgoing.encodings["video"].bitrates.start
        targets = [
            entry["outbound"]["video"]["targetBitrate"]
            for entry in (await page.evaluate("vcall.stats()")).values()
        ]
        assert len(targets) == 2 and all(t >= 0.9 * start for t in targets), (targets, start)
        assert not page.exceptions


async def click(page: Page, button_id: str) -> None:
    await page.evaluate(f"document.getElementById({button_id!r}).click()")


async def test_browser_mute_leave_and_join_buttons(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    browser_media: BrowserMedia,
) -> None:
    async with (
        running(daemon_config(room_server, "kiosk")) as kiosk,
        browser(room_server, room_secret_file, browser_media, "chromium") as page,
    ):
        await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=None)

        await click(page, "mute-video")
        await asyncio.sleep(1.0)
        frozen = received(kiosk, "chromium")["video"]["stamped_frames"]
        await asyncio.sleep(1.5)
        assert received(kiosk, "chromium")["video"]["stamped_frames"] == frozen
        await click(page, "mute-video")
        await eventually(
            lambda: received(kiosk, "chromium")["video"]["stamped_frames"] > frozen + 15, 10
        )

        await click(page, "mute-audio")
        await eventually(lambda: received(kiosk, "chromium")["audio"]["level_dbfs"] < -60, 5)
        await click(page, "mute-audio")
        await eventually(lambda: tone_ok(received(kiosk, "chromium"), BROWSER_TONE_HZ), 5)

        await click(page, "leave")
        await eventually(lambda: not kiosk.state.current.participants, 5)
        await page.evaluate("document.getElementById('join').click()")
        await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=None)
        assert not page.exceptions


def audio_counters(stats: dict[str, Any]) -> tuple[float, float]:
    audio = stats.get("audio", {})
    return audio.get("concealedSamples", 0), audio.get("totalSamplesReceived", 0)


async def test_chromium_negotiates_red_and_both_hear_each_other_through_30_percent_loss(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    browser_media: BrowserMedia,
) -> None:
    """Loss on every datagram the kiosk sends and receives; Chromium conceals only what our
    RED copies and FEC could not bring, and we recover what Chromium's could."""
    config = daemon_config(
        room_server, "kiosk", video={"enabled": False}, audio={"tone_frequency_hz": 440.0}
    )
    async with (
        running(config) as kiosk,
        browser(room_server, room_secret_file, browser_media, "chromium") as page,
    ):
        await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=None)
        (pc,) = kiosk._backend.peer_connections().values()
        transceiver = next(t for t in pc.getTransceivers() if t.kind == "audio")
        assert transceiver._codecs[0].mimeType == "audio/red"  # what we send
        receiver = aiortc_hooks.receiver_of(transceiver)
        assert receiver is not None
        await eventually(lambda: receiver.buffer.counts["red_packets"] > 50, 5)  # Chromium's
        encoder = aiortc_hooks.encoder_of(transceiver)
        assert encoder is not None
        impair(pc, Loss(0.3, seed=3), outbound=True)
        # Chromium reports audio loss every 5 s or so, and this loss drops some reports too:
        # the copies follow the first report that arrives (measured: 2 to 17 s).
        await eventually(lambda: encoder.copies >= 2, 30)
        await asyncio.sleep(1)
        ours_before = dict(receiver.buffer.counts)
        concealed_before, total_before = audio_counters(await inbound(page, "kiosk"))
        await asyncio.sleep(15)
        concealed, total = audio_counters(await inbound(page, "kiosk"))
        share = (concealed - concealed_before) / (total - total_before)
        assert total - total_before > 15 * 48000 * 0.9
        assert share < 0.05, f"Chromium concealed {share:.1%} of our audio at 30 % loss"
        counts = {
            k: receiver.buffer.counts[k] - ours_before.get(k, 0) for k in receiver.buffer.counts
        }
        played = sum(counts.get(name, 0) for name in ("primary", "red", "fec", "concealed"))
        recovered = sum(counts.get(name, 0) for name in ("primary", "red", "fec"))
        # Chromium sends one RED copy, and libopus codes no FEC for its tone: 1 - 0.3^2 = 91 %
        # of frames at most, less the seconds before its copies follow the loss.
        assert recovered > 0.8 * played, counts
        assert counts.get("red", 0) > 0.1 * played, counts
        assert tone_ok(received(kiosk, "chromium"), BROWSER_TONE_HZ)
        assert not page.exceptions


async def test_a_failed_connection_to_chromium_is_replaced_within_the_call(
    room_server: RoomServer,
    room_secret_file: Path,
    daemon_config: Callable[..., VcalldConfig],
    browser_media: BrowserMedia,
) -> None:
    """The kiosk's ICE ends (consent expired); it asks Chromium, which made the offer, for
    the pair's next connection, and both see and hear each other on it."""
    config = daemon_config(room_server, "kiosk", audio={"tone_frequency_hz": 440.0})
    async with (
        running(config) as kiosk,
        browser(room_server, room_secret_file, browser_media, "chromium") as page,
    ):
        await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=(WIDTH, HEIGHT))
        await wait_for_inbound(page, "kiosk", 20)
        (first,) = kiosk._backend.peer_connections().values()
        await ice_connection(first).close()  # what our consent check does when consent expires

        def replaced() -> bool:
            connections = list(kiosk._backend.peer_connections().values())
            return connections != [first] and connections[0].connectionState == "connected"

        await eventually(replaced, 10)
        assert await page.evaluate("vcall.peers.values().next().value.number") == 1
        frames = received(kiosk, "chromium")["video"]["frames"]
        await assert_page_receives(page, "kiosk", 440.0)
        stats = received(kiosk, "chromium")
        assert stats["video"]["frames"] > frames + MIN_FPS * FPS_WINDOW_SECONDS
        assert tone_ok(stats, BROWSER_TONE_HZ)
        assert [p.connection for p in kiosk.state.current.participants] == ["connected"]

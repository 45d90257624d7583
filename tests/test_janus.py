"""Calls through a real Janus VideoRoom (Debian's janus, the repo's config) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chromium import (
    Page,
    chromium_page,
    element_picture,
    element_pitch,
    install_probe,
    write_pattern_clip,
    write_tone_wav,
)
from tests.helpers import assert_receives, eventually, received, running
from tests.janus import Janus, demo_pages, janus_call
from vcalld.config import VcalldConfig
from vcalld.daemon import Daemon
from vcalld.media.pattern import bars_match, read_stamp

pytestmark = pytest.mark.slow
BROWSER_TONE_HZ = 660.0
REMOTE_VIDEO = "video[id^=remotevideo]"
REMOTE_AUDIO = "audio[id^=remotevideo]"


async def test_two_daemons_see_and_hear_each_other_through_janus(
    janus: Janus, daemon_config: Callable[..., VcalldConfig]
) -> None:
    a = daemon_config(None, "dev-a", call=janus_call("1234"), audio={"tone_frequency_hz": 440.0})
    b = daemon_config(None, "dev-b", call=janus_call("1234"), audio={"tone_frequency_hz": 1000.0})
    async with running(a) as alice, running(b) as bob:
        await assert_receives(alice, "dev-b", 1000.0)
        await assert_receives(bob, "dev-a", 440.0)


def _bound(selector: str) -> str:
    """JS: whether the demo's jQuery click handler on `selector` is in place yet."""
    return f"!!(window.$ && $._data($({selector!r})[0], 'events')?.click)"


async def join_demo_room(page: Page, display: str) -> None:
    """Start, then register: what a person does on videoroomtest.html. Start is clicked
    exactly once; the same button then becomes Stop, which would end the session."""
    await eventually(lambda: page.evaluate(_bound("#start")), 15)
    await page.evaluate("$('#start').click()")
    await eventually(lambda: page.evaluate(_bound("#register")), 15)
    await page.evaluate(f"$('#username').val({display!r}); $('#register').click()")


def level(daemon: Daemon, name: str) -> float:
    return float(received(daemon, name).get("audio", {}).get("level_dbfs") or -100.0)


async def rendered_frames(page: Page) -> int:
    return int(
        await page.evaluate(
            f"document.querySelector({REMOTE_VIDEO!r})?.getVideoPlaybackQuality()"
            ".totalVideoFrames ?? 0"
        )
    )


async def test_janus_demo_page_in_chromium_and_daemon_see_and_hear_each_other(
    janus: Janus, daemon_config: Callable[..., VcalldConfig], tmp_path: Path
) -> None:
    clip = write_pattern_clip(tmp_path / "pattern.y4m", 640, 480, 30, frames=60)
    wav = write_tone_wav(tmp_path / "tone.wav", BROWSER_TONE_HZ, seconds=2)
    config = daemon_config(
        None, "kiosk", call=janus_call("1234"), audio={"tone_frequency_hz": 440.0}
    )
    async with (
        running(config) as kiosk,
        demo_pages() as base,
        chromium_page(
            f"{base}/videoroomtest.html?room=1234", video_clip=clip, audio_wav=wav
        ) as page,
    ):
        await join_demo_room(page, "chromium")
        await install_probe(page)
        # The demo asks for Chromium's audio processing, whose gain control takes some
        # seconds to bring a steady tone up to speech level.
        await eventually(lambda: level(kiosk, "chromium") > -30, 20)
        # The room caps publishers at 1 Mbit/s, so Chromium may send a smaller picture.
        await assert_receives(kiosk, "chromium", BROWSER_TONE_HZ, size=None)

        await eventually(lambda: rendered_frames(page), 20)
        before = await rendered_frames(page)
        await asyncio.sleep(3)
        assert await rendered_frames(page) - before >= 3 * 25
        stamps = []
        for _ in range(2):
            picture = await element_picture(page, REMOTE_VIDEO)
            assert picture is not None
            luma, u, v = picture
            assert luma.shape == (480, 640)
            assert bars_match(luma, u, v), "the kiosk's colour bars are not where they belong"
            stamps.append(read_stamp(luma))
            await asyncio.sleep(0.5)
        assert None not in stamps and stamps[0] != stamps[1], stamps
        pitch = await eventually(lambda: element_pitch(page, REMOTE_AUDIO), 10)
        assert pitch["frequency"] == pytest.approx(440.0, abs=10), pitch
        assert not page.exceptions

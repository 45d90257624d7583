"""Frame processors: the built-ins by what they do to content, a third party's through the same
entry points, chains in a real call (outgoing once, incoming per participant), and a processor
that raises taken out while the call goes on."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import pytest

from tests.helpers import BIN, eventually, received, recording_events, running, tone_ok, video_ok
from tests.test_config import problems, write
from vcalld.commands import parse_command
from vcalld.config import EX_CONFIG, VcalldConfig
from vcalld.errors import InvalidCommandError
from vcalld.media.frames import black_video
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import bars_match
from vcalld.media.processors.base import make_processor
from vcalld.media.sinks.stats import dominant_frequency, level_dbfs
from vcalld.plugins import PLUGIN_PATH_VARIABLE
from vcalld.room.server import RoomServer

EXAMPLE_PLUGIN = Path(__file__).parent / "example_plugin"


@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The third-party package of tests/example_plugin, found as if pip had installed it."""
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    yield


def tone_frames(frequency: float, rate: int, channels: int, count: int) -> Iterator[av.AudioFrame]:
    samples = rate // 50
    layout = "mono" if channels == 1 else "stereo"
    for index in range(count):
        t = (np.arange(samples) + index * samples) / rate
        wave = (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(wave, channels).reshape(1, -1), format="s16", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, index * samples, Fraction(1, rate)
        yield frame


@pytest.mark.parametrize(
    ("semitones", "rate", "channels"), [(12, 48000, 1), (-5, 48000, 2), (4, 16000, 1)]
)
def test_the_voice_changer_shifts_pitch_and_keeps_time(
    semitones: float, rate: int, channels: int
) -> None:
    changer = make_processor("voice-changer", {"semitones": semitones})
    frames = list(tone_frames(440, rate, channels, 100))
    changed = [cast(av.AudioFrame, changer.process(frame)) for frame in frames]
    assert [(f.samples, f.pts, f.sample_rate) for f in changed] == [
        (f.samples, f.pts, f.sample_rate) for f in frames
    ]
    out = np.concatenate([f.to_ndarray().reshape(-1, channels) for f in changed])[-rate // 2 :]
    for channel in range(channels):
        signal = out[:, channel] / 32768
        assert dominant_frequency(signal, rate) == pytest.approx(
            440 * 2 ** (semitones / 12), rel=0.01
        )
        assert level_dbfs(signal) > -20  # the tone's own is -13.5 dBFS


def skin_frame(width: int = 1280, height: int = 720, skin: bool = True) -> av.VideoFrame:
    """Left half flat luma 150 with noise (sd 6), right half 60: a noisy cheek by a dark edge."""
    rng = np.random.default_rng(7)
    luma = np.where(np.arange(width)[None, :] < width // 2, 150.0, 60.0)
    luma = np.clip(luma + rng.normal(0, 6, (height, width)), 0, 255).astype(np.uint8)
    cb, cr = (110, 150) if skin else (160, 100)  # skin tone, or a blue shirt
    chroma = (
        np.full((height // 2, width // 2), cb, np.uint8),
        np.full((height // 2, width // 2), cr, np.uint8),
    )
    planes = np.concatenate([luma.reshape(-1), chroma[0].reshape(-1), chroma[1].reshape(-1)])
    return av.VideoFrame.from_ndarray(planes.reshape(height * 3 // 2, width), format="yuv420p")


def luma_of(frame: Any) -> np.ndarray:
    return picture_plane(frame, 0).astype(np.float64)


def video(frame: Any) -> av.VideoFrame:
    assert isinstance(frame, av.VideoFrame)
    return frame


def test_the_beauty_filter_smooths_skin_and_keeps_its_edges() -> None:
    beauty = make_processor("beauty", {})
    before = skin_frame()
    after = video(beauty.process(before))
    cheek = (slice(100, 600), slice(100, 500))
    noise_before, noise_after = luma_of(before)[cheek].var(), luma_of(after)[cheek].var()

    def edge(frame: Any) -> float:
        luma = luma_of(frame)
        return float(luma[:, 636:640].mean() - luma[:, 640:644].mean())

    assert noise_after < 0.2 * noise_before, (noise_before, noise_after)
    assert edge(after) > 0.9 * edge(before), (edge(before), edge(after))
    assert np.array_equal(picture_plane(after, 1), picture_plane(before, 1))
    shirt = skin_frame(skin=False)
    assert np.array_equal(luma_of(beauty.process(shirt)), luma_of(shirt))  # skin only
    assert beauty.process(before) is not before
    assert make_processor("beauty", {"strength": 0}).process(before) is before


def test_the_overlay_sets_text_and_the_clock_in_its_corner_and_a_logo_in_another(
    tmp_path: Path,
) -> None:
    logo = tmp_path / "logo.png"
    red = np.zeros((40, 80, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 255
    with av.open(str(logo), "w") as container:
        stream: Any = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 80, 40, "rgba"
        for packet in stream.encode(av.VideoFrame.from_ndarray(red, format="rgba")):
            container.mux(packet)
    overlay = make_processor("overlay", {"text": "Reception", "clock": True, "logo": str(logo)})
    first = video(overlay.process(black_video(1280, 720)))
    time.sleep(1.1)
    second = overlay.process(black_video(1280, 720))
    luma, cr = luma_of(first), picture_plane(first, 2).astype(np.float64)
    bottom_left, top_left = luma[620:, :640], luma[:360, :640]
    text_changed = not np.array_equal(luma_of(second)[620:, :640], bottom_left)
    assert (bottom_left > 200).sum() > 500  # white letters
    assert top_left.max() == 16  # nothing else: black
    assert cr[:60, 560:].max() > 200  # red in the top right: the logo (Cr ~240)
    assert cr[180:, :].max() <= 129
    assert text_changed  # the clock ticked


def test_processor_config_names_the_key_and_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[processors.outgoing_video]]\n"
        'name = "voice-changer"\n'
        "[[processors.outgoing_audio]]\n"
        'name = "voice-changer"\n'
        "options = { semitones = 30 }\n"
        "[[processors.incoming_video]]\n"
        'name = "glitter"\n',
    )
    found = problems(path)
    assert found[0].startswith(f"{path}:2: processors.outgoing_video[0].name: 'voice-changer' ")
    assert "is an audio processor, not video" in found[0]
    assert found[1].startswith(f"{path}:3: processors.outgoing_audio[0]: ")
    assert (
        "options of 'voice-changer': semitones: Input should be less than or equal to 12"
        in (found[1])
    )
    assert found[2].startswith(f"{path}:7: processors.incoming_video[0].name: no processor")
    assert "(installed: beauty, overlay, voice-changer)" in found[2]


async def test_chains_run_in_a_call_and_a_processor_that_raises_is_taken_out(
    example_plugin: None,
    room_server: RoomServer,
    daemon_config: Callable[..., VcalldConfig],
) -> None:
    sender = daemon_config(
        room_server,
        "dev-a",
        processors={
            "outgoing_video": [{"name": "negative"}],
            "outgoing_audio": [
                {"name": "voice-changer", "options": {"semitones": 12}},
                {"name": "fail-after", "options": {"frames": 100}},
            ],
        },
    )
    receiver = daemon_config(
        room_server, "dev-b", processors={"incoming_video": [{"name": "negative"}]}
    )
    async with running(sender) as a, running(receiver) as b, recording_events(a) as events:
        outgoing = a.outgoing.local_media().video
        assert outgoing is not None
        sent = await outgoing().recv()
        # The negative goes out once, and b's own chain turns it back: b sees the pattern.
        await eventually(lambda: video_ok(received(b, "dev-a")), 20)
        await eventually(lambda: tone_ok(received(b, "dev-a"), 880), 10)
        await eventually(lambda: a.state.current.disabled_processors, 10)
        disabled = a.state.current.disabled_processors
        frames_then = received(b, "dev-a")["audio"]["frames"]
        await eventually(lambda: received(b, "dev-a")["audio"]["frames"] > frames_then + 50, 5)
        still = received(b, "dev-a")
    planes = [picture_plane(video(sent), index) for index in range(3)]
    assert not bars_match(*planes)  # what a sends is the negative...
    assert bars_match(*(255 - plane for plane in planes))  # ...of the pattern
    assert [(d.chain, d.name, d.participant) for d in disabled] == [
        ("outgoing_audio", "fail-after", None)
    ]
    assert disabled[0].error == "RuntimeError: the example fails, as asked"
    assert [e for e in events if e["event"] == "processor-disabled"] == [
        {"event": "processor-disabled", **disabled[0].model_dump()}
    ]
    assert tone_ok(still, 880)  # the voice changer goes on, and the call


async def test_set_processors_changes_a_chain_live_and_names_a_bad_field(
    room_server: RoomServer, daemon_config: Callable[..., VcalldConfig]
) -> None:
    async with (
        running(daemon_config(room_server, "dev-a", video={"enabled": False})) as a,
        running(daemon_config(room_server, "dev-b", video={"enabled": False})) as b,
    ):
        await eventually(lambda: tone_ok(received(b, "dev-a"), 440), 20)
        higher = parse_command(
            "set-processors",
            {
                "chain": "outgoing_audio",
                "processors": [{"name": "voice-changer", "options": {"semitones": 12}}],
            },
        )
        assert (await a.execute(higher)).ok
        await eventually(lambda: tone_ok(received(b, "dev-a"), 880), 5)
        lower = parse_command(
            "set-processors",
            {
                "chain": "incoming_audio",
                "processors": [{"name": "voice-changer", "options": {"semitones": -12}}],
            },
        )
        assert (await b.execute(lower)).ok  # for the participant already there
        await eventually(lambda: tone_ok(received(b, "dev-a"), 440), 5)
        both = a.state.current.processors, b.state.current.processors
        emptied = parse_command("set-processors", {"chain": "incoming_audio", "processors": []})
        assert (await b.execute(emptied)).ok
        await eventually(lambda: tone_ok(received(b, "dev-a"), 880), 5)
    assert both[0]["outgoing_audio"] == ["voice-changer"] and both[0]["incoming_audio"] == []
    assert both[1]["incoming_audio"] == ["voice-changer"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"chain": "sideways", "processors": []}, "chain: Input should be 'outgoing_video'"),
        (
            {"chain": "outgoing_audio", "processors": [{"name": "beauty"}]},
            "processors: [0].name: 'beauty' is a video processor, not audio",
        ),
        (
            {"chain": "incoming_video", "processors": [{"name": "glitter"}]},
            "processors: [0].name: no processor 'glitter' is installed",
        ),
        (
            {"chain": "outgoing_video", "processors": [{"name": "beauty", "options": {"x": 1}}]},
            "processors: [0]: options of 'beauty': x: Extra inputs are not permitted",
        ),
    ],
)
def test_malformed_set_processors_names_the_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCommandError) as raised:
        parse_command("set-processors", arguments)
    assert str(raised.value).startswith(message), raised.value


def test_a_plugin_installed_with_pip_target_is_found_through_the_plugin_path(
    tmp_path: Path,
) -> None:
    """What a device's owner does with the Debian package, whose environment has no pip:
    `pip install --no-deps --target` into a plugin directory (offline here), which
    VCALLD_PLUGIN_PATH (or /usr/local/lib/vcalld/plugins) puts at the end of sys.path."""
    plugins, source = tmp_path / "plugins", tmp_path / "source"  # pip builds in the source
    shutil.copytree(EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("*.dist-info"))
    pip = ["/usr/bin/python3", "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    pip += ["--no-build-isolation", "--target", str(plugins), str(source)]
    subprocess.run(pip, check=True, cwd=tmp_path)
    config = tmp_path / "vcalld.toml"
    config.write_text('[[processors.outgoing_video]]\nname = "negative"\n')

    def check_config(plugin_path: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "vcalld"), "check-config", str(config)]
        environment = {**os.environ, PLUGIN_PATH_VARIABLE: plugin_path}
        return subprocess.run(command, capture_output=True, text=True, env=environment, check=False)

    missing = check_config(str(tmp_path / "elsewhere"))
    found = check_config(f"{tmp_path / 'elsewhere'}{os.pathsep}{plugins}")
    assert missing.returncode == EX_CONFIG and "no processor 'negative'" in missing.stderr
    assert found.returncode == 0, found.stderr

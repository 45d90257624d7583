"""Debian's headless Chromium as a real WebRTC peer, driven over the DevTools protocol.

Raw CDP over aiohttp needs no driver binary and no version matching. Chromium's fake camera and
microphone play files we write (the vcalld test pattern and a tone), so whoever receives them
can check content, not just arrival. Flags and their reasons: ../shared/notes/interop.md §1.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from vcalld.media.pattern import PatternPainter, Plane

BINARY = Path("/usr/lib/chromium/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--password-store=basic",
    "--use-mock-keychain",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # Loopback is the only network in the test namespace; Chromium ignores it unless told.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--remote-debugging-port=0",
)
STARTUP_SECONDS = 20.0
CALL_SECONDS = 30.0


@dataclass(frozen=True)
class AlsaDevices:
    """ALSA PCMs for Chromium's microphone and speaker, defined in `config_path`."""

    input: str
    output: str
    config_path: str


class PageError(RuntimeError):
    """JavaScript evaluated in the page threw."""


def write_pattern_clip(path: Path, width: int, height: int, fps: int, frames: int) -> Path:
    """A Y4M loop of the vcalld test pattern, for Chromium's fake camera."""
    painter = PatternPainter(width, height)
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for counter in range(frames):
            clip.write(b"FRAME\n" + painter.paint(counter).tobytes())
    return path


def write_tone_wav(path: Path, frequency_hz: float, seconds: int, sample_rate: int = 48000) -> Path:
    """A mono 16-bit tone whose loop point falls on a whole period, for the fake microphone."""
    t = np.arange(seconds * sample_rate) / sample_rate
    return write_wav(path, 0.3 * np.sin(2 * np.pi * frequency_hz * t), sample_rate)


def write_wav(path: Path, samples: np.ndarray[Any, Any], sample_rate: int) -> Path:
    """Mono samples in -1..1 as a 16-bit WAV file, which Chromium's fake microphone plays."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes((32767 * samples).astype("<i2").tobytes())
    return path


class Page:
    """One page target; `evaluate` awaits promises, so tests can `await vcall.stats()`."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, browser_pid: int) -> None:
        self._socket = socket
        self.browser_pid = browser_pid
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.exceptions: list[str] = []

    async def read_messages(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(json.dumps(data["params"]["exceptionDetails"])[:2000])
        for future in self._pending.values():
            future.set_exception(ConnectionError("DevTools connection closed"))

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._socket.send_json({"id": command_id, "method": method, "params": params})
        reply = await asyncio.wait_for(future, CALL_SECONDS)
        if "error" in reply:
            raise PageError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise PageError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it picked into the profile; polling it avoids port races."""
    marker = profile / "DevToolsActivePort"
    async with asyncio.timeout(STARTUP_SECONDS):
        while not marker.exists() or not marker.read_text().strip():
            if process.returncode is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.05)
    return int(marker.read_text().split()[0])


@asynccontextmanager
async def chromium_page(
    url: str,
    *,
    video_clip: Path | None = None,
    audio_wav: Path | None = None,
    alsa: AlsaDevices | None = None,
) -> AsyncIterator[Page]:
    """Launch Chromium on `url` and yield its page. Its media are fake devices playing the
    given files, or with `alsa` its real ALSA code on the named PCMs (no fake devices)."""
    profile = Path(tempfile.mkdtemp(prefix="vcalld-chromium-"))
    flags = [*FLAGS, f"--user-data-dir={profile}"]
    environment = None
    if alsa is None:
        flags.append("--use-fake-device-for-media-stream=fps=30")
    else:
        # With no PulseAudio server Chromium falls back to ALSA by itself.
        flags += [f"--alsa-input-device={alsa.input}", f"--alsa-output-device={alsa.output}"]
        environment = {**os.environ, "ALSA_CONFIG_PATH": alsa.config_path}
    if video_clip is not None:
        flags.append(f"--use-file-for-fake-video-capture={video_clip}")
    if audio_wav is not None:
        flags.append(f"--use-file-for-fake-audio-capture={audio_wav}")
    process = await asyncio.create_subprocess_exec(
        str(BINARY),
        *flags,
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=environment,
    )
    try:
        port = await _devtools_port(profile, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(page_url, max_msg_size=0) as socket:
                page = Page(socket, process.pid)
                reader = asyncio.create_task(page.read_messages(), name="devtools-reader")
                try:
                    await page.call("Runtime.enable")
                    yield page
                finally:
                    reader.cancel()
                    with suppress(asyncio.CancelledError):
                        await reader
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(profile, ignore_errors=True)


# Reads what a remote participant's <video> shows as BT.601 limited-range yuv420p planes, so the
# daemon's own pattern recogniser can check Chromium's picture, and finds the dominant pitch of
# their audio with WebAudio. Both are test instruments, so they live here, not in client.js.
PROBE_SCRIPT = """
window.vcallProbe = {
  peer(name) {
    for (const peer of vcall.peers.values()) if (peer.name === name) return peer;
    return null;
  },
  picture(name) {
    const peer = this.peer(name);
    return this.pictureOf(peer && peer.tile.querySelector("video"));
  },
  pictureOf(video) {
    if (!video || !video.videoWidth) return null;
    const width = video.videoWidth, height = video.videoHeight;
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext("2d");
    context.drawImage(video, 0, 0);
    const rgba = context.getImageData(0, 0, width, height).data;
    const y = new Uint8Array(width * height);
    const u = new Uint8Array((width / 2) * (height / 2));
    const v = new Uint8Array(u.length);
    for (let row = 0; row < height; row++) {
      for (let column = 0; column < width; column++) {
        const i = (row * width + column) * 4, r = rgba[i], g = rgba[i + 1], b = rgba[i + 2];
        y[row * width + column] = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255;
        if (row % 2 === 0 && column % 2 === 0) {
          const j = (row / 2) * (width / 2) + column / 2;
          u[j] = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255;
          v[j] = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255;
        }
      }
    }
    const base64 = (bytes) => {
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
      return btoa(text);
    };
    return { width, height, y: base64(y), u: base64(u), v: base64(v) };
  },
  async pitch(name) {
    const peer = this.peer(name);
    return this.pitchOf(peer && peer.stream);
  },
  async pitchOf(stream) {
    if (!stream || !stream.getAudioTracks().length) return null;
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 16384;
    context.createMediaStreamSource(stream).connect(analyser);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const spectrum = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(spectrum);
    await context.close();
    let peak = 1;
    for (let i = 2; i < spectrum.length; i++) if (spectrum[i] > spectrum[peak]) peak = i;
    return { frequency: (peak * context.sampleRate) / analyser.fftSize, level_db: spectrum[peak] };
  },
};
"""


async def install_probe(page: Page) -> None:
    await page.evaluate(PROBE_SCRIPT)


async def remote_picture(page: Page, name: str) -> tuple[Plane, Plane, Plane] | None:
    """(Y, U, V) planes of what the page shows for participant `name`, or None before video."""
    return await _picture(page, f"vcallProbe.picture({json.dumps(name)})")


async def element_picture(page: Page, selector: str) -> tuple[Plane, Plane, Plane] | None:
    """The same for the first <video> matching `selector` (pages other than our client's)."""
    return await _picture(page, f"vcallProbe.pictureOf(document.querySelector({selector!r}))")


async def _picture(page: Page, expression: str) -> tuple[Plane, Plane, Plane] | None:
    picture = await page.evaluate(expression)
    if picture is None:
        return None
    width, height = picture["width"], picture["height"]

    def plane(key: str, rows: int, columns: int) -> Plane:
        return np.frombuffer(base64.b64decode(picture[key]), np.uint8).reshape(rows, columns)

    return (
        plane("y", height, width),
        plane("u", height // 2, width // 2),
        plane("v", height // 2, width // 2),
    )


async def remote_pitch(page: Page, name: str) -> dict[str, float] | None:
    """Dominant frequency (Hz) and its level (dB) of what the page hears from `name`."""
    result: dict[str, float] | None = await page.evaluate(f"vcallProbe.pitch({json.dumps(name)})")
    return result


async def element_pitch(page: Page, selector: str) -> dict[str, float] | None:
    """The same for the stream of the first media element matching `selector`."""
    result: dict[str, float] | None = await page.evaluate(
        f"vcallProbe.pitchOf((document.querySelector({selector!r}) || {{}}).srcObject)"
    )
    return result

"""Chromium's echo canceller in the same room as the daemon's, as the bench's peer.

Debian's headless Chromium runs its own ALSA code on the pipe card (no fake devices): its page
plays the far end to the speaker and records what `getUserMedia` delivers from the microphone
with echo cancellation on (WebRTC's AEC3; noise suppression and gain control off, as in the
daemon's "echo cancellation" row). The room, the talker and the measurement are those of
`tests.echo`, so the rows compare like with like.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import numpy as np

from tests.chromium import AlsaDevices, chromium_page
from tests.echo import DOUBLE_TALK, EchoResult, Heard, Signal, measure
from tests.helpers import eventually
from tests.soundcard import PipeSoundCard, Room

RATE = 48000
FAR_STARTS_AT = 2.0  # seconds after the room starts: Chromium opens its devices meanwhile
OUT_LEADS_BY = 0.2  # seconds of recording kept before the far end, so `measure` finds the lag
# Chromium reads its microphone 10 ms at a time (and blocks in the read): written 20 ms at a
# time, every other read found the pipe empty, its audio thread stalled, and AEC3 reset on
# render buffer overruns (4 times in 10 s; ERLE 5-13 dB instead of 53-68 dB).
MIC_CHUNK_SECONDS = 0.01

# The recorder is an AudioWorklet: it sees every 128-frame render quantum of the processed
# microphone, where a ScriptProcessor or MediaRecorder would resample, buffer or encode.
PAGE_SCRIPT = """
const RECORDER = `
registerProcessor("recorder", class extends AudioWorkletProcessor {
  process(inputs) {
    if (inputs[0].length) this.port.postMessage(inputs[0][0].slice());
    return true;
  }
});`;

window.room = {
  async start(echoCancellation) {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    this.context = new AudioContext({ sampleRate: 48000 });
    // A file:// page has an opaque origin, from which a blob: module would not load.
    const module = "data:text/javascript," + encodeURIComponent(RECORDER);
    await this.context.audioWorklet.addModule(module);
    const recorder = new AudioWorkletNode(this.context, "recorder");
    this.chunks = [];
    const first = new Promise((resolve) => {
      recorder.port.onmessage = (event) => { this.chunks.push(event.data); resolve(); };
    });
    this.context.createMediaStreamSource(stream).connect(recorder).connect(this.context.destination);
    await first;
  },
  play(base64) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const samples = new Int16Array(bytes.buffer);
    const buffer = this.context.createBuffer(1, samples.length, 48000);
    buffer.getChannelData(0).set(Float32Array.from(samples, (s) => s / 32768));
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start();
  },
  stop() {
    const total = this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const out = new Int16Array(total);
    let at = 0;
    for (const chunk of this.chunks) {
      for (const sample of chunk) out[at++] = Math.max(-1, Math.min(1, sample)) * 32767;
    }
    let text = "";
    const bytes = new Uint8Array(out.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  },
};
"""


async def chromium_talk_in_room(
    card: PipeSoundCard, room: Room, far: Signal, near: Signal
) -> EchoResult:
    """`tests.echo.talk_in_room` with Chromium as the hands-free device."""
    card.plug("mic")
    card.plug("speaker")
    page = card.directory / "room.html"
    page.write_text("<!doctype html><title>room</title>")
    devices = AlsaDevices(card.CLIENT_MIC, card.CLIENT_SPEAKER, card.config_path)
    far_base64 = base64.b64encode((far * 32767).astype("<i2").tobytes()).decode()
    near_at = FAR_STARTS_AT + len(far) / RATE - DOUBLE_TALK
    chunk = int(RATE * MIC_CHUNK_SECONDS)
    try:
        async with chromium_page(page.as_uri(), alsa=devices) as chromium:
            await eventually(lambda: chromium.evaluate("document.title === 'room'"), 10)
            await chromium.evaluate(PAGE_SCRIPT)
            echoing = card.echoing(RATE, 2, room, near, near_at, chunk_seconds=MIC_CHUNK_SECONDS)
            with echoing as written:
                started = time.monotonic()
                await chromium.evaluate("room.start(true)")
                recording_from = len(written)
                await asyncio.sleep(started + FAR_STARTS_AT - time.monotonic())
                far_from = len(written)
                await chromium.evaluate(f"room.play({json.dumps(far_base64)})")
                await asyncio.sleep(started + near_at + len(near) / RATE + 0.5 - time.monotonic())
                recorded = base64.b64decode(await chromium.evaluate("room.stop()"))
    finally:
        card.close()
    out = np.frombuffer(recorded, "<i2") / 32768.0
    out = out[max(0, (far_from - recording_from) * chunk - int(OUT_LEADS_BY * RATE)) :]
    heard = written[far_from:]
    echo = np.concatenate([parts[0] for parts in heard])
    spoken = np.concatenate([parts[1] for parts in heard])
    return measure(Heard(echo, spoken, RATE), out, RATE)

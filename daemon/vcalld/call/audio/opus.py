"""libopus through ctypes: FFmpeg's wrapper can neither decode FEC nor conceal a lost packet,
and cannot change packet-loss or bitrate settings on an open encoder."""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

SAMPLE_RATE = 48000
MAX_PACKET_BYTES = 1275  # RFC 6716 section 3.2.1
MAX_FRAME_SAMPLES = 5760  # 120 ms at 48 kHz
DTX_PACKET_BYTES = 2  # with DTX on, libopus marks a frame not worth sending this way

_APPLICATION = {"voip": 2048, "audio": 2049}
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_GET_LOOKAHEAD = 4027


class OpusError(RuntimeError):
    pass


@cache
def _library() -> ctypes.CDLL:
    """Debian's libopus0 (1.3 in Debian 12): the one soname on every architecture we ship."""
    lib = ctypes.CDLL("libopus.so.0")
    c_int, c_int32, c_void_p = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    pointer_int = ctypes.POINTER(c_int)
    bytes_in = ctypes.c_char_p
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [c_int]
    lib.opus_encoder_create.restype = c_void_p
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, pointer_int]
    lib.opus_encoder_destroy.argtypes = [c_void_p]
    lib.opus_encode.restype = c_int32
    lib.opus_encode.argtypes = [c_void_p, c_void_p, c_int, c_void_p, c_int32]
    lib.opus_decoder_create.restype = c_void_p
    lib.opus_decoder_create.argtypes = [c_int32, c_int, pointer_int]
    lib.opus_decoder_destroy.argtypes = [c_void_p]
    lib.opus_decode.restype = c_int
    lib.opus_decode.argtypes = [c_void_p, bytes_in, c_int32, c_void_p, c_int, c_int]
    lib.opus_packet_get_nb_samples.restype = c_int
    lib.opus_packet_get_nb_samples.argtypes = [bytes_in, c_int32, c_int32]
    lib.opus_packet_parse.restype = c_int
    lib.opus_packet_parse.argtypes = [
        bytes_in, c_int32, c_void_p, ctypes.POINTER(ctypes.c_void_p * 48),
        ctypes.POINTER(ctypes.c_int16 * 48), c_void_p,
    ]  # fmt: skip
    lib.opus_get_version_string.restype = ctypes.c_char_p
    return lib


def version() -> str:
    return str(_library().opus_get_version_string().decode())


def _check(result: int, doing: str) -> int:
    if result < 0:
        raise OpusError(f"{doing}: {_library().opus_strerror(result).decode()}")
    return result


def frame_samples(packet: bytes) -> int:
    """Samples per channel at 48 kHz that `packet` decodes to; OpusError if it is no Opus."""
    return _check(_library().opus_packet_get_nb_samples(packet, len(packet), SAMPLE_RATE), "packet")


def is_dtx(packet: bytes) -> bool:
    """A frame of silence under DTX: the decoder makes comfort noise until the next packet."""
    return len(packet) <= DTX_PACKET_BYTES


def has_fec(packet: bytes) -> bool:
    """Whether `packet` carries SILK LBRR data, i.e. a copy of the frame before it.

    The SILK header's first range-coded symbols have probability 1/2, so they are the
    first frame's top bits: a VAD flag per SILK frame, then the LBRR flag, per channel.
    Debian 12's libopus (1.3) has no opus_packet_has_lbrr yet.
    """
    if not packet or packet[0] & 0x80:  # empty, or CELT only: no SILK layer
        return False
    frames = (ctypes.c_void_p * 48)()
    sizes = (ctypes.c_int16 * 48)()
    count = _library().opus_packet_parse(
        packet, len(packet), None, ctypes.byref(frames), ctypes.byref(sizes), None
    )
    if count <= 0 or sizes[0] <= 0 or frames[0] is None:
        return False
    first = ctypes.cast(frames[0], ctypes.POINTER(ctypes.c_ubyte))[0]
    silk_frames = max(1, ((packet[0] >> 3) & 3) if packet[0] >> 3 < 12 else 1)
    stereo = bool(packet[0] & 0x4)
    lbrr = (first >> (7 - silk_frames)) & 1
    if stereo:
        lbrr |= (first >> (6 - 2 * silk_frames)) & 1
    return bool(lbrr)


class Encoder:
    """An Opus encoder whose bitrate, FEC and expected loss can change between packets."""

    def __init__(
        self, channels: int, *, bitrate: int, application: str = "voip", fec: bool, dtx: bool
    ) -> None:
        lib = _library()
        error = ctypes.c_int()
        self._state = lib.opus_encoder_create(
            SAMPLE_RATE, channels, _APPLICATION[application], ctypes.byref(error)
        )
        _check(error.value, "creating the Opus encoder")
        self.channels = channels
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        self._ctl(_SET_BITRATE, bitrate)
        self._ctl(_SET_INBAND_FEC, int(fec))
        self._ctl(_SET_DTX, int(dtx))
        self._ctl(_SET_COMPLEXITY, 9)
        self.lookahead = self._get(_GET_LOOKAHEAD)

    def set_expected_loss(self, percent: int) -> None:
        """libopus spends FEC bits in proportion to this; 0 sends none."""
        self._ctl(_SET_PACKET_LOSS_PERC, max(0, min(100, percent)))

    def set_bitrate(self, bitrate: int) -> None:
        self._ctl(_SET_BITRATE, bitrate)

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet from interleaved int16 `pcm` of 2.5-60 ms."""
        samples = len(pcm) // self.channels
        length = _library().opus_encode(
            self._state, pcm.ctypes.data, samples, self._out, MAX_PACKET_BYTES
        )
        return self._out.raw[: _check(length, "encoding")]

    def close(self) -> None:
        if self._state:
            _library().opus_encoder_destroy(self._state)
            self._state = None

    __del__ = close

    def _ctl(self, request: int, value: int) -> None:
        ctl = _library().opus_encoder_ctl
        _check(ctl(ctypes.c_void_p(self._state), request, ctypes.c_int32(value)), "setting")

    def _get(self, request: int) -> int:
        value = ctypes.c_int32()
        ctl = _library().opus_encoder_ctl
        _check(ctl(ctypes.c_void_p(self._state), request, ctypes.byref(value)), "getting")
        return value.value


class Decoder:
    """An Opus decoder that can also decode a packet's FEC copy and conceal a lost packet."""

    def __init__(self, channels: int = 2) -> None:
        lib = _library()
        error = ctypes.c_int()
        self._state = lib.opus_decoder_create(SAMPLE_RATE, channels, ctypes.byref(error))
        _check(error.value, "creating the Opus decoder")
        self.channels = channels
        self._pcm = np.zeros(MAX_FRAME_SAMPLES * channels, np.int16)

    def decode(self, packet: bytes) -> np.ndarray:
        return self._run(packet, MAX_FRAME_SAMPLES, fec=False)

    def decode_fec(self, next_packet: bytes, samples: int) -> np.ndarray:
        """The frame before `next_packet`, from the copy (LBRR) it carries."""
        return self._run(next_packet, samples, fec=True)

    def conceal(self, samples: int) -> np.ndarray:
        """libopus's packet loss concealment: a continuation of what was decoded last."""
        return self._run(None, samples, fec=False)

    def close(self) -> None:
        if self._state:
            _library().opus_decoder_destroy(self._state)
            self._state = None

    __del__ = close

    def _run(self, packet: bytes | None, samples: int, *, fec: bool) -> np.ndarray:
        length = len(packet) if packet else 0
        decoded = _library().opus_decode(
            self._state, packet, length, self._pcm.ctypes.data, samples, int(fec)
        )
        count = _check(decoded, "decoding") * self.channels
        return self._pcm[:count].copy()

"""H.264 sent as it was encoded: the parameter sets go before every IDR, so a decoder can
start at any of them, and the SDP's profile-level-id is read from the stream's SPS."""

from __future__ import annotations

from typing import Any

import av
import pytest
from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from tests.h264_stream import H264Camera
from vcalld.media.h264 import (
    NAL_AUD,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    ParameterSets,
    annex_b,
    nal_type,
    nal_types,
    nal_units,
    profile_level_id,
)
from vcalld.media.layout import picture_plane
from vcalld.media.pattern import read_stamp

WIDTH, HEIGHT, FPS = 320, 240, 25
AUD = bytes([NAL_AUD, 0xF0])


def access_units(frames: int, keyframes_at: tuple[int, ...]) -> list[bytes]:
    camera = H264Camera(WIDTH, HEIGHT, FPS)
    units = []
    for index in range(frames):
        if index in keyframes_at:
            camera.request_keyframe()
        units += [bytes(packet) for packet in camera.encode()]
    return units


def stamps_decoded(stream: list[bytes]) -> list[int | None]:
    decoder = av.CodecContext.create("h264", "r")
    pictures: list[Any] = []
    for data in stream:
        try:
            pictures += decoder.decode(av.Packet(data))
        except av.error.InvalidDataError:
            continue  # what FFmpeg says of slices whose parameter sets it never saw
    return [read_stamp(picture_plane(picture, 0)) for picture in pictures]


def test_every_idr_gets_the_parameter_sets_so_a_decoder_can_start_at_any() -> None:
    raw = access_units(30, keyframes_at=(10, 20))
    sets = ParameterSets()
    completed = [sets.complete(unit) for unit in raw]
    for original, unit in zip(raw, completed, strict=True):
        types = [nal_type(u) for u in nal_units(unit)]
        if NAL_IDR in types:
            assert types.index(NAL_SPS) < types.index(NAL_PPS) < types.index(NAL_IDR), types
        else:
            assert unit is original  # left as it was
    assert sets.inserted == 2  # the first IDR had them
    assert stamps_decoded(completed[10:]) == list(range(10, 30))
    assert stamps_decoded(raw[10:]) == [], "without them, the IDR cannot be decoded"


def test_the_parameter_sets_go_after_an_access_unit_delimiter() -> None:
    first, *_, idr = access_units(11, keyframes_at=(10,))
    sets = ParameterSets()
    sets.complete(first)
    delimited = annex_b([AUD, *nal_units(idr)])
    types = [nal_type(u) for u in nal_units(sets.complete(delimited))]
    assert types[:3] == [NAL_AUD, NAL_SPS, NAL_PPS] and NAL_IDR in types


@pytest.mark.parametrize(
    ("profile", "expected"),
    [("baseline", H264Profile.PROFILE_CONSTRAINED_BASELINE), ("high", H264Profile.PROFILE_HIGH)],
)
def test_the_profile_level_id_is_read_from_the_sps(profile: str, expected: H264Profile) -> None:
    camera = H264Camera(WIDTH, HEIGHT, FPS, profile=profile)
    sets = ParameterSets()
    assert sets.profile_level_id is None
    sets.complete(bytes(camera.encode()[0]))
    assert sets.sps is not None
    value = profile_level_id(sets.sps)
    assert value == sets.profile_level_id == sets.sps[1:4].hex()
    assert parse_h264_profile_level_id(value)[0] is expected
    with pytest.raises(ValueError, match="not a sequence parameter set"):
        profile_level_id(AUD + b"\x00\x00")


def test_nal_types_are_read_without_splitting_the_units() -> None:
    """The same types as the units' own headers, with 3- and 4-byte start codes, and none
    for the zero byte of a 4-byte start code that follows a 3-byte one."""
    for unit in access_units(12, keyframes_at=(0, 6)):
        assert nal_types(unit) == {nal_type(u) for u in nal_units(unit)}
    idr = next(u for u in access_units(1, keyframes_at=(0,)))
    three_byte = b"\x00\x00\x01" + AUD + b"\x00\x00\x01" + idr.removeprefix(b"\x00\x00\x00\x01")
    assert nal_types(three_byte) == {NAL_AUD} | nal_types(idr)
    assert nal_types(b"\x00\x00\x01\x00\x00\x00\x01" + AUD) == {NAL_AUD}

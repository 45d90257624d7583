"""H.264 access units as a peer needs them, for video sent as it was encoded (passthrough).

A peer that joins, or recovers from loss, starts decoding at an IDR, and needs the sequence
and picture parameter sets (SPS, PPS) before it; cameras and encoders often send them once
at the start, or only with some IDRs. The SPS also names the stream's profile and level,
which the SDP must agree with.
"""

from __future__ import annotations

import re

NAL_SLICE, NAL_IDR, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 7, 8, 9
START_CODE = b"\x00\x00\x00\x01"
_START = re.compile(b"\x00\x00\x01")


def nal_units(access_unit: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes."""
    starts = [match.end() for match in _START.finditer(access_unit)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(access_unit)
        unit = access_unit[start:end]
        if index + 1 < len(starts):
            unit = unit.rstrip(b"\x00")  # the zero byte of a 4-byte start code, or padding
        if unit:
            units.append(unit)
    return units


def nal_types(access_unit: bytes) -> set[int]:
    """The types of an Annex B stream's NAL units, read off the byte after each start code:
    no unit is copied out (per frame, on the send and receive paths). A zero byte there is
    the next start code's, not a header."""
    return {
        access_unit[match.end()] & 0x1F
        for match in _START.finditer(access_unit)
        if match.end() < len(access_unit) and access_unit[match.end()]
    }


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def annex_b(units: list[bytes]) -> bytes:
    return b"".join(START_CODE + unit for unit in units)


def profile_level_id(sps: bytes) -> str:
    """The SDP's profile-level-id (RFC 6184): profile_idc, the constraint flags and
    level_idc, the three bytes after the SPS's NAL header."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise ValueError("not a sequence parameter set")
    return sps[1:4].hex()


class ParameterSets:
    """Remembers a stream's latest SPS and PPS, and puts them before an IDR that comes
    without them."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.inserted = 0  # IDRs that were given the parameter sets

    @property
    def profile_level_id(self) -> str | None:
        return profile_level_id(self.sps) if self.sps is not None else None

    def complete(self, access_unit: bytes) -> bytes:
        """`access_unit`, with the parameter sets it lacks before its IDR slice."""
        units = nal_units(access_unit)
        types = [nal_type(unit) for unit in units]
        for unit, kind in zip(units, types, strict=True):
            if kind == NAL_SPS:
                self.sps = unit
            elif kind == NAL_PPS:
                self.pps = unit
        if NAL_IDR not in types or self.sps is None or self.pps is None:
            return access_unit
        missing = [
            unit
            for kind, unit in ((NAL_SPS, self.sps), (NAL_PPS, self.pps))
            if kind not in types[: types.index(NAL_IDR)]
        ]
        if not missing:
            return access_unit
        self.inserted += 1
        at = types.index(NAL_IDR)  # after anything before the slice: a delimiter, an SPS
        return annex_b(units[:at] + missing + units[at:])

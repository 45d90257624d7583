"""Keyframe requests from every peer to one encoder: video encoded once for all peers (ours,
or a source's own) must not make a keyframe for each of them."""

from __future__ import annotations

import time
from collections.abc import Callable
from weakref import WeakSet

from aiortc import RTCRtpSender

from vcalld.call import aiortc_hooks

KEYFRAME_SECONDS = 1.0  # the least time between two requested keyframes


class KeyframeRequests:
    """Passes the PLIs and FIRs of every connection's sender on to `request`, at most one
    per KEYFRAME_SECONDS; a new connection's at once, so its peer starts on a keyframe."""

    def __init__(self, request: Callable[[], None]) -> None:
        self._request = request
        self.senders: WeakSet[RTCRtpSender] = WeakSet()
        self._requested_at = -KEYFRAME_SECONDS
        self.requested = 0

    def add_sender(self, sender: RTCRtpSender) -> None:
        if sender in self.senders:
            return
        self.senders.add(sender)
        aiortc_hooks.on_keyframe_request(sender, self.ask)
        self.ask(urgent=True)

    def ask(self, urgent: bool = False) -> None:
        now = time.monotonic()
        if urgent or now - self._requested_at >= KEYFRAME_SECONDS:
            self._requested_at = now
            self.requested += 1
            self._request()

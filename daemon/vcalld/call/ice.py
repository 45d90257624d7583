"""ICE settings that aiortc and aioice do not expose."""

from __future__ import annotations

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from vcalld.config.models import IceServer

_default_host_addresses = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates only on `addresses` (all non-loopback ones when empty).

    aioice has no option for this and always leaves out 127.0.0.1, so its module-level
    gatherer is replaced for the whole process. A kiosk wants it to keep ICE off a
    management interface; loopback-only calls (tests, one-box demos) need it to work at all.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _default_host_addresses
        return
    ipv4 = [address for address in addresses if ":" not in address]
    ipv6 = [address for address in addresses if ":" in address]

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return (ipv4 if use_ipv4 else []) + (ipv6 if use_ipv6 else [])

    aioice.ice.get_host_addresses = configured


def rtc_configuration(servers: list[IceServer]) -> RTCConfiguration:
    """An explicit server list: given none, aiortc would add a public STUN server. Every
    m-line on one transport from the start (max-bundle): with aiortc's default (balanced) a
    second transceiver of a kind (the shared screen's video) joins its kind's first
    transport, which the answer's BUNDLE then discards without moving it."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username, credential=server.credential)
            for server in servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )

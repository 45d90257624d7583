"""A real RTSP server on loopback for the stream source's tests: GStreamer's gst-rtsp-server
serving a WebM file (VP8, RTP-packetised as it is read) at rtsp://127.0.0.1:PORT/clip.

Run by Debian's own Python, whose GObject bindings (python3-gi) the test venv lacks:
`python3 tests/rtsp_server.py PORT FILE`; it prints "ready" once it listens and serves until
killed. Every client gets the file from its start (a shared factory would join a late one
mid-stream, and the end of the file ends the session, which the source must outlive).
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(port: str, path: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{path}" ! matroskademux ! rtpvp8pay name=pay0 pt=96 )')
    factory.set_shared(False)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(*sys.argv[1:3])

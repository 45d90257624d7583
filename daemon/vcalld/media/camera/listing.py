"""What cameras this machine has, for `vcalld devices` and for writing `[video]`."""

from __future__ import annotations

from collections import defaultdict

from vcalld.media.camera.device import (
    Camera,
    CameraLostError,
    CameraMode,
    CameraSystem,
    CameraUnavailableError,
)


def describe_cameras(system: CameraSystem) -> str:
    lines = ["Cameras (a path, by-id name or card name works as video.device):"]
    cameras = system.cameras()
    if not cameras:
        return "\n".join([*lines, "  (none)"])
    for info in cameras:
        lines.append(f"  {info.path}: {info.card} ({info.driver}, {info.bus})")
        lines += [f"    by-id: {name}" for name in info.by_id]
        try:
            lines += _capabilities(system.open(info))
        except (CameraUnavailableError, CameraLostError) as error:
            lines.append(f"    cannot read it: {error}")
    return "\n".join(lines)


def _capabilities(camera: Camera) -> list[str]:
    try:
        lines = [f"    {line}" for line in _formats(camera.modes())]
        controls = camera.controls()
    finally:
        camera.close()
    lines.append("    controls (video.controls, set-camera-control):")
    lines += [f"      {control.describe()}" for control in controls] or ["      (none)"]
    return lines


def _formats(modes: list[CameraMode]) -> list[str]:
    """One line per format: its sizes, largest first, each with its rates."""
    rates: dict[str, dict[tuple[int, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for mode in modes:
        rates[mode.pixel_format][(mode.width, mode.height)].append(mode.fps)
    lines = []
    for pixel_format, sizes in rates.items():
        listed = ", ".join(
            f"{width}x{height} ({'/'.join(f'{fps:g}' for fps in sorted(set(fps_list)))} fps)"
            for (width, height), fps_list in sorted(sizes.items(), reverse=True)
        )
        lines.append(f"{pixel_format}: {listed}")
    return lines or ["(no format vcalld reads: MJPG, YUYV, NV12 or H264)"]

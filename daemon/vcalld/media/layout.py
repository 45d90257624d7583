"""PyAV's name for an interleaved channel count: every s16 frame built here needs one."""


def layout_of(channels: int) -> str:
    return "mono" if channels == 1 else "stereo"

"""The one compiled module: a binding to Debian's libwebrtc-audio-processing (found with
pkg-config). Everything else about the package is in pyproject.toml."""

import subprocess

from setuptools import Extension, setup


def pkg_config(*options: str) -> list[str]:
    result = subprocess.run(
        ["pkg-config", *options, "webrtc-audio-processing"],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.split()


setup(
    ext_modules=[
        Extension(
            "vcalld.media.voice._webrtc_apm",
            sources=["daemon/vcalld/media/voice/_webrtc_apm.cpp"],
            extra_compile_args=[*pkg_config("--cflags"), "-std=c++11"],
            extra_link_args=pkg_config("--libs"),
            language="c++",
        )
    ]
)

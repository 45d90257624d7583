"""Configuration: typed sections, a TOML file, `VCALLD_<SECTION>__<KEY>` overrides."""

from vcalld.config.loader import (
    DEFAULT_PATH,
    EX_CONFIG,
    ConfigError,
    ConfigProblem,
    load_config,
    summary,
)
from vcalld.config.models import (
    AudioConfig,
    CallConfig,
    VcalldConfig,
    VideoConfig,
)

__all__ = [
    "DEFAULT_PATH",
    "EX_CONFIG",
    "AudioConfig",
    "CallConfig",
    "ConfigError",
    "ConfigProblem",
    "VcalldConfig",
    "VideoConfig",
    "load_config",
    "summary",
]

from typing import Any, TypedDict

import numpy as np
from typing_extensions import Buffer

Audio = Buffer | np.ndarray[Any, np.dtype[np.int16]]  # 16-bit samples, interleaved

class EchoMetrics(TypedDict):
    erl_db: int
    erle_db: int
    delay_median_ms: int
    delay_std_ms: int
    poor_delay_fraction: float

class AudioProcessing:
    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        echo_cancellation: bool,
        noise_suppression: bool,
        gain_control: bool,
        high_pass_filter: bool,
    ) -> None: ...
    def process(self, capture: Audio, render: Audio, delay_ms: int, /) -> bytes: ...
    def echo_metrics(self) -> EchoMetrics: ...

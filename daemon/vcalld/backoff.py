"""Reconnect pacing shared by every link to the outside (room server, MQTT broker)."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, minimum: float, maximum: float) -> float:
    """Capped exponential delay with jitter, so a fleet does not reconnect in lockstep."""
    ceiling = min(maximum, minimum * 2.0**attempt)
    return ceiling * random.uniform(0.5, 1.0)

"""Running the daemon as a process: signals, the control socket, and a clean exit."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from vcalld.config import VcalldConfig
from vcalld.control.local import LocalControl
from vcalld.control.mqtt.api import MqttControl
from vcalld.daemon import Daemon

log = logging.getLogger(__name__)


async def serve(
    daemon: Daemon, on_ready: Callable[[], None] | None = None, handle_signals: bool = True
) -> None:
    """Run `daemon` until stopped (by SIGINT or SIGTERM if `handle_signals`), with its local
    control socket when enabled."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, daemon.stop)
    control = _control_for(daemon, daemon.config)
    if control is not None:
        try:
            await control.start()
        except OSError as error:
            # A call without vcallctl beats no call: report and carry on.
            log.error("control socket %s unavailable: %s", daemon.config.control.socket, error)
            daemon.state.update(last_error=f"control socket: {error}")
            control = None
    mqtt = MqttControl(daemon, daemon.config.mqtt) if daemon.config.mqtt.enabled else None
    try:
        async with asyncio.TaskGroup() as tasks:
            if mqtt is None:
                await daemon.run(on_ready)
            else:
                mqtt_task = tasks.create_task(mqtt.run(), name="mqtt")
                await daemon.run(on_ready)
                await mqtt.stop()
                mqtt_task.cancel()
    finally:
        if control is not None:
            await control.stop()
        for signum in signals:
            loop.remove_signal_handler(signum)


def _control_for(daemon: Daemon, config: VcalldConfig) -> LocalControl | None:
    return LocalControl(daemon, config.control.socket) if config.control.enabled else None

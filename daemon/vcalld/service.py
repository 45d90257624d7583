"""Running the daemon as a service: signals, control front-ends, systemd, and reloads."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from vcalld.config import ConfigError, VcalldConfig, load_config
from vcalld.control.local import LocalControl
from vcalld.control.mqtt.api import MqttControl
from vcalld.daemon import Daemon
from vcalld.logs import setup_logging
from vcalld.systemd import Notifier

log = logging.getLogger(__name__)
Reload = Callable[[Daemon], VcalldConfig | None]


async def run_service(path: Path, config: VcalldConfig) -> None:
    """`vcalld run`: serve until SIGTERM or SIGINT. SIGHUP re-reads `path`; a valid, changed
    configuration restarts the daemon inside this process (leave, reconnect, rejoin), a bad
    one is reported and the running configuration stays."""
    notifier = Notifier()
    while True:
        setup_logging(config.logging, config.device.id)
        reloaded = await serve(
            Daemon(config), notifier=notifier, reload=lambda daemon: _reread(path, daemon)
        )
        if reloaded is None:
            return
        log.info("configuration reloaded from %s", path)
        config = reloaded


async def serve(
    daemon: Daemon,
    on_ready: Callable[[], None] | None = None,
    handle_signals: bool = True,
    notifier: Notifier | None = None,
    reload: Reload | None = None,
) -> VcalldConfig | None:
    """Run `daemon` with its control front-ends until it stops (by SIGINT or SIGTERM if
    `handle_signals`). Returns the configuration to run next if SIGHUP brought one."""
    notifier = notifier or Notifier()
    loop = asyncio.get_running_loop()
    next_config: list[VcalldConfig] = []

    def hang_up() -> None:
        if reload is not None and (config := reload(daemon)) is not None:
            next_config.append(config)
            notifier.reloading()
            daemon.stop()

    def terminate() -> None:
        notifier.stopping()
        daemon.stop()

    handlers = {signal.SIGINT: terminate, signal.SIGTERM: terminate, signal.SIGHUP: hang_up}
    if handle_signals:
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
    daemon.state.listen(notifier.state_changed)

    def ready() -> None:
        notifier.ready(daemon.state.current)
        if on_ready is not None:
            on_ready()

    control = await _start_local_control(daemon)
    mqtt = MqttControl(daemon, daemon.config.mqtt) if daemon.config.mqtt.enabled else None
    try:
        async with asyncio.TaskGroup() as tasks:
            watchdog = tasks.create_task(
                notifier.feed_watchdog(daemon.health_problem), name="watchdog"
            )
            mqtt_task = tasks.create_task(mqtt.run(), name="mqtt") if mqtt else None
            await daemon.run(ready)
            if mqtt is not None and mqtt_task is not None:
                await mqtt.stop()
                mqtt_task.cancel()
            watchdog.cancel()
    finally:
        daemon.state.unlisten(notifier.state_changed)
        if control is not None:
            await control.stop()
        if handle_signals:
            for signum in handlers:
                loop.remove_signal_handler(signum)
    return next_config[0] if next_config else None


async def _start_local_control(daemon: Daemon) -> LocalControl | None:
    config = daemon.config.control
    if not config.enabled:
        return None
    control = LocalControl(daemon, config.socket)
    try:
        await control.start()
    except OSError as error:
        # A call without vcallctl beats no call: report and carry on.
        log.error("control socket %s unavailable: %s", config.socket, error)
        daemon.state.update(last_error=f"control socket: {error}")
        return None
    return control


def _reread(path: Path, daemon: Daemon) -> VcalldConfig | None:
    """The new configuration if it is valid and different; a bad one keeps the call going."""
    try:
        config = load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            log.error("%s", problem)
        count = len(error.problems)
        reason = f"reload refused: {count} error{'s' if count > 1 else ''} in {path}"
        log.error("%s; keeping the running configuration", reason)
        daemon.state.update(last_error=reason)
        return None
    if config == daemon.config:
        log.info("configuration in %s unchanged; nothing to reload", path)
        return None
    return config

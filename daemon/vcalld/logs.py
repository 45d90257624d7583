"""Log setup: readable text for people, one JSON object per line for machines, and native
journal entries with structured fields when systemd connected stderr to the journal."""

from __future__ import annotations

import json
import logging
import os
import sys

from systemd.journal import JournalHandler

from vcalld.config.models import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(config: LoggingConfig, device_id: str | None = None) -> None:
    handler: logging.Handler
    if config.format == "text" and stderr_is_journal():
        # Priority, logger, code location and VCALLD_* fields become journal fields:
        # `journalctl -u vcalld VCALLD_DEVICE=kiosk-1 VCALLD_ROOM=lobby`.
        fields = {"VCALLD_DEVICE": device_id} if device_id else {}
        handler = JournalHandler(SYSLOG_IDENTIFIER="vcalld", **fields)
    elif config.format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level.upper())
    # aiortc and aioice log every packet-level event at INFO.
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to the device and inode of the stream it connected."""
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"

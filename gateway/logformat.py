"""Log formats for the console and for journald/log shippers: ``text`` (default) or ``json``.

The JSON format writes one object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``,
``msg`` (the rendered message), ``task`` (the asyncio task name when there is one), and
``exc`` with the traceback when an exception is logged. Bilingual messages stay as they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "LogFormat", "setup_logging"]

LogFormat = Literal["text", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("amqtt", "transitions", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is not None:
            out["task"] = task.get_name()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: LogFormat = "text") -> None:
    """Root handler on stderr (journald keeps it); chatty libraries held at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    handler.set_name("estate-gateway")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "estate-gateway"]:
        root.removeHandler(old)  # called twice (tests): replace ours, keep anyone else's
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)

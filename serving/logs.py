"""Structured JSON logs: one object per line, with the request id; never keys or lead attributes.

Log calls pass only safe fields through `extra=` (event names, route templates, statuses,
versions, error class names); the formatter emits nothing else, so a stray value cannot leak.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

SAFE_FIELDS = ("event", "method", "route", "status", "duration_ms", "model_version", "error", "count", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """Send samepage.serving logs to stderr as JSON (idempotent)."""
    logger = logging.getLogger("samepage.serving")
    if not any(getattr(h, "_samepage", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._samepage = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False

"""Log output: the usual text lines, or one JSON object per record (`--log-format
json`, or `REPLAYBOOK_LOG_FORMAT=json`) for log shippers.

A JSON record carries `ts` (ISO-8601 UTC), `level`, `logger`, `message`, and, when the
record was made inside a job (see context.job_scope), `execution_id`, `step`,
`attempt` and `index`; code may also pass them with `extra=`. Exceptions go in `exc`.
Messages and exception texts are masked before formatting (masking.MaskingLogFilter
runs on the handler first), and no other attribute of the record is written, so a
value passed in `extra` cannot leak a secret.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Final

from replaybook.observability.context import CURRENT

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"
_CONTEXT_FIELDS: Final = ("execution_id", "step", "attempt", "index")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = CURRENT.get()
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is None and job is not None:
                value = getattr(job, name)
            if value is not None:
                out[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {log_format!r}: use {' or '.join(FORMATS)}")


def set_log_format(log_format: str | None = None) -> None:
    """Log to stderr in `log_format` (default $REPLAYBOOK_LOG_FORMAT, else text).
    Switches the root handlers' formatter in place: their filters (masking) and the
    level stay as configured."""
    formatter = formatter_for(log_format or os.environ.get("REPLAYBOOK_LOG_FORMAT") or "text")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter)

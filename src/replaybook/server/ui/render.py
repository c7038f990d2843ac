"""Templates (Jinja2, autoescaped: every value a user or a step wrote is text, never
markup) and the filters that format times, durations and JSON values."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).parent
# Values bigger than this are cut in pages; the API has them whole.
MAX_SHOWN_CHARS = 200_000


def iso_from_seconds(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        parsed = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def abstime(iso: str | None) -> str:
    """'2024-05-01 12:04:33 UTC' (the browser rewrites it in local time)."""
    t = _parse(iso)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"


def ago(iso: str | None, now: datetime | None = None) -> str:
    t = _parse(iso)
    if t is None:
        return ""
    s = ((now or datetime.now(UTC)) - t).total_seconds()
    future = s < 0
    s = abs(s)
    if s < 45:
        text = f"{int(s)} s"
    elif s < 3600:
        text = f"{round(s / 60)} min"
    elif s < 86400:
        text = f"{round(s / 3600)} h"
    else:
        text = f"{round(s / 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def span(start: str | None, end: str | None) -> float | None:
    a, b = _parse(start), _parse(end)
    if a is None:
        return None
    return max(0.0, ((b or datetime.now(UTC)) - a).total_seconds())


# Bidirectional formatting characters (embeddings, overrides, isolates, marks): in a
# value they would reorder the text around them as shown (U+202E reverses the rest of
# its line). Pages show them as escapes: in JSON text that is the same value.
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in _BIDI_CONTROLS}


def bidi_safe(text: Any) -> str:
    """The text with its bidi control characters written as \\uXXXX escapes."""
    return str(text).translate(_BIDI_ESCAPES)


def pretty(value: Any) -> str:
    """A JSON value as indented text, cut at MAX_SHOWN_CHARS, bidi controls escaped."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS] + f"\n… ({len(text) - MAX_SHOWN_CHARS} more characters)"
    return bidi_safe(text)


def short(ident: str | None) -> str:
    return (ident or "")[:8]


class Static:
    """The stylesheet and script, read once; their URLs carry a content hash so
    browsers may cache them for good."""

    TYPES = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {
            name: (HERE / "static" / name).read_bytes() for name in self.TYPES
        }
        self.versions = {n: hashlib.sha256(b).hexdigest()[:10] for n, b in self.files.items()}

    def url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.versions[name]}"


def environment(static: Static) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        abstime=abstime,
        ago=ago,
        bidi_safe=bidi_safe,
        duration=duration,
        pretty=pretty,
        short=short,
        span=span,
    )
    env.globals["static"] = static.url
    return env

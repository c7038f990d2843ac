"""Turn action results into JSON values (spec §6), and bound their size.

    to_json_value(value)          -> the value as plain JSON data (new containers)
    check_size(value, max_bytes)  -> the UTF-8 JSON size; ActionError when over
    not_json(value)               -> where and why `value` is not JSON data as it is
                                     (NaN, +-inf, a date...), or None; for inputs
                                     (payloads), which are refused, not converted

Conversions: date/time/datetime -> ISO-8601 text; UUID -> text; timedelta -> seconds
(an int when whole); Decimal -> int when integral, else float when
`Decimal(repr(float(d))) == d`, else its text; bytes/bytearray/memoryview -> base64
text; tuple/list/other sequences of those -> list; set/frozenset -> sorted list;
NaN/+-inf -> None; mapping keys must be text (int/float/bool/None keys become their
JSON spelling). Anything else raises NotJSONError naming the type and where it was,
e.g. "result is not JSON: value of type Widget at ['w']".

This module also runs inside the python action's child processes, whose start must
stay cheap: it imports only `math` and `sys` up front. Types from `datetime`,
`decimal` and `uuid` are recognised through `sys.modules` (a value of such a type can
only exist once its module was imported), and `replaybook.errors` is imported only to
raise.
"""

from __future__ import annotations

import math
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    _Path = list[str | int]
    _Converter = Callable[[Any, _Path], Any]

DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024

# Converters for types seen before, by exact type (bounded, see _converter_for).
_CONVERTERS: dict[type, _Converter] = {}


def to_json_value(value: Any) -> Any:
    """Return `value` as JSON data (dict/list/str/int/float/bool/None)."""
    try:
        return _convert(value, [])
    except RecursionError:
        _fail("result is not JSON: it is nested too deeply (or refers to itself)")


def check_size(value: Any, max_bytes: int) -> int:
    """Return the size in bytes of `value` as compact UTF-8 JSON; raise ActionError
    (type "result") when it is larger than `max_bytes`."""
    import json

    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        from replaybook.errors import ActionError

        raise ActionError(
            f"result is {size} bytes of JSON, larger than max_result_bytes ({max_bytes})",
            type="result",
        )
    return size


def not_json(value: Any) -> str | None:
    """None when `value` is plain JSON data (dict with text keys, list, str, int,
    finite float, bool, None); else a description of the first value that is not,
    with where it is, e.g. "inf at ['n']" or "a value of type date at ['d']"."""
    path: _Path = []

    def check(v: Any) -> str | None:
        t = type(v)
        if t is str:
            return f"a lone surrogate in a string{_where(path)}" if _lone_surrogate(v) else None
        if t is int or t is bool or v is None:
            return None
        if t is float:
            return None if math.isfinite(v) else f"{v!r}{_where(path)}"
        if t is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return f"a key of type {type(k).__qualname__}{_where(path)}"
                if _lone_surrogate(k):
                    return f"a lone surrogate in a key{_where(path)}"
                path.append(k)
                found = check(item)
                path.pop()
                if found:
                    return found
            return None
        if t is list:
            for i, item in enumerate(v):
                path.append(i)
                found = check(item)
                path.pop()
                if found:
                    return found
            return None
        return f"a value of type {t.__qualname__}{_where(path)}"

    try:
        return check(value)
    except RecursionError:
        return "nested too deeply (or refers to itself)"


def _fail(message: str) -> NoReturn:
    from replaybook.errors import NotJSONError

    raise NotJSONError(message)


def _where(path: _Path) -> str:
    return " at " + "".join(f"[{p!r}]" for p in path) if path else ""


def clean_text(text: str) -> str:
    """`text` with each lone surrogate (code points U+D800-U+DFFF, which no UTF-8
    text can hold: a string built with chr(0xD800), or JSON's "\\ud800") replaced by
    U+FFFD, so that it can be stored, sent and shown."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # rare: a slow but exact repair is fine
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _lone_surrogate(text: str) -> bool:
    return clean_text(text) is not text


def _convert(value: Any, path: _Path) -> Any:
    t = type(value)
    if t is str:
        return clean_text(value)
    if t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else None
    if t is dict:
        return _convert_mapping(value, path)
    if t is list or t is tuple:
        return _convert_list(value, path)
    conv = _CONVERTERS.get(t) or _converter_for(t)
    if conv is None:
        _fail(f"result is not JSON: value of type {t.__qualname__}{_where(path)}")
    return conv(value, path)


def _convert_mapping(value: Any, path: _Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = clean_text(k) if type(k) is str else _key(k, path)
        path.append(key)
        out[key] = _convert(v, path)
        path.pop()
    return out


def _convert_list(value: Any, path: _Path) -> list[Any]:
    out: list[Any] = []
    for i, v in enumerate(value):
        path.append(i)
        out.append(_convert(v, path))
        path.pop()
    return out


def _key(key: Any, path: _Path) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return str(int(key))
    if isinstance(key, float):
        return repr(float(key))
    conv = _CONVERTERS.get(type(key)) or _converter_for(type(key))
    converted = conv(key, path) if conv in (_iso, _text, _decimal, _seconds) else None
    if isinstance(converted, str):
        return converted
    if isinstance(converted, int | float):
        return str(converted)
    _fail(f"result is not JSON: mapping key of type {type(key).__qualname__}{_where(path)}")


def _iso(value: Any, path: _Path) -> str:
    text: str = value.isoformat()
    return text


def _text(value: Any, path: _Path) -> str:
    return str(value)


def _seconds(value: Any, path: _Path) -> int | float:
    if value.microseconds == 0:
        days: int = value.days
        whole: int = value.seconds
        return days * 86400 + whole
    seconds: float = value.total_seconds()
    return seconds


def _decimal(value: Any, path: _Path) -> int | float | str | None:
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if type(value)(repr(as_float)) == value:
        return as_float
    return str(value)


def _base64(value: Any, path: _Path) -> str:
    import binascii

    return binascii.b2a_base64(bytes(value), newline=False).decode("ascii")


def _set(value: Any, path: _Path) -> list[Any]:
    items = _convert_list(list(value), path)
    try:
        return sorted(items)
    except TypeError:  # mixed types: order by type name, then by value's JSON text
        import json

        return sorted(items, key=lambda v: (type(v).__name__, json.dumps(v, sort_keys=True)))


def _float(value: Any, path: _Path) -> float | None:
    f = float(value)
    return f if math.isfinite(f) else None


def _str_sub(value: Any, path: _Path) -> str:
    return str.__str__(value)


def _int_sub(value: Any, path: _Path) -> int | bool:
    if isinstance(value, bool):
        return bool(value)
    return int.__index__(value)


def _converter_for(t: type) -> _Converter | None:
    """Find the converter of a type not handled inline; cache it (bounded)."""
    conv = _find_converter(t)
    if conv is not None:
        if len(_CONVERTERS) > 512:  # user code may create classes per call
            _CONVERTERS.clear()
        _CONVERTERS[t] = conv
    return conv


def _find_converter(t: type) -> _Converter | None:
    if issubclass(t, str):
        return _str_sub
    if issubclass(t, int):
        return _int_sub
    if issubclass(t, float):
        return _float
    if issubclass(t, dict):
        return _convert_mapping
    if issubclass(t, list | tuple):
        return _convert_list
    if issubclass(t, bytes | bytearray | memoryview):
        return _base64
    if issubclass(t, set | frozenset):
        return _set
    dt = sys.modules.get("datetime")
    if dt is not None:
        if issubclass(t, dt.timedelta):
            return _seconds
        if issubclass(t, dt.date | dt.time):  # datetime is a date
            return _iso
    dec = sys.modules.get("decimal")
    if dec is not None and issubclass(t, dec.Decimal):
        return _decimal
    uuid = sys.modules.get("uuid")
    if uuid is not None and issubclass(t, uuid.UUID):
        return _text
    from collections.abc import Mapping, Set

    if issubclass(t, Mapping):
        return _convert_mapping
    if issubclass(t, Set):
        return _set
    return None

"""Unit tests for replaybook.actions.jsonsafe (spec §6 result conversions)."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import json
import math
import types
import uuid
from typing import Any

import pytest

from replaybook.actions.jsonsafe import check_size, not_json, to_json_value
from replaybook.errors import ActionError, NotJSONError


class Widget:
    pass


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):  # noqa: UP042  (the old spelling, on purpose)
    ADA = "ada"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (0, 0),
        (2**70, 2**70),
        (1.5, 1.5),
        ("東京", "東京"),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-01-02T03:04:05+02:00",
        ),
        (dt.time(1, 2, 3, 500), "01:02:03.000500"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (dt.timedelta(minutes=90), 5400),
        (dt.timedelta(seconds=1, microseconds=500000), 1.5),
        (dt.timedelta(days=-1), -86400),
        (decimal.Decimal("2.5"), 2.5),
        (decimal.Decimal("12.50"), 12.5),
        (decimal.Decimal("0.1"), 0.1),
        (decimal.Decimal("42"), 42),
        (decimal.Decimal("42.000"), 42),
        (decimal.Decimal("12345678901234567890.5"), "12345678901234567890.5"),
        (decimal.Decimal("NaN"), None),
        (decimal.Decimal("Infinity"), None),
        (b"hi", "aGk="),
        (bytearray(b"hi"), "aGk="),
        (memoryview(b"hi"), "aGk="),
        ((1, 2), [1, 2]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (Color.RED, 1),
        (Name.ADA, "ada"),
    ],
)
def test_conversions(value: Any, expected: Any) -> None:
    got = to_json_value(value)
    assert got == expected
    assert type(got) is type(expected)


def test_nested_containers_become_plain() -> None:
    value = {
        "t": (1, (2, 3)),
        "od": collections.OrderedDict([("z", 1), ("a", 2)]),
        "proxy": types.MappingProxyType({"k": dt.date(2020, 1, 1)}),
        "rows": [{"d": decimal.Decimal("1.25")}],
    }
    got = to_json_value(value)
    assert got == {
        "t": [1, [2, 3]],
        "od": {"z": 1, "a": 2},
        "proxy": {"k": "2020-01-01"},
        "rows": [{"d": 1.25}],
    }
    assert type(got["od"]) is dict
    assert list(got["od"]) == ["z", "a"]  # key order kept
    json.dumps(got, allow_nan=False)


def test_mixed_set_sorts_without_error() -> None:
    got = to_json_value({1, "a", None})
    assert sorted(map(str, got)) == ["1", "None", "a"]


def test_keys_become_text() -> None:
    assert to_json_value({2: "a", True: "b", None: "c", 1.5: "d"}) == {
        "2": "a",
        "true": "b",
        "null": "c",
        "1.5": "d",
    }
    assert to_json_value({dt.date(2024, 1, 1): 1}) == {"2024-01-01": 1}


def test_non_json_names_type_and_path() -> None:
    with pytest.raises(NotJSONError) as err:
        to_json_value({"w": Widget()})
    assert str(err.value) == "result is not JSON: value of type Widget at ['w']"
    assert err.value.type == "result"
    with pytest.raises(NotJSONError, match=r"Widget at \['a'\]\[1\]"):
        to_json_value({"a": [1, Widget()]})
    with pytest.raises(NotJSONError, match=r"value of type Widget$"):
        to_json_value(Widget())
    with pytest.raises(NotJSONError, match="mapping key of type Widget"):
        to_json_value({Widget(): 1})
    with pytest.raises(NotJSONError, match="function"):
        to_json_value([len, lambda: 1][1])


def test_cycle_is_an_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(NotJSONError, match="too deeply"):
        to_json_value(loop)


def test_big_int_kept_exactly() -> None:
    n = 9007199254740993
    assert to_json_value({"n": n})["n"] == n


def test_check_size() -> None:
    assert check_size({"a": "é"}, 100) == len('{"a":"é"}'.encode())
    assert check_size(None, 4) == 4
    with pytest.raises(ActionError) as err:
        check_size("x" * 100, 50)
    assert "max_result_bytes" in str(err.value)
    assert err.value.type == "result"


def test_floats_stay_exact() -> None:
    assert to_json_value(0.1 + 0.2) == 0.1 + 0.2
    assert math.isclose(to_json_value(decimal.Decimal("3.14")), 3.14)


def test_not_json_finds_what_a_payload_cannot_hold() -> None:
    assert not_json({"a": [1, 2.5, "x", None, True, {"b": {}}]}) is None
    assert not_json({"n": math.inf}) == "inf at ['n']"
    assert not_json({"a": [1, {"b": math.nan}]}) == "nan at ['a'][1]['b']"
    assert not_json(-math.inf) == "-inf"
    assert not_json({"d": dt.date(2024, 1, 1)}) == "a value of type date at ['d']"
    assert not_json({1: "x"}) == "a key of type int"
    loop: list[Any] = []
    loop.append(loop)
    assert not_json(loop) == "nested too deeply (or refers to itself)"

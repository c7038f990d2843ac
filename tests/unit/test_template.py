"""Unit tests for replaybook.template (spec §3)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from replaybook.errors import TemplateError, TemplateSyntax
from replaybook.template import TEMPLATES, Templates

CASES = Path("/work/shared/spec/conformance/cases")
MAKE = {"items": [1, 2, 3], "flag": False, "code": "007", "none": None, "n": 3, "word": "hello"}


@pytest.fixture
def t() -> Templates:
    return Templates()


def e(expr: str) -> str:
    return "{{ " + expr + " }}"


def ctx() -> dict[str, Any]:
    return {"make": dict(MAKE, items=[1, 2, 3])}


# --- conformance: template_types -------------------------------------------------------


def _use_args() -> dict[str, Any]:
    path = CASES / "template_types" / "playbook.yaml"
    if not path.exists():
        pytest.skip("conformance case not available")
    doc = yaml.safe_load(path.read_text())
    step = next(s for s in doc["workflow"] if s["step"] == "use")
    args: dict[str, Any] = step["args"]
    return args


def test_template_types_conformance_case(t: Templates) -> None:
    expected = json.loads((CASES / "template_types" / "expected.json").read_text())
    use = expected["result"]["use"]
    out = t.render(_use_args(), ctx(), "step 'use' field 'args'")
    assert {k: type(v).__name__ for k, v in out.items()} == use["types"]
    values = {k: v for k, v in out.items() if k != "flag_text"}
    assert values == use["values"]
    assert list(out) == list(_use_args())  # key order kept
    assert out["flag_text"].startswith("flag is ")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{{ make.items }}", [1, 2, 3]),
        ("{{ make.flag }}", False),
        ("{{ make.code }}", "007"),
        ("{{ make.none }}", None),
        ("{{make.n}}", 3),
        ("  {{ make.n }}\n", 3),
        ("{{ make.n > 2 }}", True),
        ("{{ '42' }}", "42"),
        ("{{ 'true' }}", "true"),
        ("{{ 42 }}", 42),
        ("{{ [1, make.n] }}", [1, 3]),
        ("{{ {'a': make.n} }}", {"a": 3}),
        ("{{ make.n }}{{ make.n }}", "33"),
        ("{{ make.code }}-{{ make.n }}", "007-3"),
        ("n={{ make.items | length }}", "n=3"),
        ("{{ make.n }} {# comment #}", 3),
        ("{% if make.flag %}yes{% else %}no{% endif %}", "no"),
        ("{{ make.missing_key | default(5) }}", 5),
        ("{{ nope | default('dflt') }}", "dflt"),
        ("{{ nope is defined }}", False),
        ("{{ make.n is defined }}", True),
        ("{{ make.none is none }}", True),
        ("{{ range(3) }}", [0, 1, 2]),
    ],
)
def test_render_values_and_types(t: Templates, text: str, value: Any) -> None:
    out = t.render_str(text, ctx(), "w")
    assert out == value
    assert type(out) is type(value)


def test_single_expression_returns_context_object_uncopied(t: Templates) -> None:
    c = ctx()
    assert t.render_str("{{ make }}", c, "w") is c["make"]


def test_non_templates_returned_untouched(t: Templates) -> None:
    assert t.render_str("plain { text }", {}, "w") == "plain { text }"
    assert t.render_str("sql\n", {}, "w") == "sql\n"
    for v in (1, 2.5, None, True):
        assert t.render(v, {}, "w") is v
    assert t.cache_info().currsize == 0


def test_trailing_newline_kept(t: Templates) -> None:
    assert t.render_str("select {{ make.n }}\n", ctx(), "w") == "select 3\n"


def test_render_recursive_keeps_keys_and_order(t: Templates) -> None:
    value = {"b": ["{{ make.n }}", {"{{ key }}": "x{{ make.n }}"}], "a": 1, "c": ("{{ 1 }}",)}
    out = t.render(value, ctx(), "step 's' field 'args'")
    assert out == {"b": [3, {"{{ key }}": "x3"}], "a": 1, "c": (1,)}
    assert list(out) == ["b", "a", "c"]


# --- errors ------------------------------------------------------------------------------


def test_undefined_names_step_and_field(t: Templates) -> None:
    with pytest.raises(TemplateError) as info:
        t.render({"city_name": "{{ no_such_step.city }}"}, {}, "step 'greet' field 'args'")
    msg = str(info.value)
    assert msg == "step 'greet' field 'args.city_name': 'no_such_step' is undefined"
    assert "city_name" in msg


def test_nested_list_path_in_error(t: Templates) -> None:
    with pytest.raises(TemplateError, match=r"field 'args\.xs\[1\]': 'nope' is undefined"):
        t.render({"xs": [1, "{{ nope }}"]}, {}, "step 's' field 'args'")


@pytest.mark.parametrize(
    "text",
    ["{{ x }}", "a {{ x }}", "{{ make.missing }}", "{{ [make.missing] }}", "{{ x | tojson }}"],
)
def test_undefined_is_error(t: Templates, text: str) -> None:
    with pytest.raises(TemplateError, match=r"^w: .*(undefined|no attribute)"):
        t.render_str(text, ctx(), "w")


def test_runtime_errors_are_template_errors(t: Templates) -> None:
    with pytest.raises(TemplateError, match=r"^w: ZeroDivisionError"):
        t.render_str("{{ 1 / 0 }}", {}, "w")
    with pytest.raises(TemplateError, match=r"^w: "):
        t.render_str("{{ 'not json' | fromjson }}", {}, "w")


def test_sandbox_blocks_unsafe_access_and_mutation(t: Templates) -> None:
    c = ctx()
    with pytest.raises(TemplateError, match="unsafe"):
        t.render_str("{{ make.__class__.__mro__ }}", c, "w")
    with pytest.raises(TemplateError):
        t.render_str("{{ make.items.append(4) }}", c, "w")
    assert c["make"]["items"] == [1, 2, 3]


def test_syntax_error_with_line(t: Templates) -> None:
    text = "line one\nline two\n{{ x + }}\nline four"
    err = t.syntax_error(text)
    assert err is not None
    assert err[1] == 3
    assert t.syntax_error("{% if x %}\nopen") is not None
    assert t.syntax_error("{{ x | no_such_filter }}") is not None
    assert t.syntax_error("{{ a }}{{ b }}") is None
    assert t.syntax_error("no template") is None
    with pytest.raises(TemplateSyntax) as info:
        t.render_str(text, {}, "step 's' field 'f'")
    assert info.value.lineno == 3
    assert str(info.value).startswith("step 's' field 'f': ")
    assert isinstance(info.value, TemplateError)


# --- lookup rules ------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["items", "keys", "values", "get", "update", "data", "result"])
def test_key_first_lookup(t: Templates, key: str) -> None:
    assert t.render_str(e("A." + key), {"A": {key: [1]}}, "w") == [1]


def test_dict_methods_still_work_without_key(t: Templates) -> None:
    text = "{% for k, v in A.items() %}{{ k }}={{ v }};{% endfor %}"
    out = t.render_str(text, {"A": {"x": 1}}, "w")
    assert out == "x=1;"


def test_subscript_missing_key_is_undefined(t: Templates) -> None:
    assert t.render_str("{{ A['keys'] | default('none') }}", {"A": {}}, "w") == "none"


@pytest.mark.parametrize("alias", ["data", "result", "results"])
def test_aliases(t: Templates, alias: str) -> None:
    c = {"A": {"x": 1}, "L": [1, 2], "S": "txt", "N": 7}
    assert t.render_str(e("A." + alias), c, "w") == {"x": 1}
    assert t.render_str(e("A." + alias + ".x"), c, "w") == 1
    assert t.render_str(e("L." + alias), c, "w") == [1, 2]
    assert t.render_str(e("S." + alias), c, "w") == "txt"
    assert t.render_str(e("N." + alias), c, "w") == 7


# --- filters and globals ------------------------------------------------------------------


def test_tojson_keeps_order_and_unicode(t: Templates) -> None:
    out = t.render_str("{{ A | tojson }}", {"A": {"z": 1, "a": "é<b>&"}}, "w")
    assert out == '{"z": 1, "a": "é<b>&"}'
    assert type(out) is str
    assert t.render_str("{{ A | tojson(indent=2) }}", {"A": {"k": 1}}, "w") == '{\n  "k": 1\n}'


def test_fromjson_and_base64(t: Templates) -> None:
    assert t.render_str("{{ s | fromjson }}", {"s": '{"a": [1]}'}, "w") == {"a": [1]}
    enc = t.render_str("{{ 'héllo' | b64encode }}", {}, "w")
    assert enc == base64.b64encode("héllo".encode()).decode()
    assert t.render_str("{{ e | b64decode }}", {"e": enc}, "w") == "héllo"


def test_globals(t: Templates) -> None:
    now = t.render_str("{{ now() }}", {}, "w")
    assert dt.datetime.fromisoformat(now).utcoffset() == dt.timedelta(0)
    today = t.render_str("{{ today() }}", {}, "w")
    assert dt.date.fromisoformat(today) == dt.datetime.now(dt.UTC).date()
    a, b = t.render_str("{{ uuid() }}", {}, "w"), t.render_str("{{ uuid() }}", {}, "w")
    assert uuid.UUID(a).version == 4
    assert a != b


def test_results_are_plain_values(t: Templates) -> None:
    out = t.render_str("{{ ['a' | safe, {'k': 'b' | safe}] }}", {}, "w")
    assert out == ["a", {"k": "b"}]
    assert type(out[0]) is str
    assert type(out[1]["k"]) is str
    assert type(t.render_str("{{ 'x' | safe }}", {}, "w")) is str
    assert t.render_str("{{ A.keys() }}", {"A": {"x": 1}}, "w") == ["x"]


# --- helpers ------------------------------------------------------------------------------


def test_is_template(t: Templates) -> None:
    assert t.is_template("{{ x }}")
    assert t.is_template("{% if x %}{% endif %}")
    assert t.is_template("{# c #}")
    assert not t.is_template("{ x }")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("FALSE", False),
        ("True", True),
        ("yes", None),
        (1, None),
        (None, None),
        ([], None),
    ],
)
def test_truthy(t: Templates, value: Any, expected: bool | None) -> None:
    assert t.truthy(value) is expected


def test_module_instance() -> None:
    assert isinstance(TEMPLATES, Templates)
    assert TEMPLATES.render_str("{{ 1 + 1 }}", {}, "w") == 2


# --- cache, threads, speed ------------------------------------------------------------


def test_cache_compiles_once(t: Templates) -> None:
    c = ctx()
    t.render_str("{{ make.n }}", c, "w")
    t.render_str("{{ make.n }}", c, "w")
    t.render_str("{{ make.n }}", {"make": {"n": 9}}, "w")
    info = t.cache_info()
    assert info.misses == 1
    assert info.hits == 2


def test_cache_is_bounded() -> None:
    small = Templates(cache_size=4)
    for i in range(10):
        assert small.render_str(e(str(i)), {}, "w") == i
    assert small.cache_info().currsize == 4


def test_concurrent_renders() -> None:
    t = Templates(cache_size=8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(300):
                assert t.render_str(e(f"v + {i % 16}"), {"v": n}, "w") == n + i % 16
                assert t.render_str("v={{ v }}", {"v": n}, "w") == f"v={n}"
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_cached_render_is_fast(t: Templates) -> None:
    c = ctx()
    t.render_str("{{ make.items }}", c, "w")
    start = time.perf_counter()
    for _ in range(10_000):
        t.render_str("{{ make.items }}", c, "w")
    assert time.perf_counter() - start < 3.0

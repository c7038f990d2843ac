"""Jinja2 templates for playbook values (spec §3).

Every string in a step is a template rendered in Jinja's sandbox with strict
undefined names. A string that is exactly one `{{ expr }}` yields the expression's
native value (never a re-parse of its text); any other template yields a str.

Compiled templates are cached by text: steps render the same strings for every
attempt, item and execution, so the hot path is a dict lookup plus one call.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import uuid as _uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import TemplateSyntaxError, UndefinedError, nodes
from jinja2.environment import Template
from jinja2.runtime import StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from replaybook.errors import TemplateError, TemplateSyntax

__all__ = ["TEMPLATES", "Templates"]

# NoETL compatibility: `step.data` / `.result` / `.results` is the step's result.
_ALIASES = frozenset({"data", "result", "results"})
_SCALARS = (list, tuple, str, int, float)
# Expressions that only read context data return values that are already plain
# JSON-ish, so scanning them (possibly large) for Undefined/Markup is wasted work.
_PLAIN_READS = (nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Const)


def _fail(value: Undefined) -> NoReturn:
    str(value)  # StrictUndefined raises UndefinedError naming the missing thing
    raise UndefinedError("undefined value")  # pragma: no cover - str() always raises


def _checked(value: Any) -> Any:
    if isinstance(value, Undefined):
        _fail(value)
    return value


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson sorts keys, escapes HTML and returns Markup: none wanted here.
    return json.dumps(_checked(value), ensure_ascii=False, indent=indent)


def _fromjson(value: Any) -> Any:
    return json.loads(_checked(value))


def _b64encode(value: Any) -> str:
    value = _checked(value)
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _b64decode(value: Any) -> str:
    return base64.b64decode(_checked(value)).decode("utf-8")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


def _today() -> str:
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def _uuid4() -> str:
    return str(_uuid.uuid4())


class _Env(ImmutableSandboxedEnvironment):
    """Sandbox where `a.b` on a mapping means the key `b` before any dict method.

    Immutable because context values are shared, uncopied, between threads and
    are recorded in events: a template must not be able to mutate them.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                if attribute in _ALIASES:
                    return obj
        elif attribute in _ALIASES and (obj is None or isinstance(obj, _SCALARS)):
            return obj
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        # Subscript is explicit data access: a missing key must not fall back to
        # a dict method (Jinja's default would return `d.keys` for d['keys']).
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)


class _Compiled:
    __slots__ = ("error", "plain", "single", "template")

    def __init__(
        self,
        template: Template | None = None,
        single: bool = False,
        plain: bool = False,
        error: tuple[str, int] | None = None,
    ) -> None:
        self.template = template  # None only when `error` is set
        self.single = single  # one `{{ expr }}`: result is the native value
        self.plain = plain  # single and just reads context data
        self.error = error


def _single_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression if the body is one Output holding one expression plus blanks."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    found: nodes.Expr | None = None
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            if node.data.strip():
                return None
        elif found is not None:
            return None
        else:
            found = node
    return found


def _clean(value: Any) -> Any:
    """Turn a computed value into plain data: no Undefined, Markup or lazy iterables."""
    if isinstance(value, str):
        return str(value) if isinstance(value, Markup) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Undefined):
        _fail(value)
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_clean(v) for v in value)
    if isinstance(value, (list, set, frozenset, range)) or hasattr(value, "__next__"):
        return [_clean(v) for v in value]
    if type(value).__name__ in ("dict_keys", "dict_values", "dict_items"):
        return [_clean(v) for v in value]
    return value


def _nested(where: str, suffix: str) -> str:
    # "step 'greet' field 'args'" + ".city" -> "step 'greet' field 'args.city'"
    if where.endswith("'"):
        return f"{where[:-1]}{suffix}'"
    return where + suffix


class Templates:
    """Compiles and renders templates; one instance is safe to share between threads."""

    def __init__(self, cache_size: int = 4096) -> None:
        env = _Env(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        env.filters.update(
            tojson=_tojson, fromjson=_fromjson, b64encode=_b64encode, b64decode=_b64decode
        )
        env.globals.update(now=_now, today=_today, uuid=_uuid4)
        self._env = env
        # functools' LRU is implemented in C and thread-safe; a racing double compile
        # of the same text is harmless. Failures are cached as entries, not raised.
        self._compile = functools.lru_cache(maxsize=cache_size)(self._compile_uncached)

    def _compile_uncached(self, text: str) -> _Compiled:
        try:
            ast = self._env.parse(text)
            expr = _single_expression(ast)
            if expr is None:
                return _Compiled(self._env.from_string(ast))
            body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)]
            template = self._env.from_string(nodes.Template(body, lineno=1))
            return _Compiled(template, True, isinstance(expr, _PLAIN_READS))
        except TemplateSyntaxError as e:
            return _Compiled(error=(e.message or str(e), e.lineno or 1))
        except Exception as e:  # compile-time failures of any other kind
            return _Compiled(error=(f"{type(e).__name__}: {e}", 1))

    def cache_info(self) -> Any:
        """functools cache statistics (hits, misses, currsize): for tests and tuning."""
        return self._compile.cache_info()

    def is_template(self, text: str) -> bool:
        return "{{" in text or "{%" in text or "{#" in text

    def syntax_error(self, text: str) -> tuple[str, int] | None:
        if not self.is_template(text):
            return None
        try:
            return self._compile(text).error
        except Exception as e:  # never raise: callers use this while validating
            return (f"{type(e).__name__}: {e}", 1)

    def truthy(self, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered == "true":
                return True
            if lowered == "false":
                return False
        return None

    def render(self, value: Any, context: Mapping[str, Any], where: str) -> Any:
        if isinstance(value, str):
            return self.render_str(value, context, where)
        if isinstance(value, Mapping):
            return {k: self.render(v, context, _nested(where, f".{k}")) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, context, _nested(where, f"[{i}]")) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(
                self.render(v, context, _nested(where, f"[{i}]")) for i, v in enumerate(value)
            )
        return value

    def render_str(self, text: str, context: Mapping[str, Any], where: str) -> Any:
        if "{" not in text or not self.is_template(text):
            return text
        compiled = self._compile(text)
        template = compiled.template
        if template is None:
            message, line = compiled.error or ("invalid template", 1)
            shown = f"{message} (line {line})" if "\n" in text.rstrip("\n") else message
            raise TemplateSyntax(f"{where}: {shown}", line)
        try:
            # Straight to the render function: Template.render would copy the
            # context twice and rewrite tracebacks we do not show anyway.
            ctx = template.new_context(context if isinstance(context, dict) else dict(context))
            if not compiled.single:
                return "".join(template.root_render_func(ctx))
            for _ in template.root_render_func(ctx):
                pass
            result = ctx.vars["result"]
            if compiled.plain:
                if isinstance(result, Undefined):
                    _fail(result)
                return result
            return _clean(result)
        except TemplateError:
            raise
        except JinjaTemplateError as e:
            raise TemplateError(f"{where}: {e.message or e}") from e
        except Exception as e:
            raise TemplateError(f"{where}: {type(e).__name__}: {e}") from e


TEMPLATES = Templates()

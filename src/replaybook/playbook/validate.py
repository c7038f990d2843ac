"""Checks on a playbook: the problem collector (with YAML lines and paths), the known
keys of each section, the parsing of policies (retry, timeout, max_visits), iterator
fields, template syntax and the step-graph checks (names, start/end, targets).

Nothing here raises on a bad playbook: every check reports to a `Reporter`, so that
validation lists every problem at once; `load.py` raises `PlaybookInvalid` at the end.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replaybook.errors import Problem
from replaybook.playbook.model import RetryPolicy

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Router spellings of `type` (no action): absent, `start`, `end`, `router`.
ROUTER_TYPES = frozenset({"start", "end", "router"})

# Inputs and their aliases, lowest precedence first (`args` wins a conflicting key).
INPUT_KEYS = ("data", "input", "with", "args")
# Edge data and its aliases on a routing arc, lowest precedence first.
ARC_DATA_KEYS = ("input", "with", "args", "data")

_SQL = frozenset({"sql", "command", "commands", "query", "script", "command_b64", "commands_b64"})
_PG_CONN = frozenset(
    {
        "connection",
        "dsn",
        "db_host",
        "db_port",
        "db_user",
        "db_password",
        "db_name",
        "db_schema",
        "db_sslmode",
    }
)
# Action fields per built-in type (for unknown-key warnings; fields of plugin types are
# never warned about).
ACTION_FIELDS: dict[str, frozenset[str]] = {
    "python": frozenset({"code", "code_b64", "module", "callable", "function"}),
    "http": frozenset(
        {
            "method",
            "url",
            "endpoint",
            "headers",
            "params",
            "body",
            "json",
            "payload",
            "verify",
            "follow_redirects",
            "fail_on_status",
        }
    ),
    "duckdb": _SQL | {"params", "database", "max_rows"},
    "postgres": _SQL | _PG_CONN | {"params", "max_rows"},
    "playbook": frozenset({"path", "version", "return_step"}),
    "iterator": frozenset(
        {"collection", "element", "task", "mode", "concurrency", "continue_on_error", "parallel"}
    ),
    "secrets": frozenset({"provider", "name", "path", "key", "field"}),
    "workbook": frozenset({"name", "task"}),
}
COMMON_ACTION_FIELDS = frozenset({"max_result_bytes"})
ALL_ACTION_FIELDS = frozenset().union(*ACTION_FIELDS.values()) | COMMON_ACTION_FIELDS

# Fields an action carries besides its type-specific ones (workbook actions, iterator
# tasks, steps): they are modelled on Step, not left in `spec`.
ACTION_POLICY_KEYS = frozenset({"save", "retry", "timeout", "auth", "desc", "pool"})
# Fields only a workflow step has (routing and visits).
STEP_ONLY_KEYS = frozenset({"step", "next", "next_mode", "on_error", "max_visits", "result"})

STEP_KEYS = (
    STEP_ONLY_KEYS
    | ACTION_POLICY_KEYS
    | {"type", "description"}
    | set(INPUT_KEYS)
    | ALL_ACTION_FIELDS
)
ACTION_KEYS = ACTION_POLICY_KEYS | {"type", "description"} | set(INPUT_KEYS) | ALL_ACTION_FIELDS
TOP_KEYS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "path",
        "version",
        "description",
        "workload",
        "workbook",
        "workflow",
    }
)
METADATA_KEYS = frozenset(
    {"name", "path", "version", "description", "labels", "annotations", "tags"}
)
ARC_KEYS = frozenset({"step", "when", "then", "else", *ARC_DATA_KEYS})
ARC_TARGET_KEYS = frozenset({"step", *ARC_DATA_KEYS})
ROUTING_KEYS = frozenset({"spec", "arcs"})
ROUTING_SPEC_KEYS = frozenset({"mode"})
RETRY_KEYS = frozenset(
    {
        "max_attempts",
        "initial_delay",
        "backoff_multiplier",
        "max_delay",
        "jitter",
        "retry_when",
        "stop_when",
    }
)
ITERATOR_MODES = frozenset({"sequential", "async"})
DEFAULT_ASYNC_CONCURRENCY = 16


# --------------------------------------------------------------------------- paths


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    return f"{path}[{index}]"


def parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def hint(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class SourceMap:
    """Where each value of the YAML document is, by YAML path."""

    lines: dict[str, int] = field(default_factory=dict)  # path -> line of the value
    key_lines: dict[str, int] = field(default_factory=dict)  # path -> line of its key
    blocks: dict[str, int] = field(default_factory=dict)  # block scalar -> 1st text line

    def line(self, path: str) -> int:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return 0
            path = parent(path)

    def key_line(self, path: str) -> int:
        return self.key_lines.get(path) or self.line(path)

    def template_line(self, path: str, line_in_text: int) -> int:
        first = self.blocks.get(path)
        if first is None:
            return self.line(path)
        return first + max(line_in_text, 1) - 1


class Reporter:
    """Collects problems with their line and path."""

    def __init__(self, source: SourceMap, file: str) -> None:
        self.source = source
        self.file = file
        self.problems: list[Problem] = []

    def _add(self, severity: str, message: str, path: str, line: int | None, key: bool) -> None:
        if line is None:
            line = self.source.key_line(path) if key else self.source.line(path)
        self.problems.append(Problem(message, line, path, self.file, severity))

    def error(self, message: str, path: str, *, line: int | None = None, key: bool = False) -> None:
        self._add("error", message, path, line, key)

    def warn(self, message: str, path: str, *, line: int | None = None, key: bool = False) -> None:
        self._add("warning", message, path, line, key)

    def unknown_keys(
        self, mapping: Mapping[str, Any], known: Iterable[str], path: str, where: str
    ) -> None:
        known = frozenset(known)
        for key in mapping:
            if key not in known:
                self.warn(
                    f"unknown key '{key}' in {where}{hint(key, known)}", join(path, key), key=True
                )


# ------------------------------------------------------------------------ policies

_DURATION = re.compile(
    r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hours?)?\s*\Z",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def duration(value: Any) -> float | None:
    """Seconds from a number or a string like `500ms`, `30s`, `5m`, `1h`; None if bad."""
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            unit = (match.group(2) or "s").lower()
            scale = _UNIT_SECONDS["ms" if unit == "ms" else unit[0]]
            return float(match.group(1)) * scale
    return None


def parse_timeout(value: Any, path: str, r: Reporter) -> float | None:
    if value is None:
        return None
    seconds = duration(value)
    if seconds is None or seconds <= 0:
        r.error(
            f"bad timeout {value!r}: use seconds > 0, or a duration like "
            "'500ms', '30s', '5m', '1h'",
            path,
        )
        return None
    return seconds


def parse_max_visits(value: Any, path: str, r: Reporter) -> int:
    if value is None:
        return 1000
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        r.error(f"max_visits must be an integer >= 1, not {value!r}", path)
        return 1000
    return int(value)


def _condition(value: Any, path: str, r: Reporter, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    r.error(f"{what} must be a template string, not {value!r}", path)
    return None


def parse_retry(value: Any, path: str, r: Reporter) -> RetryPolicy | None:
    """`retry: true | N | {...}`; false or absent is no retry."""
    if value is None or value is False:
        return None
    if value is True:
        return RetryPolicy()
    if isinstance(value, int):
        if value < 1:
            r.error(f"retry must be an integer >= 1 (attempts), not {value}", path)
            return None
        return RetryPolicy(max_attempts=value)
    if not isinstance(value, Mapping):
        r.error(f"retry must be true, an integer or a mapping, not {value!r}", path)
        return None
    r.unknown_keys(value, RETRY_KEYS, path, "retry")
    policy = RetryPolicy()
    fields: dict[str, Any] = {}
    attempts = value.get("max_attempts", policy.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        r.error(
            f"retry max_attempts must be an integer >= 1, not {attempts!r}",
            join(path, "max_attempts"),
        )
    else:
        fields["max_attempts"] = attempts
    for key in ("initial_delay", "backoff_multiplier", "max_delay"):
        if key not in value:
            continue
        raw = value[key]
        number = raw if is_number(raw) else duration(raw) if key != "backoff_multiplier" else None
        if number is None or number < 0:
            r.error(f"retry {key} must be a number >= 0, not {raw!r}", join(path, key))
        else:
            fields[key] = float(number)
    if "jitter" in value:
        if isinstance(value["jitter"], bool):
            fields["jitter"] = value["jitter"]
        else:
            r.error(
                f"retry jitter must be true or false, not {value['jitter']!r}", join(path, "jitter")
            )
    for key in ("retry_when", "stop_when"):
        fields[key] = _condition(value.get(key), join(path, key), r, f"retry {key}")
    return RetryPolicy(**fields)


def check_iterator(spec: dict[str, Any], paths: Mapping[str, str], path: str, r: Reporter) -> None:
    """Check an iterator's own fields (not its task) and normalise `mode`,
    `concurrency` and `continue_on_error` in place (`parallel` is folded into mode)."""

    def where(key: str) -> str:
        return paths.get(key, join(path, key))

    collection = spec.get("collection")
    if collection is None:
        r.error("iterator needs 'collection'", path)
    elif not isinstance(collection, str | list | Mapping):
        r.error(
            f"iterator collection must be a list or a template, not {collection!r}",
            where("collection"),
        )
    element = spec.get("element")
    if element is None:
        r.error("iterator needs 'element' (the name of the current item)", path)
    elif not isinstance(element, str) or not IDENTIFIER.match(element):
        r.error(f"iterator element {element!r} is not an identifier", where("element"))
    mode = spec.get("mode")
    parallel = spec.pop("parallel", None)
    if parallel is not None and not isinstance(parallel, bool):
        r.error(f"iterator parallel must be true or false, not {parallel!r}", where("parallel"))
        parallel = None
    if mode is None:
        mode = "async" if parallel else "sequential"
    elif mode == "parallel":
        mode = "async"
    if not isinstance(mode, str) or mode not in ITERATOR_MODES:
        r.error(f"iterator mode must be 'sequential' or 'async', not {mode!r}", where("mode"))
        mode = "sequential"
    elif parallel is not None and parallel != (mode == "async"):
        r.error(
            f"iterator parallel: {str(parallel).lower()} contradicts mode '{mode}'",
            where("parallel"),
        )
    spec["mode"] = mode
    concurrency = spec.get("concurrency")
    if concurrency is None:
        spec["concurrency"] = DEFAULT_ASYNC_CONCURRENCY if mode == "async" else 1
    elif isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        r.error(
            f"iterator concurrency must be an integer >= 1, not {concurrency!r}",
            where("concurrency"),
        )
    cont = spec.setdefault("continue_on_error", False)
    if not isinstance(cont, bool):
        r.error(
            f"iterator continue_on_error must be true or false, not {cont!r}",
            where("continue_on_error"),
        )


# ----------------------------------------------------------------------- templates


def check_template(text: str, path: str, r: Reporter) -> None:
    from replaybook.template import TEMPLATES

    found = TEMPLATES.syntax_error(text)
    if found is not None:
        message, line = found
        r.error(f"template syntax error: {message}", path, line=r.source.template_line(path, line))


def check_templates(value: Any, path: str, r: Reporter) -> None:
    """Check every string inside `value`."""
    if isinstance(value, str):
        check_template(value, path, r)
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            check_templates(sub, join(path, str(key)), r)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            check_templates(sub, item(path, i), r)


def check_action_templates(value: Any, path: str, r: Reporter) -> None:
    """Like check_templates for a step, workbook action or iterator task: its `code`
    is not a template, and a `task` mapping is an action too."""
    if not isinstance(value, Mapping):
        check_templates(value, path, r)
        return
    for key, sub in value.items():
        if key == "code":
            continue
        if key == "task" and isinstance(sub, Mapping):
            check_action_templates(sub, join(path, key), r)
        else:
            check_templates(sub, join(path, str(key)), r)


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class StepRef:
    """What the graph checks need to know about one step."""

    name: str
    path: str  # path of the step mapping, e.g. workflow[2]
    # (kind, target, path of the scalar naming it); kind is "next" or "on_error"
    targets: tuple[tuple[str, str, str], ...] = ()


def check_graph(steps: list[StepRef], workflow_path: str, r: Reporter) -> None:
    seen: set[str] = set()
    for ref in steps:
        if ref.name in seen:
            r.error(f"duplicate step name '{ref.name}'", join(ref.path, "step"))
        seen.add(ref.name)
    for required in ("start", "end"):
        if required not in seen:
            r.error(f"missing step '{required}'", workflow_path, key=True)
    for ref in steps:
        for kind, target, path in ref.targets:
            if target not in seen:
                r.error(
                    f"unknown {kind} target '{target}' in step '{ref.name}'{hint(target, seen)}",
                    path,
                )

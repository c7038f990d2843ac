"""YAML text -> Playbook model, with every problem reported at once.

The YAML is composed into nodes (so every value keeps its line), converted to plain
Python values (mappings keep their key order) while a `SourceMap` records the line of
each YAML path; steps are then normalised (`dialects`) and checked (`validate`).
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from replaybook.errors import PlaybookInvalid, Problem
from replaybook.playbook.dialects import (
    Fields,
    fields_of,
    parse_routing,
    resolve_workbook,
    split_inputs,
    workbook_actions,
)
from replaybook.playbook.model import Playbook, RetryPolicy, Step
from replaybook.playbook.validate import (
    ACTION_FIELDS,
    ACTION_KEYS,
    ALL_ACTION_FIELDS,
    IDENTIFIER,
    METADATA_KEYS,
    ROUTER_TYPES,
    STEP_KEYS,
    TOP_KEYS,
    Reporter,
    SourceMap,
    StepRef,
    check_action_templates,
    check_graph,
    check_iterator,
    check_templates,
    hint,
    item,
    join,
    parse_max_visits,
    parse_retry,
    parse_timeout,
)

BUILTIN_TYPES = frozenset(
    {"python", "http", "duckdb", "postgres", "playbook", "iterator", "secrets", "workbook"}
)
API_VERSIONS = frozenset({"noetl.io/v1", "replaybook/v1"})
ENTRY_POINT_GROUP = "replaybook.actions"


def builtin_types() -> frozenset[str]:
    """The built-in action types plus the names registered by plugins (entry points of
    the `replaybook.actions` group; names only, nothing is imported)."""
    try:
        names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # a broken distribution must not break loading
        names = set()
    return BUILTIN_TYPES | names


def load_playbook(
    text: str,
    file: str = "<string>",
    *,
    strict: bool = False,
    known_types: Collection[str] | None = None,
) -> tuple[Playbook, list[Problem]]:
    """Parse and validate. Returns (playbook, warnings). Raises PlaybookInvalid with
    every error found; with `strict`, warnings are errors too."""
    types = frozenset(builtin_types() if known_types is None else known_types)
    r = Reporter(SourceMap(), file)
    doc = _parse_yaml(text, r)
    playbook = None if doc is None else _Builder(r, types).document(doc, text, file)
    problems = list(dict.fromkeys(r.problems))  # one report per problem, in order
    if strict:
        problems = [replace(p, severity="error") for p in problems]
    problems.sort(key=lambda p: (p.line == 0, p.line))
    errors = [p for p in problems if p.severity == "error"]
    if errors or playbook is None:
        raise PlaybookInvalid(errors)
    return playbook, problems


def load_file(
    path: str | Path,
    *,
    strict: bool = False,
    known_types: Collection[str] | None = None,
) -> tuple[Playbook, list[Problem]]:
    """load_playbook on a file; a missing or unreadable file is a PlaybookInvalid."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookInvalid([Problem(f"playbook file not found: '{name}'", file=name)]) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PlaybookInvalid(
            [Problem(f"cannot read playbook file '{name}': {reason}", file=name)]
        ) from None
    return load_playbook(text, name, strict=strict, known_types=known_types)


def task_step(step: Step) -> Step:
    """The Step an iterator step runs for each item (from its normalised `task`)."""
    task: Mapping[str, Any] = step.spec["task"]
    modelled = {"type", "args", "save", "retry", "timeout", "auth", "desc", "pool", "workbook"}
    retry = task.get("retry")
    return Step(
        name=step.name,
        type=task["type"],
        index=step.index,
        line=step.line,
        inputs=task.get("args"),
        spec={k: v for k, v in task.items() if k not in modelled},
        retry=RetryPolicy(**retry) if retry else None,
        timeout=task.get("timeout"),
        save=task.get("save"),
        auth=task.get("auth"),
        pool=task.get("pool"),
        desc=task.get("desc"),
        workbook=task.get("workbook"),
    )


# ---------------------------------------------------------------------------- YAML

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_CONSTRUCTED = frozenset({_TAG + "null", _TAG + "bool", _TAG + "int", _TAG + "float"})


def _parse_yaml(text: str, r: Reporter) -> Any:
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = f"YAML syntax error: {e.problem or e.context or 'invalid YAML'}"
        if e.context and e.context_mark and e.problem:
            message += f" ({e.context} at line {e.context_mark.line + 1})"
        r.error(message, "", line=mark.line + 1 if mark else 0)
        return None
    except yaml.YAMLError as e:  # reader errors: bad characters
        position = getattr(e, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 0
        r.error(f"YAML error: {str(e).splitlines()[0]}", "", line=line)
        return None
    if node is None:
        r.error("the playbook is empty", "", line=1)
        return None
    return _Converter(r).value(node, "")


def load_value(text: str) -> Any:
    """One YAML value (a `--set key=value` value) parsed the way a playbook's values
    are: null, booleans, numbers, and text, with timestamps and binaries kept as the
    text written (`2024-01-01` is the string "2024-01-01"), as in a workload. Raises
    ValueError when it is not valid YAML."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as e:
        raise ValueError(f"invalid YAML: {str(e).splitlines()[0]}") from None
    if node is None:
        return None
    r = Reporter(SourceMap(), "<value>")
    value = _Converter(r).value(node, "")
    if r.problems:  # an unknown tag, a recursive alias...
        raise ValueError(r.problems[0].message)
    return value


class _Converter:
    """YAML nodes -> plain values (str/int/float/bool/None, dict, list), recording the
    line of every path. Timestamps and binaries stay text, as written."""

    def __init__(self, r: Reporter) -> None:
        self.r = r
        self.source = r.source
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()  # collections being converted (alias loops)

    def value(self, node: yaml.Node, path: str) -> Any:
        self.source.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if node.style in ("|", ">"):
                self.source.blocks[path] = node.start_mark.line + 2
            if node.tag in _CONSTRUCTED:
                return self.constructor.construct_object(node, deep=True)
            if not node.tag.startswith(_TAG) and node.tag != "!":
                self.r.warn(f"YAML tag '{node.tag}' is ignored", path)
            return node.value
        if id(node) in self.active:
            self.r.error("recursive YAML alias", path)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(sub, item(path, i)) for i, sub in enumerate(node.value)]
            out: dict[str, Any] = {}
            self.mapping(node, path, out)
            return out
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.Node, path: str, out: dict[str, Any]) -> None:
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.merge(value_node, path, out)
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.r.error("mapping keys must be scalars", path, line=line)
                continue
            key = str(key_node.value)
            key_path = join(path, key)
            if key in seen:
                self.r.error(f"duplicate key '{key}'", key_path, line=line)
                continue
            seen.add(key)
            self.source.key_lines[key_path] = line
            out[key] = self.value(value_node, key_path)

    def merge(self, node: yaml.Node, path: str, out: dict[str, Any]) -> None:
        """`<<: *anchor` (or a list of them): keys not given explicitly."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode) or id(source) in self.active:
                self.r.error(
                    "a merge key '<<' needs a mapping", path, line=source.start_mark.line + 1
                )
                continue
            merged: dict[str, Any] = {}
            self.active.add(id(source))
            try:
                self.mapping(source, path, merged)
            finally:
                self.active.discard(id(source))
            for key, value in merged.items():
                out.setdefault(key, value)


# ------------------------------------------------------------------------ building


def _among(value: Any, names: Collection[str]) -> bool:
    return isinstance(value, str) and value in names


def _keys_known(type_value: Any) -> bool:
    """Whether unknown keys can be told: not for plugin types, whose fields we do not
    know (nor for an unknown type, which is an error already)."""
    return (
        not isinstance(type_value, str)
        or type_value in ROUTER_TYPES
        or (type_value in ACTION_FIELDS)
    )


@dataclass
class _Action:
    """An action's fields after workbook resolution, split into the modelled ones."""

    type: str | None
    inputs: Any = None
    spec: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout: float | None = None
    save: Any = None
    auth: Any = None
    desc: str | None = None
    pool: str | None = None
    workbook: str | None = None


class _Builder:
    def __init__(self, r: Reporter, types: frozenset[str]) -> None:
        self.r = r
        self.types = types | {"workbook"}
        self.actions: dict[str, tuple[dict[str, Any], str]] = {}

    # -- document

    def document(self, doc: Any, text: str, file: str) -> Playbook | None:
        r = self.r
        if not isinstance(doc, Mapping):
            r.error("a playbook must be a YAML mapping", "", line=1)
            return None
        r.unknown_keys(doc, TOP_KEYS, "", "the playbook")
        api = doc.get("apiVersion")
        if api is not None and not _among(api, API_VERSIONS):
            r.error(
                f"unsupported apiVersion {api!r} (use {' or '.join(sorted(API_VERSIONS))})",
                "apiVersion",
            )
        if doc.get("kind", "Playbook") != "Playbook":
            r.error(f"kind must be 'Playbook', not {doc['kind']!r}", "kind")
        name, path, version, description = self.metadata(doc)
        workload = doc.get("workload")
        if workload is None:
            workload = {}
        elif not isinstance(workload, Mapping):
            r.error("workload must be a mapping", "workload")
            workload = {}
        else:
            _check_finite(workload, "workload", r)
        check_templates(workload, "workload", r)
        self.actions = workbook_actions(doc.get("workbook"), "workbook", r)
        for action_name, (action, action_path) in self.actions.items():
            self.check_action(action_name, action, action_path)
        steps = self.workflow(doc)
        return Playbook(
            name=name,
            path=path,
            version=version,
            description=description,
            workload=dict(workload),
            workbook={k: action for k, (action, _) in self.actions.items()},
            steps=tuple(steps),
            source=text,
            file=file,
        )

    def metadata(self, doc: Mapping[str, Any]) -> tuple[str, str, int | None, str | None]:
        r = self.r
        meta = doc.get("metadata")
        if meta is None:
            meta = {}
        elif not isinstance(meta, Mapping):
            r.error("metadata must be a mapping", "metadata")
            meta = {}
        r.unknown_keys(meta, METADATA_KEYS, "metadata", "metadata")

        def get(key: str) -> tuple[Any, str]:
            if meta.get(key) is not None:
                return meta[key], f"metadata.{key}"
            return doc.get(key), key

        name, name_path = get("name")
        if name is None:
            r.error("missing metadata.name", "metadata" if "metadata" in doc else "", key=True)
            name = ""
        elif not isinstance(name, str) or not name:
            r.error(f"metadata.name must be a non-empty string, not {name!r}", name_path)
            name = str(name)
        path, path_path = get("path")
        if path is not None and (not isinstance(path, str) or not path):
            r.error(f"metadata.path must be a non-empty string, not {path!r}", path_path)
            path = None
        version, version_path = get("version")
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            r.warn(f"metadata.version must be an integer; {version!r} is ignored", version_path)
            version = None
        description, _ = get("description")
        return name, path or name, version, None if description is None else str(description)

    def workflow(self, doc: Mapping[str, Any]) -> list[Step]:
        workflow = doc.get("workflow")
        steps: list[Step] = []
        refs: list[StepRef] = []
        if workflow is None:
            self.r.error("missing 'workflow' (the list of steps)", "", line=1)
            workflow = []
        elif not isinstance(workflow, list):
            self.r.error("workflow must be a list of steps", "workflow")
            workflow = []
        for index, raw in enumerate(workflow):
            path = item("workflow", index)
            check_action_templates(raw, path, self.r)
            built = self.step(raw, path, index)
            if built is not None:
                steps.append(built[0])
                refs.append(built[1])
        check_graph(refs, "workflow", self.r)
        return steps

    # -- steps

    def step(self, raw: Any, path: str, index: int) -> tuple[Step, StepRef] | None:
        r = self.r
        if not isinstance(raw, Mapping):
            r.error("a step must be a mapping", path)
            return None
        name = raw.get("step")
        if name is None:
            r.error("step needs a name ('step: ...')", path)
            name = f"#{index}"
        elif not isinstance(name, str) or not IDENTIFIER.match(name):
            r.error(
                f"step name {name!r} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)",
                join(path, "step"),
            )
            name = str(name)
        label = f"step '{name}'"
        raw_type = raw.get("type")
        if raw_type is None or _among(raw_type, ROUTER_TYPES):
            for key in raw:
                if key in ALL_ACTION_FIELDS:
                    r.warn(
                        f"'{key}' has no effect on {label}, which has no type (a router)",
                        join(path, key),
                        key=True,
                    )
        if _keys_known(raw_type):
            r.unknown_keys(raw, STEP_KEYS, path, label)
        if "result" in raw and name != "end":
            r.warn(
                f"'result' only applies to step 'end', not {label}", join(path, "result"), key=True
            )

        fields = fields_of(raw, path)
        fields.pop("step", None)
        next_value, next_path = fields.pop("next", (None, path))
        mode = fields.pop("next_mode", None)
        error_value, error_path = fields.pop("on_error", (None, path))
        visits_value, visits_path = fields.pop("max_visits", (None, path))
        result = fields.pop("result", (None, path))[0]
        action = self.action(fields, path, label)
        nxt = parse_routing(next_value, next_path, r, what="next", mode=mode)
        on_error = parse_routing(error_value, error_path, r, what="on_error")
        step = Step(
            name=name,
            type=action.type,
            index=index,
            line=r.source.line(path),
            inputs=action.inputs,
            spec=action.spec,
            next=nxt.routing,
            on_error=on_error.routing,
            retry=action.retry,
            timeout=action.timeout,
            max_visits=parse_max_visits(visits_value, visits_path, r),
            save=action.save,
            auth=action.auth,
            result=result,
            pool=action.pool,
            desc=action.desc,
            workbook=action.workbook,
        )
        targets = [("next", t, p) for t, p in nxt.targets]
        targets += [("on_error", t, p) for t, p in on_error.targets]
        return step, StepRef(name, path, tuple(targets))

    def check_action(self, name: str, action: Mapping[str, Any], path: str) -> None:
        """Check a workbook action on its own (a step using it is checked again, merged;
        the same problem is reported once)."""
        if _keys_known(action.get("type")):
            self.r.unknown_keys(action, ACTION_KEYS, path, f"workbook action '{name}'")
        check_action_templates(action, path, self.r)
        if action.get("type") in (None, "workbook"):
            return  # reported by workbook_actions
        fields = fields_of(action, path)
        fields.pop("name", None)
        self.action(fields, path, f"workbook action '{name}'")

    def action(self, fields: Fields, path: str, what: str) -> _Action:
        r = self.r
        type_value, type_path = fields.get("type", (None, path))
        workbook = None
        if type_value == "workbook":
            resolved = resolve_workbook(fields, path, what, self.actions, r)
            fields, inputs, workbook = resolved.fields, resolved.inputs, resolved.workbook
            if resolved.ok:
                type_value, type_path = fields["type"]
        else:
            fields = dict(fields)
            inputs = split_inputs(fields, r)
        fields.pop("type", None)
        action = _Action(self.check_type(type_value, type_path), inputs, workbook=workbook)

        def pop(key: str) -> tuple[Any, str]:
            return fields.pop(key, (None, join(path, key)))

        action.retry = parse_retry(*pop("retry"), r)
        action.timeout = parse_timeout(*pop("timeout"), r)
        action.save = self.typed(pop("save"), Mapping, "save must be a mapping")
        action.auth = self.typed(
            pop("auth"),
            str | Mapping | list,
            "auth must be a credential name, a mapping, or a list of them (duckdb)",
        )
        action.pool = self.typed(pop("pool"), str, "pool must be a string")
        desc = pop("desc")[0]
        description = pop("description")[0]
        desc = description if desc is None else desc
        action.desc = None if desc is None else str(desc)
        action.spec = {key: value for key, (value, _) in fields.items()}
        if action.type == "iterator":
            paths = {key: p for key, (_, p) in fields.items()}
            check_iterator(action.spec, paths, path, r)
            if "task" in action.spec:
                action.spec["task"] = self.task(action.spec["task"], paths["task"])
            else:
                r.error("iterator needs 'task' (the action to run per item)", path)
        return action

    def check_type(self, value: Any, path: str) -> str | None:
        if value is None or _among(value, ROUTER_TYPES):
            return None
        if not isinstance(value, str):
            self.r.error(f"step type must be a string, not {value!r}", path)
            return None
        if value not in self.types:
            self.r.error(f"unknown step type '{value}'{hint(value, self.types)}", path)
        return value

    def typed(self, value_path: tuple[Any, str], kind: Any, message: str) -> Any:
        value, path = value_path
        if value is not None and not isinstance(value, kind):
            self.r.error(f"{message}, not {value!r}", path)
            return None
        return value

    def task(self, value: Any, path: str) -> Any:
        """An iterator's task -> a plain dict: `type` (after workbook resolution),
        its action fields, then `args` (inputs merged), `save`, `retry` (the full
        policy as a mapping), `timeout` (seconds), `auth`, `workbook`."""
        r = self.r
        if not isinstance(value, Mapping):
            r.error("iterator task must be a mapping with a 'type'", path)
            return value
        if _keys_known(value.get("type")):
            r.unknown_keys(value, ACTION_KEYS, path, "iterator task")
        if value.get("type") is None or _among(value.get("type"), ROUTER_TYPES):
            r.error("iterator task needs an action 'type'", path)
            return dict(value)
        action = self.action(fields_of(value, path), path, "iterator task")
        out: dict[str, Any] = {"type": action.type, **action.spec}
        extra = {
            "args": action.inputs,
            "save": action.save,
            "retry": asdict(action.retry) if action.retry else None,
            "timeout": action.timeout,
            "auth": action.auth,
            "desc": action.desc,
            "pool": action.pool,
            "workbook": action.workbook,
        }
        out.update((k, v) for k, v in extra.items() if v is not None)
        return out


def _check_finite(value: Any, path: str, r: Reporter) -> None:
    """NaN and infinities (YAML `.nan`, `.inf`) are not JSON: an execution could not
    record a workload holding one."""
    if isinstance(value, float) and not math.isfinite(value):
        r.error(f"{value!r} is not a JSON number (NaN and infinities are not)", path)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, join(path, str(k)), r)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, item(path, i), r)

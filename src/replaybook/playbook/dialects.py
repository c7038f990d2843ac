"""Normalising the spellings a playbook may use (Replaybook's and NoETL's) into one
shape: input aliases, the forms of `next`/`on_error`, the two forms of `workbook`, and
`type: workbook` steps resolved against their action.

Fields travel as `Fields`: key -> (value, YAML path of the value), so that a field
that came from a workbook action is still reported at the action's line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replaybook.playbook.model import Arc, Routing
from replaybook.playbook.validate import (
    ARC_DATA_KEYS,
    ARC_KEYS,
    ARC_TARGET_KEYS,
    INPUT_KEYS,
    ROUTING_KEYS,
    ROUTING_SPEC_KEYS,
    STEP_ONLY_KEYS,
    Reporter,
    hint,
    item,
    join,
)

Fields = dict[str, tuple[Any, str]]


def fields_of(mapping: Mapping[str, Any], path: str) -> Fields:
    return {key: (value, join(path, key)) for key, value in mapping.items()}


# -------------------------------------------------------------------------- inputs


def merge_inputs(sources: Sequence[tuple[Any, str]], r: Reporter, what: str = "inputs") -> Any:
    """Merge input mappings given under several aliases (later sources win a key).

    Each source is a mapping or one template string; a lone string is kept as it is.
    None when nothing is given."""
    given = [(value, path) for value, path in sources if value is not None]
    if not given:
        return None
    for value, path in given:
        if not isinstance(value, Mapping | str):
            r.error(f"{what} must be a mapping or a template string, not {value!r}", path)
    given = [(value, path) for value, path in given if isinstance(value, Mapping | str)]
    if len(given) == 1:
        value = given[0][0]
        return dict(value) if isinstance(value, Mapping) else value
    merged: dict[str, Any] = {}
    for value, path in given:
        if isinstance(value, str):
            r.error(
                f"{what} given as a template string cannot be merged with other "
                f"{what} ({', '.join(p.rsplit('.', 1)[-1] for _, p in given)})",
                path,
            )
        else:
            merged.update(value)
    return merged


def split_inputs(fields: Fields, r: Reporter, keys: Sequence[str] = INPUT_KEYS) -> Any:
    """Remove the input aliases from `fields` and return the merged inputs."""
    sources = [fields.pop(key) for key in keys if key in fields]
    return merge_inputs(sources, r)


def overlay_inputs(base: Any, top: Any, path: str, r: Reporter) -> Any:
    """A step's inputs merged over its workbook action's (the step wins per key)."""
    if base is None:
        return top
    if top is None:
        return base
    if isinstance(base, Mapping) and isinstance(top, Mapping):
        return {**base, **top}
    r.error(
        "inputs given as a template string cannot be merged with the workbook action's inputs", path
    )
    return top


# ------------------------------------------------------------------------- routing


@dataclass
class ParsedRouting:
    routing: Routing = field(default_factory=Routing)
    # (target, YAML path of the scalar naming it), one per arc
    targets: list[tuple[str, str]] = field(default_factory=list)


class _RoutingParser:
    def __init__(self, r: Reporter, what: str) -> None:
        self.r = r
        self.what = what
        self.arcs: list[Arc] = []
        self.targets: list[tuple[str, str]] = []
        self.group = 0

    def add(
        self,
        target: Any,
        target_path: str,
        *,
        item_path: str,
        when: str | None = None,
        is_else: bool = False,
        data: Any = None,
    ) -> None:
        if not isinstance(target, str) or not target:
            self.r.error(f"{self.what} target must be a step name, not {target!r}", target_path)
            return
        self.arcs.append(
            Arc(
                target=target,
                when=when,
                is_else=is_else,
                data=data,
                path=item_path,
                group=self.group,
            )
        )
        self.targets.append((target, target_path))

    def arc_data(self, mapping: Mapping[str, Any], path: str) -> Any:
        sources = [(mapping[k], join(path, k)) for k in ARC_DATA_KEYS if k in mapping]
        return merge_inputs(sources, self.r, f"{self.what} data")

    def target_items(self, value: Any, path: str, item_path: str, **arc: Any) -> None:
        """A `then`/`else` value: a step name, a {step, data} or a list of those."""
        if isinstance(value, list):
            if not value:
                self.r.error(f"empty list of {self.what} targets", path)
            for i, sub in enumerate(value):
                self.target_item(sub, item(path, i), item_path, **arc)
        elif value is None:
            self.r.error(f"missing {self.what} target", path)
        else:
            self.target_item(value, path, item_path, **arc)

    def target_item(self, value: Any, path: str, item_path: str, **arc: Any) -> None:
        if isinstance(value, Mapping):
            if "when" in value:
                self.r.error(
                    f"a 'when' cannot be nested inside 'then'/'else' of {self.what}",
                    join(path, "when"),
                    key=True,
                )
            self.r.unknown_keys(value, ARC_TARGET_KEYS, path, f"{self.what} target")
            if "step" not in value:
                self.r.error(f"{self.what} target needs 'step'", path)
                return
            self.add(
                value["step"],
                join(path, "step"),
                item_path=item_path,
                data=self.arc_data(value, path),
                **arc,
            )
        else:
            self.add(value, path, item_path=item_path, **arc)

    def item(self, value: Any, path: str) -> None:
        self.group += 1
        if not isinstance(value, Mapping):
            self.add(value, path, item_path=path)
            return
        self.r.unknown_keys(value, ARC_KEYS, path, f"{self.what} item")
        has_targets = "step" in value or "then" in value
        if "when" in value and not has_targets:
            self.r.error(f"'when' without 'then' or 'step' in {self.what}", path)
        elif not has_targets and "else" not in value:
            self.r.error(f"{self.what} item needs 'step', 'then' or 'else'", path)
            return
        when: str | None = None
        if "when" in value:
            raw = value["when"]
            if isinstance(raw, bool):
                when = "true" if raw else "false"
            elif isinstance(raw, str):
                when = raw
            else:
                self.r.error(f"'when' must be a template string, not {raw!r}", join(path, "when"))
                when = "false"
        if "step" in value:
            self.add(
                value["step"],
                join(path, "step"),
                item_path=path,
                when=when,
                data=self.arc_data(value, path),
            )
        elif any(k in value for k in ARC_DATA_KEYS):
            self.r.error(f"edge data needs 'step' in the same {self.what} item", path)
        if "then" in value:
            self.target_items(value["then"], join(path, "then"), path, when=when)
        if "else" in value:
            if has_targets:
                self.group += 1
            self.target_items(value["else"], join(path, "else"), path, is_else=True)


def parse_routing(
    value: Any, path: str, r: Reporter, *, what: str = "next", mode: tuple[Any, str] | None = None
) -> ParsedRouting:
    """Any accepted form of `next`/`on_error` -> arcs. `mode` is `next_mode` if given."""
    if value is None:
        if mode is not None:
            _inclusive(mode[0], mode[1], r)
        return ParsedRouting()
    parser = _RoutingParser(r, what)
    items: list[tuple[Any, str]] = []
    if isinstance(value, list):
        items = [(sub, item(path, i)) for i, sub in enumerate(value)]
    elif isinstance(value, Mapping) and ("arcs" in value or "spec" in value):
        r.unknown_keys(value, ROUTING_KEYS, path, what)
        spec = value.get("spec")
        spec_path = join(path, "spec")
        if isinstance(spec, Mapping):
            r.unknown_keys(spec, ROUTING_SPEC_KEYS, spec_path, f"{what} spec")
            if "mode" in spec and mode is None:
                mode = (spec["mode"], join(spec_path, "mode"))
        elif spec is not None:
            r.error(f"{what} spec must be a mapping", spec_path)
        arcs = value.get("arcs")
        arcs_path = join(path, "arcs")
        if isinstance(arcs, list):
            items = [(sub, item(arcs_path, i)) for i, sub in enumerate(arcs)]
        elif arcs is not None:
            r.error(f"{what} arcs must be a list", arcs_path)
    else:
        items = [(value, path)]
    for sub, sub_path in items:
        parser.item(sub, sub_path)
    inclusive = _inclusive(mode[0], mode[1], r) if mode is not None else False
    return ParsedRouting(Routing(tuple(parser.arcs), inclusive), parser.targets)


def _inclusive(mode: Any, path: str, r: Reporter) -> bool:
    if mode in (None, "exclusive"):
        return False
    if mode == "inclusive":
        return True
    r.error(f"routing mode must be 'exclusive' or 'inclusive', not {mode!r}", path)
    return False


# ------------------------------------------------------------------------ workbook


def workbook_actions(value: Any, path: str, r: Reporter) -> dict[str, tuple[dict[str, Any], str]]:
    """`workbook` as a list of actions with `name` or a mapping name -> action:
    name -> (action with `name` and `type`, YAML path of the action)."""
    entries: list[tuple[Any, Any, str, str]] = []  # (name, action, action path, name path)
    if value is None:
        return {}
    if isinstance(value, list):
        for i, action in enumerate(value):
            apath = item(path, i)
            name = action.get("name") if isinstance(action, Mapping) else None
            entries.append((name, action, apath, join(apath, "name")))
    elif isinstance(value, Mapping):
        for name, action in value.items():
            apath = join(path, name)
            if isinstance(action, Mapping) and action.get("name", name) != name:
                r.warn(
                    f"workbook action '{name}' has a different 'name' "
                    f"({action['name']!r}); the key is used",
                    join(apath, "name"),
                    key=True,
                )
            if isinstance(action, Mapping):
                action = {"name": name, **{k: v for k, v in action.items() if k != "name"}}
            entries.append((name, action, apath, apath))
    else:
        r.error("workbook must be a list of actions or a mapping of name -> action", path)
        return {}
    actions: dict[str, tuple[dict[str, Any], str]] = {}
    for name, action, apath, name_path in entries:
        if not isinstance(action, Mapping):
            r.error("workbook action must be a mapping", apath)
            continue
        if not isinstance(name, str) or not name:
            r.error("workbook action needs a 'name'", apath)
            continue
        if name in actions:
            r.error(f"duplicate workbook action name '{name}'", name_path, key=True)
            continue
        if action.get("type") is None:
            r.error(f"workbook action '{name}' needs a 'type'", apath)
        elif action.get("type") == "workbook":
            r.error(
                f"workbook action '{name}' cannot itself be of type workbook", join(apath, "type")
            )
        actions[name] = (dict(action), apath)
    return actions


@dataclass
class Resolved:
    fields: Fields
    inputs: Any
    workbook: str | None = None
    ok: bool = True  # False when the reference could not be resolved


def resolve_workbook(
    fields: Fields,
    path: str,
    what: str,
    actions: Mapping[str, tuple[dict[str, Any], str]],
    r: Reporter,
) -> Resolved:
    """Inline the action named by a `type: workbook` step (or iterator task).

    The result's fields are the action's (minus name/type and step-only keys) overlaid
    with the step's own; the step's inputs merge over the action's."""
    own = dict(fields)
    own.pop("type", None)
    ref, ref_path = own.pop("name", None) or own.pop("task", None) or (None, path)
    own.pop("task", None)
    inputs = split_inputs(own, r)
    if ref is None:
        r.error(f"{what} of type workbook needs 'name' (the workbook action)", path)
        return Resolved(own, inputs, ok=False)
    if not isinstance(ref, str) or ref not in actions:
        r.error(f"unknown workbook action {ref!r}{hint(str(ref), actions)}", ref_path)
        return Resolved(own, inputs, ok=False)
    action, action_path = actions[ref]
    if action.get("type") in (None, "workbook"):
        return Resolved(own, inputs, ok=False)  # reported with the workbook
    base = {
        k: v
        for k, v in fields_of(action, action_path).items()
        if k not in STEP_ONLY_KEYS and k != "name"
    }
    base_inputs = split_inputs(base, r)
    merged = {"type": base.pop("type"), **base, **own}
    return Resolved(merged, overlay_inputs(base_inputs, inputs, path, r), ref)

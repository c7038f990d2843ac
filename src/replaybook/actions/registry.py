"""Action types by name: the built-ins, then plugins from entry points.

    get_action(type_name) -> Action      one shared instance per type; ActionError if unknown
    action_types() -> frozenset[str]     every known type name (plugins not imported)

Built-ins are listed below as "module:Class" and imported on first use, so importing
this module is cheap (httpx and duckdb load only when a step of that type runs).
Plugins come from the `replaybook.actions` entry-point group:

    [project.entry-points."replaybook.actions"]
    mytype = "my_package.module:MyAction"     # a class (instantiated once) or an instance

A built-in name wins over a plugin of the same name.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from replaybook.errors import ActionError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from replaybook.actions.base import Action

ENTRY_POINT_GROUP = "replaybook.actions"

# Built-in action types. Add new ones here ("type name": "module:Class").
_BUILTINS: dict[str, str] = {
    "python": "replaybook.actions.python:PythonAction",
    "http": "replaybook.actions.http:HttpAction",
    "duckdb": "replaybook.actions.duckdb:DuckDBAction",
    "postgres": "replaybook.actions.postgres:PostgresAction",
    "secrets": "replaybook.actions.secrets:SecretsAction",
    "playbook": "replaybook.actions.playbook:PlaybookAction",
    # "iterator": ... (if iterators become an action rather than an executor feature)
}

_lock = threading.RLock()
_instances: dict[str, Action] = {}
_plugins: dict[str, EntryPoint] | None = None


def get_action(type_name: str) -> Action:
    """The action for `type_name` (created once, then shared)."""
    action = _instances.get(type_name)
    if action is not None:
        return action
    with _lock:
        action = _instances.get(type_name)
        if action is None:
            action = _load(type_name)
            _instances[type_name] = action
        return action


def action_types() -> frozenset[str]:
    """Names of every built-in and plugin action type."""
    return frozenset(_BUILTINS) | frozenset(_plugin_entry_points())


def _load(type_name: str) -> Action:
    target = _BUILTINS.get(type_name)
    if target is not None:
        module_name, _, attr = target.partition(":")
        obj: Any = getattr(importlib.import_module(module_name), attr)
        source = f"built-in {target}"
    else:
        entry_point = _plugin_entry_points().get(type_name)
        if entry_point is None:
            known = ", ".join(sorted(action_types()))
            raise ActionError(f"unknown step type {type_name!r} (known: {known})")
        source = f"plugin {entry_point.value}"
        try:
            obj = entry_point.load()
        except Exception as exc:
            raise ActionError(f"step type {type_name!r}: cannot load {source}: {exc}") from exc
    action = obj() if isinstance(obj, type) else obj
    if not callable(getattr(action, "run", None)):
        raise ActionError(f"step type {type_name!r}: {source} has no run() method")
    if not hasattr(action, "raw_fields"):
        raise ActionError(f"step type {type_name!r}: {source} has no raw_fields")
    result: Action = action
    return result


def _plugin_entry_points() -> dict[str, EntryPoint]:
    global _plugins
    with _lock:
        if _plugins is None:
            from importlib.metadata import entry_points

            _plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return _plugins


def _reset_for_tests() -> None:
    """Forget loaded actions and plugins (tests that install entry points)."""
    global _plugins
    with _lock:
        _instances.clear()
        _plugins = None

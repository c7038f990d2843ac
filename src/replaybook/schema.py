"""A JSON Schema for playbooks, generated from pydantic models of the document.

The runtime loader (`playbook/load.py`) stays the authority: it reports every problem
with its line and path. This model exists so that editors validate and complete YAML.
It is built from the loader's own key tables (`playbook/validate.py`), so a field added
there without a type here fails `playbook_schema()` (and its test) instead of drifting.

What a schema cannot express is left to the loader: unique step names, `next` targets
that name existing steps, template syntax, YAML syntax, which plugin types are
installed. Unknown keys are rejected for the built-in types (the loader warns about
them; `validate --strict` rejects them), never for plugin types, whose fields we do
not know.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from replaybook.playbook.validate import (
    ACTION_FIELDS,
    ACTION_POLICY_KEYS,
    ARC_DATA_KEYS,
    COMMON_ACTION_FIELDS,
    INPUT_KEYS,
    METADATA_KEYS,
    ROUTER_TYPES,
    STEP_ONLY_KEYS,
    TOP_KEYS,
)

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = (
    r"^\s*(\d+(\.\d*)?|\.\d+)\s*"
    r"([mM][sS]|[sS]|[sS][eE][cC][sS]?|[sS]econds?|[mM]|[mM]in|[mM]ins|[mM]inutes?"
    r"|[hH]|[hH][rR]|[hH]ours?)?\s*$"
)

Template = Annotated[str, Field(description="A Jinja template, e.g. '{{ workload.x }}'.")]
Condition = Annotated[str | bool, Field(description="A template that renders true or false.")]
Duration = Annotated[
    float | Annotated[str, Field(pattern=_DURATION)],
    Field(description="Seconds, or a duration like '500ms', '30s', '5m', '1h'."),
]
PositiveInt = Annotated[int, Field(ge=1)]
Inputs = Annotated[
    dict[str, Any] | str,
    Field(description="Inputs: a mapping (values may be templates) or one template."),
]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ----------------------------------------------------------------------- policies


class RetryPolicy(_Closed):
    """How often and when an attempt is retried."""

    max_attempts: PositiveInt | None = None
    initial_delay: Annotated[float, Field(ge=0)] | Duration | None = None
    backoff_multiplier: Annotated[float, Field(ge=0)] | None = None
    max_delay: Annotated[float, Field(ge=0)] | Duration | None = None
    jitter: bool | None = None
    retry_when: Condition | None = None
    stop_when: Condition | None = None


Retry = Annotated[
    bool | PositiveInt | RetryPolicy,
    Field(description="true, a number of attempts, or a retry policy."),
]
PositiveDuration = Annotated[
    Annotated[float, Field(gt=0)] | Annotated[str, Field(pattern=_DURATION)],
    Field(description="Seconds > 0, or a duration like '500ms', '30s', '5m', '1h'."),
]


def _data_fields() -> dict[str, Any]:
    """The edge-data aliases (`input`, `with`, `args`, `data`) of an arc."""
    return {_py(k): (Inputs | None, Field(None, alias=k)) for k in ARC_DATA_KEYS}


def _py(key: str) -> str:
    return f"{key}_" if key in {"with", "else", "json"} else key


ArcTarget = create_model(
    "ArcTarget",
    __base__=_Closed,
    __doc__="A target step, with data for it.",
    step=(str, Field(description="The target step.")),
    **_data_fields(),
)
Target = str | ArcTarget
Targets = Target | Annotated[list[Target], Field(min_length=1)]  # type: ignore[valid-type]


def _arc_fields() -> dict[str, Any]:
    return {
        "step": (str | None, Field(None, description="The target step.")),
        "when": (Condition | None, Field(None)),
        "then": (Targets | None, Field(None)),
        "else_": (Targets | None, Field(None, alias="else")),
        **_data_fields(),
    }


Arc = create_model(
    "Arc",
    __doc__="A routing arc: a target step, or when/then/else.",
    __config__=ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "anyOf": [{"required": ["step"]}, {"required": ["then"]}, {"required": ["else"]}]
        },
    ),
    **_arc_fields(),
)


class RoutingSpec(_Closed):
    mode: Literal["exclusive", "inclusive"] | None = None


class RoutingBlock(_Closed):
    """NoETL's routing block: `{spec: {mode}, arcs: [...]}`."""

    spec: RoutingSpec | None = None
    arcs: list[str | Arc] | None = None  # type: ignore[valid-type]


Routing = Annotated[
    str | Arc | list[str | Arc] | RoutingBlock,  # type: ignore[valid-type]
    Field(description="A step name, an arc, a list of them, or {spec, arcs}."),
]

# ------------------------------------------------------------------ action fields

_SQL = Annotated[str, Field(description="SQL (may be a template).")]
_COMMON_TYPES: dict[str, Any] = {
    "max_result_bytes": PositiveInt,
    "params": dict[str, Any] | list[Any] | str,
    "max_rows": PositiveInt | str,
    **{k: _SQL for k in ("sql", "command", "query", "script", "command_b64")},
    "commands": _SQL | list[str],
    "commands_b64": str,
}
# Per type, the type of each of its action fields (validate.ACTION_FIELDS names them).
FIELD_TYPES: dict[str, dict[str, Any]] = {
    "python": {
        "code": Annotated[str, Field(description="Python source defining main(...).")],
        "code_b64": str,
        "module": str,
        "callable": str,
        "function": str,
    },
    "http": {
        "method": str,
        "url": Template,
        "endpoint": Template,
        "headers": dict[str, Any] | str,
        "params": dict[str, Any] | str,
        "body": Any,
        "json": Any,
        "payload": Any,
        "verify": bool | str,
        "follow_redirects": bool | str,
        "fail_on_status": bool | str,
    },
    "duckdb": {"database": str},
    "postgres": {
        "connection": str | dict[str, Any],
        "dsn": str,
        **{k: str | int for k in ("db_host", "db_port", "db_user", "db_password", "db_name")},
        "db_schema": str,
        "db_sslmode": str,
    },
    "playbook": {
        "path": Annotated[str, Field(description="Catalog path of the child playbook.")],
        "version": int | str,
        "return_step": str,
    },
    "iterator": {
        "collection": Annotated[
            str | list[Any] | dict[str, Any],
            Field(description="A list, or a template rendering one."),
        ],
        "element": Annotated[str, Field(pattern=_IDENTIFIER)],
        "task": Any,  # set below: an action model
        "mode": Literal["sequential", "async", "parallel"],
        "concurrency": PositiveInt,
        "continue_on_error": bool,
        "parallel": bool,
    },
    "secrets": {k: str for k in ("provider", "name", "path", "key", "field")},
    "workbook": {
        "name": Annotated[str, Field(description="The workbook action to run.")],
        "task": Annotated[str, Field(description="The workbook action (NoETL spelling).")],
    },
}
_REQUIRED: dict[str, frozenset[str]] = {"iterator": frozenset({"collection", "element", "task"})}
_ROUTER_FIELDS = frozenset[str]()
BUILTIN_ACTION_TYPES = tuple(ACTION_FIELDS)

_POLICY_TYPES: dict[str, Any] = {
    "save": dict[str, Any],
    "retry": Retry,
    "timeout": PositiveDuration,
    "auth": Annotated[str | dict[str, Any], Field(description="A credential name or mapping.")],
    "desc": str,
    "pool": str,
}
_STEP_TYPES: dict[str, Any] = {
    "step": Annotated[str, Field(pattern=_IDENTIFIER, description="The step name.")],
    "next": Routing,
    "next_mode": Literal["exclusive", "inclusive"],
    "on_error": Routing,
    "max_visits": PositiveInt,
    "result": Annotated[Any, Field(description="What `end` returns (templates).")],
}


def _field_type(action: str, key: str) -> Any:
    types = FIELD_TYPES.get(action, {})
    return types[key] if key in types else _COMMON_TYPES[key]


def _fields(
    keys: frozenset[str], types: dict[str, Any], required: frozenset[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(keys):
        kind = types[key]
        out[_py(key)] = (
            (kind, Field(alias=key))
            if key in required
            else (
                kind | None,
                Field(None, alias=key),
            )
        )
    return out


def _action_model(
    name: str, action: str | None, context: str, task_model: Any = None, plugin: bool = False
) -> Any:
    """One model of a step (`context` "step"), workbook action or iterator task."""
    own = frozenset() if action is None or plugin else ACTION_FIELDS[action] | COMMON_ACTION_FIELDS
    types: dict[str, Any] = {**_POLICY_TYPES, "description": str}
    types.update({k: Inputs for k in INPUT_KEYS})
    types.update({k: _field_type(action, k) for k in own if action is not None})
    if action == "iterator":
        types["task"] = task_model
    required = set(_REQUIRED.get(action or "", frozenset()))
    keys = set(own) | ACTION_POLICY_KEYS | {"description"} | set(INPUT_KEYS)
    if context == "step":
        types.update(_STEP_TYPES)
        keys |= STEP_ONLY_KEYS
        required.add("step")
    if context == "action":
        types["name"] = str
        keys.add("name")
        required.add("name")
    if plugin:
        type_field: Any = (
            Annotated[
                str,
                Field(
                    description="A plugin action type.",
                    json_schema_extra={
                        "not": {"enum": [*BUILTIN_ACTION_TYPES, *sorted(ROUTER_TYPES)]}
                    },
                ),
            ],
            ...,
        )
    elif action is None:
        type_field = (Literal[tuple(sorted(ROUTER_TYPES))] | None, None)
    else:
        type_field = (Literal[action], ...)
    base = BaseModel if plugin else _Closed
    config = ConfigDict(extra="allow", populate_by_name=True) if plugin else None
    fields = _fields(frozenset(keys), types, frozenset(required))
    fields["type"] = type_field
    if config is not None:
        return create_model(name, __config__=config, **fields)
    return create_model(name, __base__=base, **fields)


def _variants(context: str, task_model: Any = None) -> Any:
    """The union of one model per built-in type (routers only for steps) and a plugin."""
    suffix = {"step": "Step", "action": "Action", "task": "Task"}[context]
    models: list[Any] = []
    if context == "step":
        models.append(_action_model("RouterStep", None, context))
    for action in BUILTIN_ACTION_TYPES:
        if action == "workbook" and context == "action":
            continue  # a workbook action cannot itself be of type workbook
        title = f"{action.capitalize()}{suffix}"
        models.append(_action_model(title, action, context, task_model))
    models.append(_action_model(f"Plugin{suffix}", "plugin", context, plugin=True))
    union: Any = models[0]
    for model in models[1:]:
        union = union | model
    return union


# An iterator task may itself be an iterator; its own task is left open.
Task = _variants("task", dict[str, Any])
Step = _variants("step", Task)
WorkbookAction = _variants("action", Task)


class Metadata(_Closed):
    name: Annotated[str, Field(min_length=1)] | None = None
    path: Annotated[str, Field(min_length=1)] | None = None
    version: int | Annotated[str, Field(pattern=r"^\d+$")] | None = None
    description: str | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    tags: list[str] | dict[str, Any] | None = None


def _document_extra(schema: dict[str, Any]) -> None:
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["allOf"] = [
        {  # metadata.name, or NoETL's top-level name
            "anyOf": [
                {"required": ["metadata"], "properties": {"metadata": {"required": ["name"]}}},
                {"required": ["name"]},
            ]
        },
        {
            "properties": {
                "workflow": {
                    "allOf": [
                        {"contains": {"type": "object", "properties": {"step": {"const": s}}}}
                        for s in ("start", "end")
                    ]
                }
            }
        },
    ]


class PlaybookDocument(_Closed):
    """A Replaybook / NoETL playbook."""

    model_config = ConfigDict(
        extra="forbid", title="Replaybook playbook", json_schema_extra=_document_extra
    )

    apiVersion: Literal["noetl.io/v1", "replaybook/v1"] | None = None
    kind: Literal["Playbook"] | None = None
    metadata: Metadata | None = None
    name: Annotated[str, Field(min_length=1)] | None = None
    path: str | None = None
    version: int | str | None = None
    description: str | None = None
    workload: Annotated[
        dict[str, Any] | None, Field(description="Defaults; a run's payload merges over them.")
    ] = None
    workbook: Annotated[  # type: ignore[valid-type]
        list[WorkbookAction] | dict[str, Any] | None,
        Field(description="Reusable actions: a list with `name`, or name -> action."),
    ] = None
    workflow: Annotated[  # type: ignore[valid-type]
        list[Step],
        Field(description="The steps; `start` and `end` are required."),
    ]


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a playbook document."""
    schema = PlaybookDocument.model_json_schema(by_alias=True)
    _workbook_mapping(schema)
    return schema


def _workbook_mapping(schema: dict[str, Any]) -> None:
    """The mapping form of `workbook` (name -> action): the same actions, where `name`
    comes from the key and so is optional."""
    wb = schema["properties"]["workbook"]
    for option in wb["anyOf"]:
        if option.get("type") == "object":
            option["additionalProperties"] = {"$ref": "#/$defs/WorkbookActionByKey"}
    defs = schema["$defs"]
    listed = next(o for o in wb["anyOf"] if o.get("type") == "array")["items"]
    by_key = []
    for ref in listed["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[-1]
        model = json.loads(json.dumps(defs[name]))
        model["required"] = [k for k in model.get("required", []) if k != "name"]
        defs[f"{name}ByKey"] = model
        by_key.append({"$ref": f"#/$defs/{name}ByKey"})
    defs["WorkbookActionByKey"] = {"anyOf": by_key}


def schema_json(indent: int | None = 2) -> str:
    return json.dumps(playbook_schema(), indent=indent, sort_keys=False) + "\n"


def check_in_sync() -> list[str]:
    """Keys the loader knows that the schema does not model (empty when in sync)."""
    missing = [
        f"{action}.{key}"
        for action, keys in ACTION_FIELDS.items()
        for key in keys
        if key not in FIELD_TYPES.get(action, {}) and key not in _COMMON_TYPES
    ]
    modelled_top = set(PlaybookDocument.model_fields)
    missing += [k for k in TOP_KEYS if k not in modelled_top]
    missing += [f"metadata.{k}" for k in METADATA_KEYS if k not in Metadata.model_fields]
    return missing

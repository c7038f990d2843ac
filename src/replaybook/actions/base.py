"""The one small interface every action type implements.

An action gets its fields already rendered (templates done by the executor, except
fields it declares raw, like python's `code`) and the step's bound inputs, and returns
a JSON value or raises ActionError. Timeouts, retries, logging and masking are the
executor's job, never the action's.

Action types are found in a registry filled from the `replaybook.actions` entry-point
group (built-ins are registered the same way, in code), so a plugin package adds a
step type without touching the engine:

    [project.entry-points."replaybook.actions"]
    mytype = "my_package.module:MyAction"
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from replaybook.masking import SecretScope


@dataclass
class ActionContext:
    execution_id: str
    step: str
    attempt: int
    data_dir: Path
    # Seconds this attempt may take (None: unbounded). Actions that can bound their
    # own work (http request timeout, python child kill) use it; the executor also
    # enforces it.
    timeout: float | None = None
    # Append one line to the step's log (already masked by the executor).
    log: Callable[[str], None] = lambda line: None
    # Set when the attempt must stop (cancel, timeout, shutdown).
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Read-only template context of the step (workload, earlier results...), for
    # actions that need it (python's `context` global).
    context: Mapping[str, Any] = field(default_factory=dict)
    # Per-run services shared by actions (python process pool, duckdb connections,
    # child-execution runner...), keyed by name.
    services: Mapping[str, Any] = field(default_factory=dict)
    # The secrets of this job (replaybook.masking.SecretScope): an action that reads a
    # secret adds it here, so that the job's output is masked.
    secrets: SecretScope | None = None


class Action(Protocol):
    # Fields of the step that are not rendered as templates.
    raw_fields: ClassVar[frozenset[str]]

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        """Run one attempt. `spec` holds the step's action fields (rendered except
        `raw_fields`), `inputs` the bound inputs. Returns a JSON-able value."""
        ...

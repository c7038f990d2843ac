"""The `playbook` action: run a catalog playbook as a child execution and wait.

The child is its own execution, linked to the parent step (spec §6.6). Starting and
watching it is the runtime's business (`ctx.services["children"]`, a ChildRunner);
this module only maps the step's fields and the child's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from replaybook.actions.base import ActionContext
from replaybook.errors import ActionError


class ChildRunner(Protocol):
    def run_child(
        self,
        ctx: ActionContext,
        path: str,
        version: int | None,
        payload: Mapping[str, Any],
        return_step: str | None,
    ) -> Any: ...


class PlaybookAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        runner = ctx.services.get("children")
        if runner is None:
            raise ActionError("playbook steps need a runner that can start child executions")
        path = spec.get("path")
        if not isinstance(path, str) or not path:
            raise ActionError("field 'path' must name a playbook in the catalog")
        version = spec.get("version")
        if version is not None and not isinstance(version, int):
            raise ActionError(f"field 'version' must be an integer, got {version!r}")
        return_step = spec.get("return_step")
        return runner.run_child(ctx, path, version, dict(inputs), return_step)

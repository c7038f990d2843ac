"""Child executions for `playbook` steps, run by the same engine and worker pool."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from replaybook.actions.base import ActionContext
from replaybook.errors import ActionError, StepTimeout
from replaybook.runtime.engine import Engine


class ChildRunner:
    def __init__(self, engine: Engine, release_slot: Any = None, take_slot: Any = None) -> None:
        self.engine = engine
        # A parent waiting for its child must not hold a worker slot, or a pool full
        # of waiting parents would leave no slot for their children.
        self._release = release_slot or (lambda: None)
        self._take = take_slot or (lambda: None)

    def run_child(
        self,
        ctx: ActionContext,
        path: str,
        version: int | None,
        payload: Mapping[str, Any],
        return_step: str | None,
    ) -> Any:
        store = self.engine.store
        entry = store.get_playbook(path, version)
        if entry is None:
            which = f"'{path}'" + (f" version {version}" if version is not None else "")
            raise ActionError(f"playbook {which} is not in the catalog", type="not_found")
        parent = {"execution_id": ctx.execution_id, "step": ctx.step}
        child = self.engine.start(entry.path, entry.version, payload, parent=parent)
        ctx.log(f"started child execution {child} ({entry.path} version {entry.version})")
        deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
        self._release()
        try:
            while not self.engine.wait_finished(child, timeout=0.2):
                if ctx.cancelled.is_set():
                    self.engine.cancel(child, "the parent step was cancelled")
                    raise ActionError("cancelled", type="cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    self.engine.cancel(child, "the parent step timed out")
                    raise StepTimeout(ctx.timeout or 0)
        finally:
            self._take()
        st = self.engine.state(child)
        if st.status == "completed":
            if return_step:
                if return_step not in st.results:
                    raise ActionError(
                        f"child execution {child} has no result for return_step '{return_step}'"
                    )
                return st.results[return_step]
            return st.result
        err = st.error or {}
        detail = f"step '{err.get('step')}': {err.get('message')}" if err else st.status
        raise ActionError(f"child execution {child} {st.status} in {detail}", type="child")

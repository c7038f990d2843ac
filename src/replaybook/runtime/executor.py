"""The action executor: runs one attempt of one step and reports its outcome as events.

It owns everything that is the same for every action type: rendering inputs and
fields, binding edge data, the `max_visits` guard, retries (`retry_when`,
`stop_when`, backoff), routing (`next` / `on_error`), logs and result conversion.
An attempt never raises: every failure becomes a recorded `step.failed` or
`step.retrying` event, so a bad playbook cannot corrupt an execution's log.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import ChainMap, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from replaybook.actions.base import ActionContext
from replaybook.actions.jsonsafe import to_json_value
from replaybook.actions.registry import get_action
from replaybook.core import events as ev
from replaybook.errors import ActionError, ReplaybookError, TemplateError
from replaybook.masking import MASK, SECRET_REF, SecretScope, env_masker
from replaybook.playbook.model import Playbook, Routing, Step
from replaybook.store.base import Job, NewEvent
from replaybook.template import TEMPLATES

# Credential types each action can use in `auth` (plugins: any).
AUTH_TYPES: dict[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "http": ("http_bearer", "http_basic", "http_header"),
    "duckdb": ("postgres", "s3"),
}

DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024


@dataclass
class JobContext:
    """What a worker needs to know about the execution to run one job."""

    execution_id: str
    workload: Mapping[str, Any]
    results: Mapping[str, Any]
    execution: Mapping[str, Any]
    env: Mapping[str, str]
    data_dir: Path
    services: Mapping[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Iterator names (element, _loop) of an item job; they shadow everything.
    names: Mapping[str, Any] = field(default_factory=dict)
    # Names of the playbook's secrets steps (StepExecutor.secret_steps), whose
    # results are references to resolve again; None: unknown, every result is looked at.
    secret_steps: frozenset[str] | None = None


class _Fail(Exception):
    """Internal: an attempt failed with this error object, retryable or not."""

    def __init__(self, error: dict[str, Any], retryable: bool = True) -> None:
        super().__init__(error.get("message"))
        self.error = error
        self.retryable = retryable


def _error(step: str, attempt: int, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ActionError):
        return ev.error_object(step, exc.message, exc.type, attempt, exc.status_code)
    if isinstance(exc, TemplateError):
        return ev.error_object(step, str(exc), "template", attempt)
    if isinstance(exc, ReplaybookError):
        return ev.error_object(step, str(exc), "error", attempt)
    return ev.error_object(step, f"{type(exc).__name__}: {exc}", "internal", attempt)


class StepExecutor:
    def __init__(self, random_factor: Callable[[], float] | None = None) -> None:
        self._jitter = random_factor or (lambda: random.uniform(0.5, 1.0))
        self._secret_steps: dict[int, tuple[Playbook, frozenset[str]]] = {}

    def secret_steps(self, playbook: Playbook) -> frozenset[str]:
        """The names of `playbook`'s secrets steps (iterators of secrets included),
        for JobContext.secret_steps; computed once per playbook."""
        got = self._secret_steps.get(id(playbook))
        if got is not None and got[0] is playbook:
            return got[1]
        names = frozenset(
            s.name
            for s in playbook.steps
            if s.type == "secrets"
            or (
                s.type == "iterator"
                and isinstance(s.spec.get("task"), Mapping)
                and s.spec["task"].get("type") == "secrets"
            )
        )
        if len(self._secret_steps) > 256:
            self._secret_steps.clear()
        self._secret_steps[id(playbook)] = (playbook, names)
        return names

    # -- context -------------------------------------------------------------
    def base_context(self, jc: JobContext, job: Job) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "env": jc.env,
            "workload": jc.workload,
            "execution_id": jc.execution_id,
            "execution": jc.execution,
            "job": {
                "id": job.id,
                "uuid": f"{jc.execution_id}-{job.step}-{job.visit}-{job.attempt}",
                "step": job.step,
                "attempt": job.attempt,
                "idempotency_key": f"{jc.execution_id}:{job.step}:{job.visit}",
            },
        }
        ctx.update(jc.results)
        ctx.update(jc.names)
        return ctx

    # -- one attempt -----------------------------------------------------------
    def run(self, step: Step, job: Job, jc: JobContext) -> list[NewEvent]:
        logs: list[str] = []
        out: list[NewEvent] = []
        scope = SecretScope(env_masker(jc.env))
        ctx = self.base_context(jc, job)
        facts: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            result, ctx = self._attempt(step, job, jc, ctx, logs, scope, facts)
        except _Fail as f:
            if logs:
                out.append(self._log_event(step, job, logs))
            out.extend(self._after_failure(step, job, ctx, f))
            return seal(_with_facts(step, out, facts, t0), scope)
        if logs:
            out.append(self._log_event(step, job, logs))
        out.extend(self._after_success(step, job, ctx, result))
        return seal(_with_facts(step, out, facts, t0), scope)

    def _log_event(self, step: Step, job: Job, lines: list[str]) -> NewEvent:
        return NewEvent(
            ev.STEP_LOG,
            step=step.name,
            visit=job.visit,
            index=job.index,
            attempt=job.attempt,
            data={"lines": lines},
        )

    def _attempt(
        self,
        step: Step,
        job: Job,
        jc: JobContext,
        ctx: dict[str, Any],
        logs: list[str],
        scope: SecretScope,
        facts: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        name = step.name
        if job.visit > step.max_visits:
            msg = f"step '{name}' would run a {job.visit}th time (max_visits {step.max_visits})"
            raise _Fail(ev.error_object(name, msg, "max_visits", job.attempt), retryable=False)
        try:
            reveal(ctx, jc, scope)
            inputs = self._inputs(step, job, ctx)
            if facts is not None:
                facts["inputs"] = inputs
            ctx.update(inputs)
            ctx["args"] = inputs
            ctx.update(jc.names)
            result = self._act(step, job, jc, ctx, inputs, logs, scope)
            result = to_json_value(result)
            if step.save is not None:
                self._save(step, job, jc, ctx, result, logs, scope)
        except (ReplaybookError, Exception) as exc:
            raise _Fail(_error(name, job.attempt, exc)) from exc
        return result, ctx

    def _inputs(self, step: Step, job: Job, ctx: dict[str, Any]) -> dict[str, Any]:
        where = f"step '{step.name}' field"
        raw = step.inputs
        inputs: dict[str, Any] = {}
        if raw is not None:
            rendered = TEMPLATES.render(raw, ctx, f"{where} 'args'")
            if not isinstance(rendered, Mapping):
                raise TemplateError(
                    f"{where} 'args': must be a mapping, got {type(rendered).__name__}"
                )
            inputs = dict(rendered)
        edge = job.payload.get("inputs") or {}
        inputs.update(edge)  # edge data wins (spec §5)
        return inputs

    def _act(
        self,
        step: Step,
        job: Job,
        jc: JobContext,
        ctx: dict[str, Any],
        inputs: dict[str, Any],
        logs: list[str],
        scope: SecretScope,
    ) -> Any:
        if step.type is None:
            return self._router_result(step, job, jc, ctx, inputs)
        action = get_action(step.type)
        raw_fields: frozenset[str] = getattr(action, "raw_fields", frozenset())
        spec: dict[str, Any] = {}
        for key, value in step.spec.items():
            if key in raw_fields:
                spec[key] = value
            else:
                spec[key] = TEMPLATES.render(value, ctx, f"step '{step.name}' field '{key}'")
        if step.auth is not None:
            spec["auth"] = self._auth(step.auth, step.type, ctx, jc, scope, f"step '{step.name}'")
        actx = self._action_context(step, job, jc, ctx, logs, scope)
        result = action.run(spec, inputs, actx)
        max_bytes = int(step.spec.get("max_result_bytes") or DEFAULT_MAX_RESULT_BYTES)
        _check_size(result, max_bytes)
        return result

    def _action_context(
        self,
        step: Step,
        job: Job,
        jc: JobContext,
        ctx: Mapping[str, Any],
        logs: list[str],
        scope: SecretScope | None = None,
    ) -> ActionContext:
        return ActionContext(
            execution_id=jc.execution_id,
            step=step.name,
            attempt=job.attempt,
            data_dir=jc.data_dir,
            timeout=step.timeout,
            log=logs.append,
            cancelled=jc.cancelled,
            context=ctx,
            services=jc.services,
            secrets=scope,
        )

    def _auth(
        self,
        auth: Any,
        action_type: str | None,
        ctx: Mapping[str, Any],
        jc: JobContext,
        scope: SecretScope,
        what: str,
    ) -> Any:
        """`auth` rendered and resolved from the credential store, just before the
        action runs; its secret values join the job's scope (never an event)."""
        from replaybook.credentials import Credentials, resolve_auth

        rendered = TEMPLATES.render(auth, ctx, f"{what} field 'auth'")
        found = jc.services.get("credentials")
        credentials = found if isinstance(found, Credentials) else None
        expect = AUTH_TYPES.get(action_type or "", ())
        if isinstance(rendered, list):  # duckdb: several databases or secrets
            return [resolve_auth(a, credentials, scope, what, expect=expect) for a in rendered]
        return resolve_auth(rendered, credentials, scope, what, expect=expect)

    def _save(
        self,
        step: Step,
        job: Job,
        jc: JobContext,
        ctx: Mapping[str, Any],
        result: Any,
        logs: list[str],
        scope: SecretScope,
    ) -> None:
        """Run the step's `save` block after its action (spec §7); a failing save
        fails the attempt."""
        from replaybook.actions.save import run_save

        sctx = self._outcome_context(step, ctx, result, None)
        rendered = TEMPLATES.render(step.save, sctx, f"step '{step.name}' field 'save'")
        if not isinstance(rendered, Mapping):
            raise TemplateError(f"step '{step.name}' field 'save': must be a mapping")
        rendered = self._save_auth(rendered, step, jc, scope)
        summary = run_save(rendered, self._action_context(step, job, jc, ctx, logs, scope))
        if summary is not None:
            logs.append(f"saved: {summary.get('storage')} {summary.get('table') or ''}".rstrip())

    def _save_auth(
        self, save: Mapping[str, Any], step: Step, jc: JobContext, scope: SecretScope
    ) -> Mapping[str, Any]:
        """The save block with its `auth` (flat, or inside `storage: {...}`)
        resolved to the credential's fields."""
        storage = save.get("storage")
        nested = isinstance(storage, Mapping) and storage.get("auth") is not None
        if save.get("auth") is None and not nested:
            return save
        out = dict(save)
        kind = storage.get("type") if isinstance(storage, Mapping) else storage
        what = f"step '{step.name}' save"
        if nested:
            assert isinstance(storage, Mapping)
            inner = dict(storage)
            inner["auth"] = self._auth(inner["auth"], str(kind), {}, jc, scope, what)
            out["storage"] = inner
        if out.get("auth") is not None:
            out["auth"] = self._auth(out["auth"], str(kind or ""), {}, jc, scope, what)
        return out

    def _router_result(
        self, step: Step, job: Job, jc: JobContext, ctx: dict[str, Any], inputs: dict[str, Any]
    ) -> Any:
        if step.name == "end":
            if step.result is not None:
                return TEMPLATES.render(step.result, ctx, "step 'end' field 'result'")
            if not inputs:
                return {src: jc.results.get(src) for src in job.payload.get("from") or []}
        return inputs or None

    # -- iterators -------------------------------------------------------------
    def expand(self, step: Step, job: Job, jc: JobContext) -> list[NewEvent]:
        """An iterator's first job: render the collection and record its items."""
        scope = SecretScope(env_masker(jc.env))
        return seal(self._expand(step, job, jc, scope), scope)

    def _expand(self, step: Step, job: Job, jc: JobContext, scope: SecretScope) -> list[NewEvent]:
        ctx = self.base_context(jc, job)
        where = f"step '{step.name}' field 'collection'"
        try:
            reveal(ctx, jc, scope)
            inputs = self._inputs(step, job, ctx)
            ctx.update(inputs)
            ctx["args"] = inputs
            items = TEMPLATES.render(step.spec.get("collection"), ctx, where)
            if isinstance(items, Mapping):
                items = [{"key": k, "value": v} for k, v in items.items()]
            if not isinstance(items, list):
                raise TemplateError(f"{where}: must be a list, got {type(items).__name__}")
            items = to_json_value(items)
        except (ReplaybookError, Exception) as exc:
            return self._after_failure(step, job, ctx, _Fail(_error(step.name, job.attempt, exc)))
        asynchronous = step.spec.get("mode") == "async"
        data = {
            "items": items,
            "concurrency": int(step.spec.get("concurrency") or 16) if asynchronous else 1,
            "continue_on_error": bool(step.spec.get("continue_on_error")),
        }
        return [
            NewEvent(
                ev.STEP_STARTED, step=step.name, visit=job.visit, attempt=job.attempt, data=data
            )
        ]

    def item_names(self, step: Step, job: Job) -> dict[str, Any]:
        index = job.index or 0
        count = int(job.payload.get("count") or 0)
        loop = {"index": index, "count": count, "first": index == 0, "last": index == count - 1}
        return {str(step.spec.get("element") or "item"): job.payload.get("item"), "_loop": loop}

    def finish(
        self,
        step: Step,
        job: Job,
        jc: JobContext,
        results: list[Any],
        failed: dict[str, Any] | None,
    ) -> list[NewEvent]:
        """An iterator's last job: its result is the item results in order."""
        scope = SecretScope(env_masker(jc.env))
        ctx = self.base_context(jc, job)
        try:
            reveal(ctx, jc, scope)
            inputs = self._inputs(step, job, ctx)
            ctx.update(inputs)
            ctx["args"] = inputs
        except (ReplaybookError, Exception) as exc:
            failed = _error(step.name, job.attempt, exc)
        if failed is None and step.save is not None:
            try:
                self._save(step, job, jc, ctx, results, [], scope)
            except (ReplaybookError, Exception) as exc:
                failed = _error(step.name, job.attempt, exc)
        if failed is not None:
            return seal([self._failed(step, job, ctx, dict(failed, step=step.name))], scope)
        return seal(self._after_success(step, job, ctx, results), scope)

    # -- outcomes ------------------------------------------------------------
    def _outcome_context(
        self, step: Step, ctx: Mapping[str, Any], result: Any, error: dict[str, Any] | None
    ) -> ChainMap[str, Any]:
        layer: dict[str, Any] = {"result": result, "this": result, "error": error}
        layer[step.name] = result
        return ChainMap(layer, ctx)  # type: ignore[arg-type]

    def _retry_context(
        self,
        step: Step,
        ctx: Mapping[str, Any],
        attempt: int,
        result: Any,
        error: dict[str, Any] | None,
    ) -> ChainMap[str, Any]:
        layer: dict[str, Any] = {}
        if error is None and isinstance(result, Mapping):
            layer.update(result)
        if error is not None:
            layer["status_code"] = error.get("status_code")
        layer.update(
            {
                "result": result,
                "this": result,
                "error": error,
                "success": error is None,
                "attempt": attempt,
            }
        )
        return ChainMap(layer, ctx)  # type: ignore[arg-type]

    def _condition(self, text: str, ctx: Mapping[str, Any], where: str) -> bool:
        value = TEMPLATES.render(text, ctx, where)
        truth = TEMPLATES.truthy(value)
        if truth is None:
            raise TemplateError(f"{where}: must be a boolean, got {value!r}")
        return truth

    def _retrying(self, step: Step, job: Job, error: dict[str, Any]) -> NewEvent:
        assert step.retry is not None
        delay = step.retry.delay_before(job.attempt + 1, self._jitter())
        return NewEvent(
            ev.STEP_RETRYING,
            step=step.name,
            visit=job.visit,
            index=job.index,
            attempt=job.attempt,
            data={"error": error, "delay_ms": round(delay * 1000)},
        )

    def _after_failure(
        self, step: Step, job: Job, ctx: Mapping[str, Any], f: _Fail
    ) -> list[NewEvent]:
        error = f.error
        policy = step.retry
        if f.retryable and policy is not None and job.attempt < policy.max_attempts:
            rctx = self._retry_context(step, ctx, job.attempt, None, error)
            try:
                stop = policy.stop_when is not None and self._condition(
                    policy.stop_when, rctx, f"step '{step.name}' field 'retry.stop_when'"
                )
                again = not stop and (
                    policy.retry_when is None
                    or self._condition(
                        policy.retry_when, rctx, f"step '{step.name}' field 'retry.retry_when'"
                    )
                )
            except ReplaybookError as exc:
                error = _error(step.name, job.attempt, exc)
                again = False
            if again:
                return [self._retrying(step, job, error)]
        return [self._failed(step, job, ctx, error)]

    def _failed(
        self, step: Step, job: Job, ctx: Mapping[str, Any], error: dict[str, Any]
    ) -> NewEvent:
        routes: list[dict[str, Any]] = []
        if step.on_error.arcs:
            octx = self._outcome_context(step, ctx, None, error)
            try:
                routes = self._route(step, step.on_error, octx, "on_error")
            except ReplaybookError as exc:
                error = dict(error)
                error["message"] = f"{error['message']} (and on_error failed: {exc})"
                routes = []
        return NewEvent(
            ev.STEP_FAILED,
            step=step.name,
            visit=job.visit,
            index=job.index,
            attempt=job.attempt,
            data={"error": error, "routes": routes},
        )

    def _after_success(
        self, step: Step, job: Job, ctx: Mapping[str, Any], result: Any
    ) -> list[NewEvent]:
        policy = step.retry
        if policy is not None and policy.retry_when is not None:
            rctx = self._retry_context(step, ctx, job.attempt, result, None)
            try:
                stop = policy.stop_when is not None and self._condition(
                    policy.stop_when, rctx, f"step '{step.name}' field 'retry.stop_when'"
                )
                again = not stop and self._condition(
                    policy.retry_when, rctx, f"step '{step.name}' field 'retry.retry_when'"
                )
            except ReplaybookError as exc:
                return [self._failed(step, job, ctx, _error(step.name, job.attempt, exc))]
            if again:
                if job.attempt < policy.max_attempts:
                    return [
                        self._retrying(
                            step,
                            job,
                            ev.error_object(
                                step.name, "retry_when still holds", "retry_when", job.attempt
                            ),
                        )
                    ]
                msg = f"retry_when still held after {job.attempt} attempts"
                return [
                    self._failed(
                        step,
                        job,
                        ctx,
                        ev.error_object(step.name, msg, "retry_exhausted", job.attempt),
                    )
                ]
        octx = self._outcome_context(step, ctx, result, None)
        try:
            routes = self._route(step, step.next, octx, "next")
        except ReplaybookError as exc:
            # The action succeeded, so a routing error is never retried (spec §5).
            return [self._failed(step, job, ctx, _error(step.name, job.attempt, exc))]
        return [
            NewEvent(
                ev.STEP_COMPLETED,
                step=step.name,
                visit=job.visit,
                index=job.index,
                attempt=job.attempt,
                data={"result": result, "routes": routes},
            )
        ]

    def _route(
        self, step: Step, routing: Routing, ctx: Mapping[str, Any], field_name: str
    ) -> list[dict[str, Any]]:
        """Select arcs group by group (spec §5) and render their edge data."""
        groups: dict[int, list[Any]] = {}
        for arc in routing.arcs:
            groups.setdefault(arc.group, []).append(arc)
        taken: list[Any] = []
        held = False
        else_groups: list[list[Any]] = []
        for arcs in groups.values():
            first = arcs[0]
            if first.is_else:
                else_groups.append(arcs)
            elif first.when is None:
                taken.extend(arcs)
            elif routing.inclusive or not held:
                where = f"step '{step.name}' field '{first.path or field_name}.when'"
                if self._condition(first.when, ctx, where):
                    held = True
                    taken.extend(arcs)
        if not held:
            for arcs in else_groups:
                taken.extend(arcs)
        routes: list[dict[str, Any]] = []
        for arc in taken:
            data: Any = {}
            if arc.data is not None:
                where = f"step '{step.name}' field '{arc.path or field_name}.data'"
                data = TEMPLATES.render(arc.data, ctx, where)
                if not isinstance(data, Mapping):
                    raise TemplateError(f"{where}: edge data must be a mapping")
            routes.append(ev.route(arc.target, to_json_value(dict(data))))
        return routes


def reveal(ctx: dict[str, Any], jc: JobContext, scope: SecretScope) -> None:
    """Put back in `ctx` the values of the secrets steps' results, which the log
    holds as references (see replaybook.masking); they join the job's scope."""
    results = jc.results
    if jc.secret_steps is None:
        names = _SECRET_STEPS.names(jc.execution_id, results)
    elif not jc.secret_steps:
        return
    else:
        names = [n for n in jc.secret_steps if _is_ref(results.get(n))]
    for name in names:
        result = results[name]
        if result.__class__ is dict:
            ctx[name] = _revealed(result, jc, scope)
        else:
            ctx[name] = [
                _revealed(r, jc, scope) if r.__class__ is dict and SECRET_REF in r else r
                for r in result
            ]


def _is_ref(result: Any) -> bool:
    if result.__class__ is dict:
        return SECRET_REF in result
    return result.__class__ is list and _holds_refs(result)


class _SecretSteps:
    """Which results of an execution are secrets steps' references. Every job asks,
    with every result so far, so each execution's step names are looked at once:
    a step's name keeps its type, so a name seen once is known for good. What is
    left per job is one set difference, done in C (a loop over the results in
    Python cost a linear chain of 1,000 router steps 15% of its time)."""

    def __init__(self, limit: int = 1024) -> None:
        self._by_execution: OrderedDict[str, tuple[set[str], set[str]]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def names(self, execution_id: str, results: Mapping[str, Any]) -> list[str]:
        with self._lock:
            entry = self._by_execution.get(execution_id)
            if entry is None:
                entry = self._by_execution[execution_id] = (set(), set())
                if len(self._by_execution) > self._limit:
                    self._by_execution.popitem(last=False)
            else:
                self._by_execution.move_to_end(execution_id)
            seen, secret = entry
            new = results.keys() - seen
            if new:
                secret.update(name for name in new if _is_ref(results[name]))
                seen |= new
            return [name for name in secret if name in results] if secret else []


_SECRET_STEPS = _SecretSteps()


def _holds_refs(items: list[Any]) -> bool:
    """Whether an iterator's results are those of a secrets task: the first item
    that is not an error slot (continue_on_error) tells."""
    for item in items:
        if item.__class__ is not dict:
            return False
        if SECRET_REF in item:
            return True
        if not (len(item) == 1 and "error" in item):
            return False
    return False


def _revealed(result: Mapping[str, Any], jc: JobContext, scope: SecretScope) -> dict[str, Any]:
    from replaybook.actions.secrets import resolve_ref

    ref = result[SECRET_REF]
    if not isinstance(ref, Mapping):
        return dict(result)
    value = resolve_ref(ref, jc.env, jc.services)
    scope.add(value)
    return {**result, "value": value}


# Rendered inputs bigger than this are not copied into the attempt's outcome event:
# the log is for facts, not for a second copy of large data (the result keeps it).
MAX_RECORDED_INPUTS_BYTES = 64 * 1024
_OUTCOMES = frozenset({ev.STEP_COMPLETED, ev.STEP_FAILED, ev.STEP_RETRYING})


def _with_facts(
    step: Step, events: list[NewEvent], facts: Mapping[str, Any], t0: float
) -> list[NewEvent]:
    """The attempt's outcome event with what only the worker saw: the rendered
    inputs and how long the attempt ran (the event's `at` is its commit time, which
    for a quick attempt is also the time its start was recorded). Routers are left
    alone: their inputs are their result, and their chains are the hot path."""
    if step.type is None:
        return events
    extra: dict[str, Any] = {"duration_ms": round((time.perf_counter() - t0) * 1000, 3)}
    if "inputs" in facts:
        extra["inputs"] = _recordable(facts["inputs"])
    for i in range(len(events) - 1, -1, -1):
        if events[i].type in _OUTCOMES:
            events[i] = replace(events[i], data={**events[i].data, **extra})
            break
    return events


def _recordable(inputs: Any) -> Any:
    try:
        value = to_json_value(inputs)
        size = len(json.dumps(value, ensure_ascii=False))
    except Exception as exc:  # inputs that cannot be shown are not a failure
        return {"_omitted": f"inputs not recordable: {type(exc).__name__}"}
    if size > MAX_RECORDED_INPUTS_BYTES:
        return {"_omitted": f"inputs of {size} bytes"}
    return value


def seal(events: list[NewEvent], scope: SecretScope) -> list[NewEvent]:
    """A job's events as they may be written: a secrets step's value replaced by its
    mask whatever its length, then every secret of the job masked."""
    for i, e in enumerate(events):
        if e.type == ev.STEP_COMPLETED:
            result = e.data.get("result")
            if isinstance(result, Mapping) and SECRET_REF in result:
                events[i] = replace(e, data={**e.data, "result": {**result, "value": MASK}})
    return scope.mask_events(events)


def _check_size(result: Any, max_bytes: int) -> None:
    from replaybook.actions.jsonsafe import check_size

    check_size(result, max_bytes)

"""The engine: the one place where events are folded, decisions taken and written.

Every change to an execution goes through `Engine.commit`: fold what is new in the
log, apply the caller's events (a worker's outcome, a cancel, a resume), let `decide`
take every decision that follows, and write all of it, with the jobs it implies and
the completion of the job that caused it, in one store transaction. A concurrent
writer (another process) makes the append fail with SeqConflict; the state is then
re-folded from the log and the decision taken again.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replaybook.actions.jsonsafe import not_json
from replaybook.core import events as ev
from replaybook.core.decide import cancel, decide, execution_status, jobs_for
from replaybook.core.state import ExecutionState
from replaybook.core.topology import Topology, build_topology
from replaybook.errors import NotFound, SeqConflict, TemplateError, UsageError
from replaybook.masking import env_masker
from replaybook.observability import tracing
from replaybook.playbook.model import Playbook
from replaybook.store.base import Event, ExecutionInfo, Job, Lessee, NewEvent, Store

Listener = Callable[[str, Sequence[Event]], None]


def new_execution_id() -> str:
    return uuid.uuid4().hex


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists too) is replaced (spec §2)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


@dataclass
class _Loaded:
    playbook: Playbook
    topology: Topology


class Completion:
    """A job's outcome waiting to be committed, alone or with others (group commit),
    and, once settled, what came of it."""

    __slots__ = ("error", "events", "job", "lessee", "next", "settled", "written")

    def __init__(self, events: Sequence[NewEvent], job: Job, lessee: Lessee | None) -> None:
        self.events = events
        self.job = job
        self.lessee = lessee
        self.settled = False
        self.written: list[Event] = []
        self.next: Job | None = None  # leased for `lessee` in the same transaction
        self.error: BaseException | None = None

    def settle(self, written: list[Event], nxt: Job | None, error: BaseException | None) -> None:
        self.written, self.next, self.error = written, nxt, error
        self.settled = True


class Engine:
    def __init__(
        self,
        store: Store,
        load_playbook: Callable[[str, int], Playbook],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self._load_playbook = load_playbook
        self.env = dict(os.environ if env is None else env)
        # Secrets of the environment are masked in every event written (spec §10).
        self.masker = env_masker(self.env)
        self._lock = threading.Lock()
        self._exec_locks: dict[str, threading.Lock] = {}
        self._pending: dict[str, list[Completion]] = {}  # completions awaiting commit
        self._states: dict[str, ExecutionState] = {}
        self._playbooks: dict[tuple[str, int], _Loaded] = {}
        self._exec_playbook: dict[str, tuple[str, int]] = {}
        self._listeners: list[Listener] = [tracing.engine_listener(self)]  # ends spans
        self.changed = threading.Condition()  # notified when an execution ends
        self.work = threading.Condition()  # notified when there is work to lease
        # Bumped under `changed` at every commit, so a waiter can tell whether it
        # missed a notification between looking for work and starting to wait.
        self.generation = 0

    # -- plumbing ------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _exec_lock(self, execution_id: str) -> threading.Lock:
        with self._lock:
            lock = self._exec_locks.get(execution_id)
            if lock is None:
                lock = self._exec_locks[execution_id] = threading.Lock()
            return lock

    def loaded(self, path: str, version: int) -> _Loaded:
        key = (path, version)
        got = self._playbooks.get(key)
        if got is None:
            pb = self._load_playbook(path, version)
            got = _Loaded(pb, build_topology(pb))
            self._playbooks[key] = got
        return got

    def playbook_of(self, execution_id: str) -> Playbook:
        return self._loaded_for(execution_id).playbook

    def _loaded_for(self, execution_id: str) -> _Loaded:
        key = self._exec_playbook.get(execution_id)
        if key is None:
            info = self.store.get_execution(execution_id)
            if info is None:
                raise NotFound(f"no execution '{execution_id}'")
            key = (info.playbook_path, info.playbook_version)
            self._exec_playbook[execution_id] = key
        return self.loaded(*key)

    def state(self, execution_id: str) -> ExecutionState:
        """The folded state, caught up with the log (callers must not mutate it)."""
        with self._exec_lock(execution_id):
            return self._caught_up(execution_id, refresh=True)

    def _caught_up(self, execution_id: str, refresh: bool = False) -> ExecutionState:
        """The cached state; read the log only when asked or when nothing is cached.
        Commits need no read: if another process wrote meanwhile, the append fails
        with SeqConflict and the state is re-folded then."""
        st = self._states.get(execution_id)
        if st is None:
            st = ExecutionState(self._loaded_for(execution_id).topology, execution_id)
            self._states[execution_id] = st
            refresh = True
        if refresh:
            st.apply_all(self.store.read_events(execution_id, after_seq=st.last_seq))
        return st

    def wait_finished(self, execution_id: str, timeout: float | None = None) -> bool:
        """Block until the execution ends (as seen by this process's commits, or,
        checked every half second, by the store), or until `timeout`."""
        import time as _time

        deadline = None if timeout is None else _time.monotonic() + timeout
        next_check = 0.0
        with self.changed:
            while True:
                st = self._states.get(execution_id)
                if st is not None and st.finished:
                    return True
                now = _time.monotonic()
                if now >= next_check:
                    # Another process (a `cancel` from the CLI) may have ended it.
                    info = self.store.get_execution(execution_id)
                    if info is not None and info.status in ("completed", "failed", "cancelled"):
                        return True
                    next_check = now + 0.5
                left = None if deadline is None else deadline - now
                if left is not None and left <= 0:
                    return False
                self.changed.wait(0.5 if left is None else min(0.5, left))

    def snapshot(
        self, execution_id: str, step: str | None = None, *, refresh: bool = False
    ) -> dict[str, Any] | None:
        """What a job of a running execution sees: workload, results so far, and
        execution metadata (and, for an iterator `step`, its item results); None
        once the execution has finished. `refresh` reads the log's tail first (other
        processes write to the store: the cached state may lag)."""
        with self._exec_lock(execution_id):
            st = self._caught_up(execution_id, refresh=refresh)
            if st.finished:
                return None
            parent = st.parent or {}
            it = st.iters.get(step) if step else None
            # Only the finishing job reads the item results: copying them for every
            # item job would make an iterator quadratic in its collection size.
            return {
                "iteration": None
                if it is None or not it.finishing
                else {"results": list(it.results), "failed": it.failed},
                "workload": st.workload,
                "results": dict(st.results),
                "execution": {
                    "id": execution_id,
                    "parent_id": parent.get("execution_id"),
                    "path": st.playbook.get("path"),
                    "version": st.playbook.get("version"),
                },
            }

    def forget(self, execution_id: str) -> None:
        """Drop cached state of a finished execution (memory bound on long servers)."""
        with self._lock:
            self._states.pop(execution_id, None)
            self._exec_locks.pop(execution_id, None)

    # -- operations ----------------------------------------------------------
    def start(
        self,
        path: str,
        version: int,
        payload: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an execution of a registered playbook and take its first decisions.
        Raises TemplateError when a workload template cannot render."""
        from replaybook.template import TEMPLATES

        loaded = self.loaded(path, version)
        pb = loaded.playbook
        eid = execution_id or new_execution_id()
        payload = dict(payload or {})
        ctx = {
            "env": self.env,
            "payload": payload,
            "execution_id": eid,
            "execution": {
                "id": eid,
                "parent_id": (parent or {}).get("execution_id"),
                "path": path,
                "version": version,
            },
            "job": {},
        }
        workload = TEMPLATES.render(dict(pb.workload), ctx, "workload")
        if not isinstance(workload, dict):
            raise TemplateError("workload: must be a mapping")
        merged = deep_merge(workload, payload)
        # Checked before anything is written: an execution whose first event cannot
        # be stored would be left 'running' with no log at all.
        bad = not_json(payload)
        if bad is not None:
            raise UsageError(f"payload is not JSON data: {bad}")
        bad = not_json(merged)
        if bad is not None:
            raise TemplateError(f"workload: rendered to a value that is not JSON data: {bad}")
        self.store.create_execution(
            eid,
            path,
            version,
            parent_id=(parent or {}).get("execution_id"),
            parent_step=(parent or {}).get("step"),
        )
        self._exec_playbook[eid] = (path, version)
        started = NewEvent(
            ev.EXECUTION_STARTED,
            data={
                "playbook": {"path": path, "version": version, "name": pb.name},
                "workload": merged,
                "payload": payload,
                "parent": dict(parent) if parent else None,
            },
        )
        self.commit(eid, [started])
        return eid

    def commit(
        self,
        execution_id: str,
        events: Sequence[NewEvent],
        *,
        complete: Job | None = None,
        decide_more: bool = True,
    ) -> list[Event]:
        """Append `events` plus every decision they lead to, atomically.
        Raises StaleLease if `complete` lost its lease (nothing is written)."""
        if complete is None or not decide_more:
            with self._exec_lock(execution_id):
                written, n, _ = self._append(execution_id, events, (), decide_more, None, 0)
            self._notify(execution_id, written, n > 0)
            return written
        (mine,) = self.commit_completions(execution_id, [(events, complete, None)])
        if mine.error is not None:
            raise mine.error
        return mine.written

    def commit_completions(
        self,
        execution_id: str,
        outcomes: Sequence[tuple[Sequence[NewEvent], Job, Lessee | None]],
    ) -> list[Completion]:
        """Commit jobs' outcomes `(events, job, lessee)` of one execution. An outcome
        with a lessee gets one of the jobs its commit enqueues (any due job, in
        fact), leased for it in the same transaction, as `next`: a linear chain
        keeps its worker and pays one transaction per step. Each answer also
        carries what was written and its error (StaleLease for a lost lease: the
        other outcomes are committed all the same).

        Completions that arrive while another of the same execution is being
        committed are committed with it (group commit): the first to get the
        execution's lock folds every waiting outcome, decides once and writes one
        transaction. Any serial order of concurrent completions is a valid
        history, and this is one of them; it saves a transaction and a decide pass
        per outcome when many items of an iterator finish at once."""
        mine = [Completion(events, job, lessee) for events, job, lessee in outcomes]
        with self._lock:
            self._pending.setdefault(execution_id, []).extend(mine)
        settled: list[tuple[list[Event], bool]] = []
        with self._exec_lock(execution_id):
            if not all(c.settled for c in mine):
                with self._lock:
                    group = self._pending.pop(execution_id, [])
                settled = self._settle(execution_id, group)
        for written, new_work in settled:
            self._notify(execution_id, written, new_work)
        return mine

    def _settle(
        self, execution_id: str, group: list[Completion]
    ) -> list[tuple[list[Event], bool]]:
        """Commit `group` (the execution's lock is held) and give each completion
        its outcome; answers what to notify, once the lock is released."""
        events = [e for c in group for e in c.events]
        takers = [c for c in group if c.lessee is not None]
        # One lease query per transaction: several lessees (pools of one process)
        # are rare, and then only the first one's completions lease in it.
        lessee = takers[0].lessee if takers else None
        takers = [c for c in takers if c.lessee == lessee]
        try:
            written, n, leased = self._append(
                execution_id, events, [c.job for c in group], True, lessee, len(takers)
            )
        except Exception as exc:
            if len(group) == 1:
                group[0].settle([], None, exc)
                return []
            # One outcome's fault (a lost lease, say) must not fail the others.
            out = []
            for c in group:
                try:
                    w, k, got = self._append(
                        execution_id, c.events, [c.job], True, c.lessee, 1 if c.lessee else 0
                    )
                except Exception as e:
                    c.settle([], None, e)
                    continue
                c.settle(w, got[0] if got else None, None)
                out.append((w, k > len(got)))
            return out
        except BaseException as exc:
            for c in group:
                c.settle([], None, exc)
            raise
        for c, job in zip(takers, leased, strict=False):
            c.settle(written, job, None)
        for c in group:
            if not c.settled:
                c.settle(written, None, None)
        # Workers are woken for what the lessees did not take.
        return [(written, n > len(leased))]

    def _append(
        self,
        execution_id: str,
        events: Sequence[NewEvent],
        complete: Sequence[Job],
        decide_more: bool,
        lessee: Lessee | None,
        limit: int,
    ) -> tuple[list[Event], int, list[Job]]:
        """Fold, decide and append under the execution's lock; re-fold and decide
        again when another process wrote first. Answers what was written, how many
        jobs were enqueued, and those leased for `lessee` (at most `limit`, and no
        more than were enqueued)."""
        loaded = self._loaded_for(execution_id)
        for _ in range(50):
            st = self._caught_up(execution_id)
            base_seq = st.last_seq
            try:
                out = self.masker.mask_events(events)
                st.apply_all(out)
                if decide_more:
                    while True:
                        more = decide(loaded.playbook, st)
                        if not more:
                            break
                        st.apply_all(more)
                        out.extend(more)
                jobs = jobs_for(loaded.playbook, st, out)
                status = execution_status(out)
                written, leased = self.store.append_and_lease(
                    execution_id,
                    base_seq,
                    out,
                    jobs,
                    complete=complete,
                    status=status,
                    cancel_jobs=status in ("completed", "failed", "cancelled"),
                    lessee=lessee,
                    limit=min(limit, len(jobs)),
                )
            except SeqConflict:
                self._states.pop(execution_id, None)
                continue
            except BaseException:
                # The state has provisional events applied: re-fold next time.
                self._states.pop(execution_id, None)
                raise
            st.last_seq = written[-1].seq if written else base_seq
            return written, len(jobs), leased
        raise SeqConflict(f"execution {execution_id}: too many concurrent writers")

    def _notify(self, execution_id: str, written: Sequence[Event], new_work: bool) -> None:
        for fn in self._listeners:
            fn(execution_id, written)
        if new_work:
            self.work_available()
        if any(e.type in ev.TERMINAL_EXECUTION for e in written):
            with self.changed:
                self.changed.notify_all()

    def work_available(self) -> None:
        """Wake the workers of this process: jobs were enqueued or a slot freed."""
        with self.work:
            self.generation += 1
            self.work.notify_all()

    def cancel(self, execution_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel an execution and, first, its running children."""
        for child in self.store.list_executions(status="running", parent_id=execution_id):
            self.cancel(child.id, "the parent execution was cancelled")
        for _ in range(50):
            with self._exec_lock(execution_id):
                st = self._caught_up(execution_id, refresh=True)
                if st.finished:
                    return False
                events = cancel(st, reason)
            try:
                self.commit(execution_id, events, decide_more=False)
                return True
            except SeqConflict:
                continue
        raise SeqConflict(f"execution {execution_id}: could not cancel")

    def resume(self, execution_id: str, from_step: str | None = None) -> None:
        pb = self.playbook_of(execution_id)
        if from_step is not None and not pb.has_step(from_step):
            raise NotFound(f"no step '{from_step}' in {pb.path}")
        st = self.state(execution_id)
        if st.status == "running":
            raise ValueError(f"execution {execution_id} is still running")
        if st.status == "completed" and from_step is None:
            # Nothing would run, and the log would only gain noise (and a new end).
            raise ValueError(
                f"execution {execution_id} is already completed: nothing to resume"
                " (from_step re-runs that step and what follows it)"
            )
        self.commit(execution_id, [NewEvent(ev.EXECUTION_RESUMED, data={"from_step": from_step})])

    def info(self, execution_id: str) -> ExecutionInfo | None:
        return self.store.get_execution(execution_id)

"""The `python` action (spec §6.1) and the pool of warm processes that runs its code.

    PythonAction().run(spec, inputs, ctx)   spec["code"] (or base64 `code_b64`)
    PythonPool(max_size=16)                 warm child processes, grown on demand
        .call(code, inputs, context=, timeout=, cancelled=, log=) -> JSON value
        .prestart(n)                        start n children in the background
        .close()                            kill every child (idle or busy)
    default_pool()                          the process-wide pool used when
                                            ctx.services has no "python_pool"

Each call borrows one idle child (or starts one, up to `max_size`; past that it waits
for one to come back), sends it the code and inputs, and reads its answer: log lines
(passed to `log` as they come) then the result or the error. The code runs in the
child (`_python_child.py`), so a crash, a hang, `sys.exit` or a segfault ends only that
child: the call fails with an ActionError and the child is replaced in the background.
On timeout the child is killed (SIGKILL) and StepTimeout is raised; when `cancelled`
is set, it is killed and ActionError(type "cancelled") is raised. Children stay in the
caller's process group, and exit by themselves when this process dies (they watch
their request pipe for hang-up).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import marshal
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from replaybook.actions.base import ActionContext
from replaybook.actions.jsonsafe import to_json_value
from replaybook.errors import ActionError, NotJSONError, StepTimeout

# The package's parent folder is appended to the child's sys.path, so the child finds
# this replaybook even when it is not installed (tests, a source checkout).
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = (
    f"import sys; sys.path.append({_ROOT!r}); "
    "from replaybook.actions._python_child import main; main()"
)
_HEADER = 8
_POLL_SECONDS = 0.05  # how often a waiting call looks at `cancelled`
_READ_CHUNK = 1 << 20

LogFn = Callable[[str], None]


class _ChildDied(Exception):
    pass


class _Child:
    """One warm child process and its pipes."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.poller = select.poll()
        self.poller.register(self.rfd, select.POLLIN)
        self.buf = bytearray()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, payload: bytes) -> None:
        data = memoryview(len(payload).to_bytes(_HEADER, "big") + payload)
        try:
            while data:
                data = data[os.write(self.wfd, data) :]
        except OSError as exc:  # BrokenPipeError: it died while idle
            raise _ChildDied from exc

    def frame(self) -> tuple[Any, ...] | None:
        """The next complete frame in the buffer, if any."""
        buf = self.buf
        if len(buf) < _HEADER:
            return None
        end = _HEADER + int.from_bytes(buf[:_HEADER], "big")
        if len(buf) < end:
            return None
        frame: tuple[Any, ...] = marshal.loads(memoryview(buf)[_HEADER:end])
        del buf[:end]
        return frame

    def wait_readable(self, seconds: float) -> None:
        """Read what arrives within `seconds` into the buffer; raise _ChildDied on EOF,
        or when the child is gone while a process it forked still holds the pipe."""
        if not self.poller.poll(max(0, int(seconds * 1000) + 1)):
            if self.proc.poll() is not None:
                raise _ChildDied
            return
        data = os.read(self.rfd, _READ_CHUNK)
        if not data:
            raise _ChildDied
        self.buf += data

    def death_message(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            return f"python process died (signal {-code})"
        return f"python process died (exit code {code})"

    def signal(self) -> None:
        """SIGKILL the child (safe from any thread; the pipes stay open)."""
        with contextlib.suppress(OSError):
            self.proc.kill()

    def kill(self) -> None:
        """SIGKILL the child, reap it and close the pipes (by the thread using it)."""
        self.signal()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL: not for long
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class PythonPool:
    """Warm child processes for python steps; thread-safe; one call per child at a time."""

    def __init__(self, max_size: int = 16, *, python: str | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._python = python or sys.executable
        self._cond = threading.Condition()
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._starting = 0  # children being started (counted in the size)
        self._closed = False

    # -- public -------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Children alive or starting."""
        with self._cond:
            return len(self._all) + self._starting

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    def prestart(self, n: int = 1) -> None:
        """Start up to `n` more children in the background (to hide the first call's
        start-up time)."""
        for _ in range(n):
            threading.Thread(
                target=self._start_spare, name="python-pool-start", daemon=True
            ).start()

    def close(self) -> None:
        """Kill every child, idle or busy; calls in flight fail as cancelled."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            busy = [c for c in self._all if c not in idle]
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for child in idle:
            child.kill()
        for child in busy:  # only signalled: its caller owns (and closes) the pipes
            child.signal()

    def __enter__(self) -> PythonPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        code: str,
        inputs: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        cancelled: threading.Event | None = None,
        log: LogFn | None = None,
    ) -> Any:
        """Run `code` with `inputs` in a child; return its result as JSON data."""
        deadline = None if timeout is None else time.monotonic() + timeout
        payload = _encode_request(code, inputs, context)
        waiter = _Waiter(timeout, deadline, cancelled)
        for _ in range(3):  # a child that died while idle is discarded, and we try again
            child = self._acquire(waiter)
            try:
                child.send(payload)
            except _ChildDied:
                self._discard(child)
                continue
            return self._finish(child, waiter, log or _no_log, code)
        raise ActionError("python process died before the call could start")

    # -- internals ----------------------------------------------------------------------

    def _finish(self, child: _Child, waiter: _Waiter, log: LogFn, code: str) -> Any:
        try:
            frame = self._read_answer(child, waiter, log)
        except _ChildDied:
            if self._closed:
                child.kill()
                raise ActionError("python pool was closed", type="cancelled") from None
            message = child.death_message()
            self._discard(child, replace=True)
            raise ActionError(message) from None
        except BaseException:  # timeout, cancel, or an error in `log`
            self._discard(child, replace=True)
            raise
        self._release(child)
        if frame[0] == "ok":
            return frame[1]
        _, kind, message, traceback = frame
        if traceback:
            for line in traceback.rstrip("\n").split("\n"):
                log(line)
        if kind == "result":
            raise NotJSONError(message)
        raise ActionError(
            message, type=kind, details={"traceback": traceback} if traceback else None
        )

    def _read_answer(self, child: _Child, waiter: _Waiter, log: LogFn) -> tuple[Any, ...]:
        while True:
            frame = child.frame()
            if frame is None:
                child.wait_readable(waiter.next_wait())
                continue
            if frame[0] != "log":
                return frame
            for line in frame[1].split("\n"):
                log(line)

    def _acquire(self, waiter: _Waiter) -> _Child:
        with self._cond:
            while True:
                if self._closed:
                    raise ActionError("python pool was closed", type="cancelled")
                while self._idle:
                    child = self._idle.pop()
                    if child.alive():
                        return child
                    self._all.discard(child)
                    child.kill()
                if len(self._all) + self._starting < self.max_size:
                    self._starting += 1
                    break
                self._cond.wait(waiter.next_wait())
        return self._start_child(busy=True)

    def _start_child(self, busy: bool) -> _Child:
        """Start a child (its slot is already counted in `_starting`); a busy one is
        returned to the caller, an idle one goes to the idle list."""
        try:
            child = _Child(self._python)
        except OSError as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            raise ActionError(f"could not start a python process: {exc}") from exc
        with self._cond:
            self._starting -= 1
            if not self._closed:
                self._all.add(child)
                if not busy:
                    self._idle.append(child)
                    self._cond.notify()
                return child
        child.kill()
        raise ActionError("python pool was closed", type="cancelled")

    def _start_spare(self) -> None:
        with self._cond:
            if self._closed or len(self._all) + self._starting >= self.max_size:
                return
            self._starting += 1
        with contextlib.suppress(ActionError):
            self._start_child(busy=False)

    def _release(self, child: _Child) -> None:
        with self._cond:
            if child in self._all:
                self._idle.append(child)
                self._cond.notify()
                return
        child.kill()  # the pool was closed meanwhile

    def _discard(self, child: _Child, replace: bool = False) -> None:
        child.kill()
        with self._cond:
            self._all.discard(child)
            self._cond.notify()
            replace = replace and not self._closed and not self._idle
        if replace:
            self.prestart(1)


class _Waiter:
    """Deadline and cancel checks for a call that is waiting (for a child or an answer)."""

    __slots__ = ("cancelled", "deadline", "timeout")

    def __init__(
        self, timeout: float | None, deadline: float | None, cancelled: threading.Event | None
    ) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.cancelled = cancelled

    def next_wait(self) -> float:
        """Seconds to wait before checking again; raises when time is up or cancelled."""
        if self.cancelled is not None and self.cancelled.is_set():
            raise ActionError("cancelled", type="cancelled")
        wait = _POLL_SECONDS if self.cancelled is not None else 1.0
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise StepTimeout(self.timeout or 0)
            wait = min(wait, left)
        return wait


def _no_log(line: str) -> None:
    pass


def _encode_request(
    code: str, inputs: Mapping[str, Any], context: Mapping[str, Any] | None
) -> bytes:
    request: Any = (code, inputs, context)  # plain data, checked by marshal itself
    try:
        return marshal.dumps(request)
    except ValueError:  # not plain data (a Mapping subclass, a date...): convert first
        plain_inputs = to_json_value(dict(inputs))
        plain_context = None if context is None else _plain_context(context)
        return marshal.dumps((code, plain_inputs, plain_context))


def _plain_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able entries of a template context (functions like now() are left out)."""
    plain: dict[str, Any] = {}
    for key, value in context.items():
        if callable(value):
            continue
        try:
            plain[str(key)] = to_json_value(value)
        except NotJSONError:
            continue
    return plain


_default_pool: PythonPool | None = None
_default_lock = threading.Lock()


def default_pool() -> PythonPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = PythonPool()
            atexit.register(_default_pool.close)
        return _default_pool


class PythonAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset({"code"})

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        code = _code_of(spec)
        pool = ctx.services.get("python_pool")
        if not isinstance(pool, PythonPool):
            pool = default_pool()
        # The context is only sent when the code can refer to it (it may be large).
        context = _plain_context(ctx.context) if "context" in code else None
        return pool.call(
            code,
            inputs,
            context=context,
            timeout=ctx.timeout,
            cancelled=ctx.cancelled,
            log=ctx.log,
        )


def _code_of(spec: Mapping[str, Any]) -> str:
    code = spec.get("code")
    if code is None and spec.get("code_b64") is not None:
        try:
            code = base64.b64decode(str(spec["code_b64"])).decode("utf-8")
        except ValueError as exc:
            raise ActionError(f"python step: code_b64 is not base64 UTF-8 text: {exc}") from exc
    if not isinstance(code, str):
        raise ActionError("python step needs `code` (the Python source text)")
    return code

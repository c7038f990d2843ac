"""The process that runs `python` step code (spec §6.1), one call at a time.

Started by `replaybook.actions.python.PythonPool` and kept warm between calls. Its
start must be cheap, so it imports nothing beyond what a bare interpreter has loaded
(plus `marshal`, `select`, `_thread`, `math`); `typing` only for the type checker.

Protocol, over two pipes (the parent's end of the child's stdin and stdout): frames
of an 8-byte big-endian length and a `marshal` payload of plain data.
    request:   (code, inputs, context or None)
    responses: ("log", text)*  then one of
               ("ok", result)                   result already JSON data
               ("err", type, message, traceback)

At start the child moves the protocol pipes off fds 0/1 and points fd 0 at /dev/null
and fds 1 and 2 at a capture pipe, for the child's whole life, so nothing the user
code, a C library or a program it starts (`os.system`, `subprocess`) writes can
corrupt the protocol or reach the CLI's (or a worker's) stdout and stderr unmasked.
sys.stdout and sys.stderr are one log stream for the child's life. During a call,
what the code prints and what arrives on the capture pipe become its log lines, in
order (each write to sys.stdout first takes what is in the pipe), under one size cap,
and the parent masks them like every log line; between calls both are dropped. A
watcher thread exits the child as soon as the parent's end of the request pipe closes
(the parent died or closed the pool), even while user code is busy. SIGINT and
SIGTERM are ignored (with a Python handler, so programs the code starts get the
default back): the parent decides when a child dies.
"""

from __future__ import annotations

import _thread
import io
import marshal
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, TracebackType
    from typing import Any

    _Plan = tuple[list[tuple[str, bool, bool]], bool]

CODE_FILENAME = "<python step>"
MAX_LOG_CHARS = 4 * 1024 * 1024
_HEADER = 8

_code_cache: dict[str, CodeType] = {}
_plan_cache: dict[CodeType, _Plan] = {}
_MappingProxy = type(type.__dict__)


class _StepFailed(Exception):
    def __init__(self, kind: str, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.traceback = traceback


# -- framing ---------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _write_frame(fd: int, obj: Any) -> None:
    payload = marshal.dumps(obj)
    data = memoryview(len(payload).to_bytes(_HEADER, "big") + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


# -- captured output ---------------------------------------------------------------------


class _Capture:
    """Fds 1 and 2 of the child, for good: a pipe whose other end a thread drains into
    `stream`, the child's one log stream (which drops what it gets between calls).
    Every read of the pipe happens under `lock`, so the main thread's last drain after
    a call gets all that was written before it."""

    def __init__(self, fd: int) -> None:
        import codecs  # loaded at interpreter start already

        rfd, wfd = os.pipe()
        os.dup2(wfd, 1)
        os.dup2(wfd, 2)
        os.close(wfd)
        os.set_blocking(rfd, False)
        self.fd = rfd
        self.lock = _thread.RLock()  # reentrant: a signal handler may print mid-write
        self.stream = _LogStream(fd, self)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._poller = select.poll()
        self._poller.register(rfd, select.POLLIN)
        _thread.start_new_thread(self._pump, ())

    def _pump(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while True:
            poller.poll()
            with self.lock:
                if not self.drain():
                    return  # every write end is closed (the code closed fds 1 and 2)

    def drain(self) -> bool:
        """Move what is in the pipe to the stream (lock held); False on EOF."""
        while self._poller.poll(0):
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            self.stream.add_fd(self._decoder.decode(data))
        return True

    def begin(self) -> None:
        with self.lock:
            self.drain()  # written between calls: dropped (the stream is closed)
            self._decoder.reset()
            self.stream.open()

    def end(self) -> None:
        with self.lock:
            self.drain()
            self.stream.add_fd(self._decoder.decode(b"", True))
            self.stream.finish()


class _LogStream(io.TextIOBase):
    """sys.stdout and sys.stderr, for the child's whole life: during a call, sends
    each complete line to the parent; between calls, drops what it is given (a thread
    the code started may still print). (A TextIOBase, so fileno() and friends fail
    the usual way.) One object, never swapped per call: CPython 3.11's print() holds
    sys.stdout by a borrowed reference while it writes, so a stream replaced while a
    thread prints to it could be freed under that thread."""

    encoding = "utf-8"

    def __init__(self, fd: int, capture: _Capture) -> None:
        self._fd = fd
        self._capture = capture
        self._partial = ""
        self._fd_partial = ""  # lines from fds 1/2 are their own (print writes a line
        self._sent = 0  # and its "\n" apart, and a program's line must not split it)
        self._open = False

    def open(self) -> None:
        """Start a call's log (capture lock held)."""
        self._partial = self._fd_partial = ""
        self._sent = 0
        self._open = True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        capture = self._capture
        with capture.lock:
            capture.drain()  # what the code wrote to fds 1/2 before this comes first
            self.add(text)
        return len(text)

    def add(self, text: str) -> None:
        """Append `text`, written to sys.stdout/sys.stderr, to the log (capture lock
        held)."""
        if self._open:
            self._partial = self._lines(self._partial, text)

    def add_fd(self, text: str) -> None:
        """Append `text`, read from fds 1/2, to the log (capture lock held)."""
        if self._open:
            self._fd_partial = self._lines(self._fd_partial, text)

    def _lines(self, partial: str, text: str) -> str:
        """Send the complete lines of `partial + text`; return the rest."""
        if "\n" not in text:
            partial += text
            if len(partial) > 65536:
                self._send(partial)
                return ""
            return partial
        head, _, tail = text.rpartition("\n")
        self._send(partial + head)
        return tail

    def _send(self, text: str) -> None:
        if self._sent >= MAX_LOG_CHARS:
            return
        self._sent += len(text)
        if self._sent >= MAX_LOG_CHARS:
            text = text[: max(0, len(text) - (self._sent - MAX_LOG_CHARS))]
            text += f"\n[log truncated: more than {MAX_LOG_CHARS} characters]"
        _write_frame(self._fd, ("log", text))

    def finish(self) -> None:
        """Send the last partial lines; drop whatever comes after (capture lock held)."""
        if self._open:
            for partial in (self._fd_partial, self._partial):
                if partial:
                    self._send(partial)
            self._partial = self._fd_partial = ""
        self._open = False

    def writable(self) -> bool:
        return True


# -- running one call --------------------------------------------------------------------


def _compile(code: str) -> CodeType:
    compiled = _code_cache.get(code)
    if compiled is None:
        try:
            compiled = compile(code, CODE_FILENAME, "exec")
        except SyntaxError as exc:
            where = f" (line {exc.lineno})" if exc.lineno else ""
            raise _StepFailed("error", f"SyntaxError: {exc.msg}{where}") from None
        if len(_code_cache) > 256:
            _code_cache.clear()
            _plan_cache.clear()
        _code_cache[code] = compiled
    return compiled


def _plan(main: Callable[..., Any]) -> _Plan:
    """(params, takes_var_kw) of `main`; params are (name, positional_only, has_default)."""
    code = getattr(main, "__code__", None)
    if code is not None and getattr(main, "__self__", None) is None:
        plan = _plan_cache.get(code)
        if plan is None:
            plan = _plan_of_function(main, code)
            _plan_cache[code] = plan
        return plan
    import inspect  # other callables (classes, partials...): rare, so the slow way

    params: list[tuple[str, bool, bool]] = []
    var_kw = False
    for p in inspect.signature(main).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL:
            has_default = p.default is not p.empty
            params.append((p.name, p.kind is p.POSITIONAL_ONLY, has_default))
    return params, var_kw


def _plan_of_function(main: Callable[..., Any], code: CodeType) -> _Plan:
    n_pos = code.co_argcount
    n_kwonly = code.co_kwonlyargcount
    names = code.co_varnames
    defaults = getattr(main, "__defaults__", None) or ()
    kwdefaults = getattr(main, "__kwdefaults__", None) or {}
    first_default = n_pos - len(defaults)
    params = [(names[i], i < code.co_posonlyargcount, i >= first_default) for i in range(n_pos)]
    for name in names[n_pos : n_pos + n_kwonly]:
        params.append((name, False, name in kwdefaults))
    return params, bool(code.co_flags & 0x08)  # CO_VARKEYWORDS


def _call_main(main: Callable[..., Any], inputs: dict[str, Any], context: object) -> Any:
    params, var_kw = _plan(main)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    missing: list[str] = []
    positional = True  # positional-only params are filled in order until one is skipped
    for name, posonly, has_default in params:
        if name in inputs:
            value = inputs[name]
        elif name == "input_data":
            value = inputs
        elif name == "context":
            value = context
        elif has_default:
            if posonly:
                positional = False
            continue
        else:
            missing.append(name)
            continue
        if posonly:
            if positional:
                args.append(value)
        else:
            kwargs[name] = value
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        plural = "s" if len(missing) > 1 else ""
        raise _StepFailed("error", f"main() missing required input{plural} {listed}")
    if var_kw:
        named = {name for name, _, _ in params}
        for key, value in inputs.items():
            if key not in named:
                kwargs[key] = value
    result = main(*args, **kwargs)
    if type(result).__name__ == "coroutine":
        import asyncio

        result = asyncio.run(result)
    return result


def _run(code: str, inputs: dict[str, Any], context: dict[str, Any] | None) -> Any:
    """Run the code as a module with the inputs as globals (and `context`); call its
    `main` if it defines one, else take its global `result`."""
    compiled = _compile(code)
    ctx_view = _MappingProxy(context if context is not None else {})
    namespace: dict[str, Any] = {"__name__": "__step__", "context": ctx_view}
    namespace.update(inputs)
    exec(compiled, namespace)
    main = namespace.get("main")
    if "main" not in compiled.co_names or not callable(main):
        return namespace.get("result")
    return _call_main(main, inputs, ctx_view)


def _to_json(result: Any) -> tuple[Any, ...]:
    from replaybook.actions.jsonsafe import to_json_value

    try:
        return ("ok", to_json_value(result))
    except Exception as exc:
        from replaybook.errors import NotJSONError

        if isinstance(exc, NotJSONError):
            return ("err", "result", exc.message, "")
        raise


def _user_traceback(exc: BaseException, code: str) -> str:
    import linecache
    import traceback

    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != CODE_FILENAME:
        tb = tb.tb_next
    lines = code.splitlines(keepends=True)
    linecache.cache[CODE_FILENAME] = (len(code), None, lines, CODE_FILENAME)
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _handle(
    fd: int, capture: _Capture, request: tuple[str, dict[str, Any], dict[str, Any] | None]
) -> None:
    code, inputs, context = request
    stream = capture.stream
    capture.begin()
    cwd = os.getcwd()
    response: tuple[Any, ...]
    try:
        response = _to_json(_run(code, inputs, context))
    except _StepFailed as failed:
        response = ("err", failed.kind, failed.message, failed.traceback)
    except SystemExit as exc:
        shown = "" if exc.code is None else repr(exc.code)
        response = ("err", "error", f"python code called sys.exit({shown})", "")
    except BaseException as exc:
        text = str(exc)
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        response = ("err", "error", text, _user_traceback(exc, code))
    finally:
        if sys.stdout is not stream or sys.stderr is not stream:  # the code set its own
            sys.stdout = sys.stderr = stream
        try:
            if os.getcwd() != cwd:
                os.chdir(cwd)
        except OSError:
            pass
    try:
        capture.end()
        _write_frame(fd, response)
    except ValueError:  # marshal could not encode it (cannot happen for JSON data)
        _write_frame(fd, ("err", "result", "result is not JSON", ""))


# -- process setup -----------------------------------------------------------------------


def _watch_parent(fd: int) -> None:
    """Exit as soon as the parent's end of the request pipe is closed."""
    poller = select.poll()
    poller.register(fd, 0)  # POLLHUP/POLLERR are always reported
    while True:
        for _, event in poller.poll():
            if event & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                os._exit(0)


def _ignore_signals() -> None:
    """SIGINT and SIGTERM reach the whole process group (Ctrl-C; `timeout`, a process
    manager): the parent cancels the call, or drains, and decides when a child dies."""
    import _signal  # type: ignore[import-not-found]  # `signal` would import enum

    _signal.signal(_signal.SIGINT, lambda signum, frame: None)
    _signal.signal(_signal.SIGTERM, lambda signum, frame: None)


def main() -> None:
    req_fd = os.dup(0)  # os.dup makes non-inheritable fds: programs started by
    resp_fd = os.dup(1)  # user code do not get the protocol pipes
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    capture = _Capture(resp_fd)  # fds 1 and 2 from here on
    sys.stdout = sys.stderr = capture.stream
    _ignore_signals()
    _thread.start_new_thread(_watch_parent, (req_fd,))
    import replaybook.actions.jsonsafe  # noqa: F401  (before the first call, not during it)

    try:
        while True:
            header = _read_exact(req_fd, _HEADER)
            if header is None:
                break
            payload = _read_exact(req_fd, int.from_bytes(header, "big"))
            if payload is None:
                break
            _handle(resp_fd, capture, marshal.loads(payload))
    except OSError:  # the parent went away mid-call
        pass
    os._exit(0)


if __name__ == "__main__":
    main()

"""Integration tests for the python action and its process pool (spec §6.1, §9)."""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from replaybook.actions.base import ActionContext
from replaybook.actions.python import PythonAction, PythonPool
from replaybook.errors import ActionError, NotJSONError, StepTimeout

CASES = Path("/work/shared/spec/conformance/cases")


@pytest.fixture(scope="module")
def pool() -> Iterator[PythonPool]:
    with PythonPool(max_size=6) as p:
        yield p


def run(
    pool: PythonPool,
    code: str,
    inputs: dict[str, Any] | None = None,
    *,
    context: dict[str, Any] | None = None,
    timeout: float | None = None,
    cancelled: threading.Event | None = None,
    logs: list[str] | None = None,
) -> Any:
    ctx = ActionContext(
        execution_id="exec-1",
        step="s",
        attempt=1,
        data_dir=Path("/nonexistent"),
        timeout=timeout,
        log=(logs.append if logs is not None else (lambda line: None)),
        cancelled=cancelled or threading.Event(),
        context=context or {},
        services={"python_pool": pool},
    )
    return PythonAction().run({"code": textwrap.dedent(code)}, inputs or {}, ctx)


# -- binding (the python_binding conformance case, step by step) ---------------------


def test_conformance_python_binding_steps(pool: PythonPool) -> None:
    case = CASES / "python_binding"
    playbook = yaml.safe_load((case / "playbook.yaml").read_text())
    expected = json.loads((case / "expected.json").read_text())["result"]
    steps = {s["step"]: s for s in playbook["workflow"]}
    names = {"named": "s_named", "kwargs": "s_kwargs", "input_data": "s_input_data"}
    names |= {"module": "s_module", "convert": "s_convert"}
    logs: list[str] = []
    for key, step_name in names.items():
        step = steps[step_name]
        got = run(pool, step["code"], step.get("args", {}), logs=logs)
        assert got == expected[key], step_name
    assert logs == ["this line goes to the step log"]


def test_binding_rules(pool: PythonPool) -> None:
    assert run(pool, "def main(a, b=5): return [a, b]", {"a": 1, "zzz": 9}) == [1, 5]
    assert run(pool, "def main(a, *, k=2): return [a, k]", {"a": 1, "k": 3}) == [1, 3]
    assert run(pool, "def main(a, /, b): return [a, b]", {"a": 1, "b": 2}) == [1, 2]
    assert run(pool, "def main(a, **kw): return [a, kw]", {"a": 1, "b": 2}) == [1, {"b": 2}]
    # an input actually named input_data is bound like any other
    assert run(pool, "def main(input_data): return input_data", {"input_data": 7}) == 7
    assert run(pool, "def main(): return 'no params'", {"ignored": 1}) == "no params"
    # module mode: inputs are globals, `result` is the result (null when unset)
    assert run(pool, "result = x * 2", {"x": 21}) == 42
    assert run(pool, "y = 1", {}) is None
    assert run(pool, "async def main(x):\n    return x + 1", {"x": 1}) == 2


def test_missing_param_names_it(pool: PythonPool) -> None:
    code = "def main(city, country_code):\n    return city + ',' + country_code"
    with pytest.raises(ActionError) as err:
        run(pool, code, {"city": "Oslo"})
    assert str(err.value) == "main() missing required input 'country_code'"
    assert err.value.type == "error"
    with pytest.raises(ActionError, match="missing required inputs 'a', 'b'"):
        run(pool, "def main(a, b): pass")


def test_each_call_gets_fresh_globals(pool: PythonPool) -> None:
    code = "counter = globals().get('counter', 0) + 1\nresult = counter"
    assert [run(pool, code) for _ in range(3)] == [1, 1, 1]


def test_code_b64_and_compile_error(pool: PythonPool) -> None:
    ctx = ActionContext("e", "s", 1, Path("/x"), services={"python_pool": pool})
    encoded = base64.b64encode(b"def main(n): return n * 3").decode()
    assert PythonAction().run({"code_b64": encoded}, {"n": 2}, ctx) == 6
    with pytest.raises(ActionError, match=r"SyntaxError: .*\(line 2\)"):
        run(pool, "x = 1\ndef main(:\n")
    with pytest.raises(ActionError, match="needs `code`"):
        PythonAction().run({}, {}, ctx)


# -- results and errors --------------------------------------------------------------


def test_non_json_result_names_type(pool: PythonPool) -> None:
    code = """
        class Widget:
            pass

        def main():
            return {"w": Widget()}
    """
    with pytest.raises(NotJSONError) as err:
        run(pool, code)
    assert "Widget" in str(err.value)
    assert err.value.type == "result"


def test_exception_message_and_traceback_log(pool: PythonPool) -> None:
    logs: list[str] = []
    with pytest.raises(ActionError) as err:
        run(pool, "def main(x):\n    raise ValueError('bad input ' + x)", {"x": "x"}, logs=logs)
    assert str(err.value) == "ValueError: bad input x"
    assert err.value.type == "error"
    assert logs[0] == "Traceback (most recent call last):"
    assert logs[-1] == "ValueError: bad input x"
    assert any('File "<python step>", line 2, in main' in line for line in logs)
    with pytest.raises(ActionError, match=r"^KeyError: 'k'$"):
        run(pool, "def main(): return {}['k']")
    with pytest.raises(ActionError, match=r"^RuntimeError$"):
        run(pool, "def main(): raise RuntimeError()")


def test_stdout_and_stderr_are_captured_as_log_lines(pool: PythonPool) -> None:
    code = """
        import sys
        def main():
            print("one")
            print("two\\nthree", end="")
            sys.stderr.write("err line\\n")
            print("tail", end="")
            return 1
    """
    logs: list[str] = []
    assert run(pool, code, logs=logs) == 1
    assert logs == ["one", "two", "threeerr line", "tail"]


def test_c_level_writes_do_not_corrupt_the_protocol(pool: PythonPool) -> None:
    code = """
        import os, sys
        def main():
            os.write(1, b"garbage on fd 1\\n")
            sys.__stdout__.write("more garbage\\n")
            sys.__stdout__.flush()
            try:
                input()
            except EOFError:
                return "stdin is empty"
    """
    assert run(pool, code) == "stdin is empty"
    assert run(pool, "def main(): return 'still fine'") == "still fine"


def test_fd_level_output_joins_the_log_in_order(pool: PythonPool) -> None:
    code = """
        import os, subprocess, sys
        def main():
            print("p1")
            os.system("echo from-shell; echo shell-err >&2")
            subprocess.run([sys.executable, "-c", "print('from-child')"])
            os.write(1, b"fd1 ")
            os.write(2, "fd2 \u00e9\\n".encode())
            print("p2", end="")
            return 1
    """
    logs: list[str] = []
    assert run(pool, code, logs=logs) == 1
    assert logs == ["p1", "from-shell", "shell-err", "from-child", "fd1 fd2 \u00e9", "p2"]


def test_fd_level_output_is_capped_and_never_blocks(pool: PythonPool) -> None:
    # Far more than a pipe holds, in one write by a program the code starts.
    code = """
        import subprocess, sys
        def main():
            subprocess.run([sys.executable, "-c", "import sys; sys.stdout.write('x' * 6_000_000)"])
            return "done"
    """
    logs: list[str] = []
    assert run(pool, code, logs=logs) == "done"
    text = "\n".join(logs)
    assert text.startswith("xxxx") and "[log truncated" in text
    assert len(text) < 4 * 1024 * 1024 + 200


def test_output_after_a_call_is_dropped(pool: PythonPool) -> None:
    # A thread and a program the code leaves running keep writing after main returns:
    # that output belongs to no call, and must not corrupt the protocol.
    code = """
        import os, subprocess, sys, threading, time
        def chatter():
            for _ in range(50):
                print("late print")
                os.write(2, b"late fd 2\\n")
                time.sleep(0.01)
        def main():
            threading.Thread(target=chatter, daemon=True).start()
            loop = "for i in 1 2 3 4 5; do echo late-shell; sleep 0.1; done"
            subprocess.Popen(["sh", "-c", loop])
            return "left them running"
    """
    with PythonPool(max_size=1) as one:
        assert run(one, code) == "left them running"
        for i in range(20):
            logs: list[str] = []
            assert run(one, f"def main():\n    print('call {i}')\n    return {i}", logs=logs) == i
            # (A thread's print may land inside this call's line: print writes the
            # text and its newline apart, as in any threaded program.)
            assert any(f"call {i}" in line for line in logs), logs


def test_sys_exit(pool: PythonPool) -> None:
    with pytest.raises(ActionError) as err:
        run(pool, "import sys\ndef main():\n    sys.exit(3)")
    assert str(err.value) == "python code called sys.exit(3)"
    with pytest.raises(ActionError, match=r"sys.exit\(\)"):
        run(pool, "import sys\nsys.exit()")
    assert run(pool, "def main(): return 'after exit'") == "after exit"


def test_segfault_kills_only_that_attempt(pool: PythonPool) -> None:
    with pytest.raises(ActionError) as err:
        run(pool, "import os\ndef main():\n    os.kill(os.getpid(), 11)")
    assert str(err.value) == "python process died (signal 11)"
    with pytest.raises(ActionError, match=r"python process died \(exit code 3\)"):
        run(pool, "import os\nos._exit(3)")
    assert run(pool, "def main(): return 'replaced'") == "replaced"


def test_death_noticed_while_a_forked_process_holds_the_pipe(pool: PythonPool) -> None:
    code = """
        import os, time
        def main():
            if os.fork() == 0:  # the grandchild keeps the answer pipe open for 3 s
                time.sleep(3)
                os._exit(0)
            os.kill(os.getpid(), 9)
    """
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"signal 9"):
        run(pool, code)
    assert time.monotonic() - started < 2


def test_large_result_and_inputs(pool: PythonPool) -> None:
    big = "x" * (5 * 1024 * 1024)
    assert run(pool, "def main(s): return {'n': len(s), 's': s}", {"s": big}) == {
        "n": len(big),
        "s": big,
    }


# -- timeout, cancel, context ----------------------------------------------------------


def test_timeout_kills_and_pool_still_works(pool: PythonPool) -> None:
    code = """
        import time
        def main():
            print("before the nap")
            time.sleep(60)
            return "woke up"
    """
    logs: list[str] = []
    started = time.monotonic()
    with pytest.raises(StepTimeout) as err:
        run(pool, code, timeout=1, logs=logs)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.8
    assert str(err.value) == "timed out after 1 s"
    assert err.value.type == "timeout"
    assert logs == ["before the nap"]  # streamed before the kill
    assert run(pool, "def main(): return 'alive'") == "alive"


def test_cancel_kills_the_call(pool: PythonPool) -> None:
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    started = time.monotonic()
    with pytest.raises(ActionError) as err:
        run(pool, "import time\ndef main():\n    time.sleep(60)", cancelled=cancelled)
    assert time.monotonic() - started < 1.0
    assert err.value.type == "cancelled"
    assert run(pool, "def main(): return 'alive'") == "alive"


def test_context_global(pool: PythonPool) -> None:
    context = {
        "workload": {"city": "Oslo"},
        "execution_id": "exec-1",
        "fetch": {"status_code": 200},
        "now": lambda: "not sent",  # template functions are left out
    }
    code = """
        def main():
            try:
                context["x"] = 1
                writable = True
            except TypeError:
                writable = False
            return {
                "city": context["workload"]["city"],
                "id": context["execution_id"],
                "fetch": context["fetch"]["status_code"],
                "has_now": "now" in context,
                "writable": writable,
            }
    """
    assert run(pool, code, context=context) == {
        "city": "Oslo",
        "id": "exec-1",
        "fetch": 200,
        "has_now": False,
        "writable": False,
    }
    # a `context` parameter that is not an input receives it too
    assert run(pool, "def main(context): return context['execution_id']", context=context) == (
        "exec-1"
    )


# -- the pool ------------------------------------------------------------------------


def test_parallel_calls_run_in_parallel(pool: PythonPool) -> None:
    code = "import time\ndef main(i):\n    time.sleep(0.5)\n    return i"

    def many(n: int, code: str) -> tuple[list[Any], float]:
        results: list[Any] = [None] * n

        def one(i: int) -> None:
            results[i] = run(pool, code, {"i": i})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results, time.monotonic() - started

    many(4, "def main(i): return i")  # warm four children
    results, elapsed = many(4, code)
    assert results == [0, 1, 2, 3]
    assert 0.5 <= elapsed < 1.0


def test_pool_size_is_bounded() -> None:
    with PythonPool(max_size=2) as small:
        code = "import time\ndef main():\n    time.sleep(0.3)\n    return 1"
        threads = [threading.Thread(target=lambda: run(small, code)) for _ in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - started >= 0.6  # two rounds of two
        assert small.size <= 2


def test_waiting_for_a_child_honours_timeout() -> None:
    with PythonPool(max_size=1) as tiny:
        hog = threading.Thread(target=lambda: run(tiny, "import time\ntime.sleep(1)"))
        hog.start()
        time.sleep(0.2)
        with pytest.raises(StepTimeout):
            run(tiny, "result = 1", timeout=0.3)
        hog.join()
        assert run(tiny, "result = 2") == 2


def test_close_kills_children_and_refuses_calls() -> None:
    p = PythonPool(max_size=2)
    p.prestart(2)
    assert run(p, "import os\nresult = os.getpgid(0)") == os.getpgid(0)  # same group
    pids = [run(p, "import os\nresult = os.getpid()")]
    p.close()
    for pid in pids:
        assert not _alive(pid)
    with pytest.raises(ActionError) as err:
        run(p, "result = 1")
    assert err.value.type == "cancelled"


def test_close_during_a_call_fails_it_as_cancelled() -> None:
    p = PythonPool(max_size=1)
    threading.Timer(0.3, p.close).start()
    with pytest.raises(ActionError) as err:
        run(p, "import time\ntime.sleep(30)")
    assert err.value.type == "cancelled"


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, threading
            from replaybook.actions.python import PythonPool
            pool = PythonPool()
            idle = pool.call("import os\\nresult = os.getpid()", {})
            busy = []
            started = threading.Event()

            def log(line):
                busy.append(line)
                started.set()

            t = threading.Thread(
                target=lambda: pool.call("import os, time\\nprint(os.getpid())\\n"
                                         "time.sleep(60)", {}, log=log),
                daemon=True)
            t.start()
            if not started.wait(30):
                sys.exit("the busy call never started")
            print(idle, busy[0], flush=True)
            os._exit(0)  # no atexit, no close: the children must notice by themselves
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped by init counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_benchmark_round_trip(pool: PythonPool, capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion: prints the per-call round trip of a trivial main() on a warm
    pool (run with -s to see it)."""
    code = "def main(x):\n    return x + 1"
    ctx = ActionContext("e", "s", 1, Path("/x"), services={"python_pool": pool})
    action = PythonAction()
    for i in range(200):
        action.run({"code": code}, {"x": i}, ctx)
    batches = []
    for _ in range(10):
        n = 300
        started = time.perf_counter()
        for i in range(n):
            action.run({"code": code}, {"x": i}, ctx)
        batches.append((time.perf_counter() - started) / n * 1e6)
    with capsys.disabled():
        print(
            f"\npython action round trip (warm pool): min {min(batches):.0f} us, "
            f"median {statistics.median(batches):.0f} us per call"
        )

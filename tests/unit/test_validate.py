"""Unit tests for replaybook.playbook.validate and graph (spec §1, §3, §8, §9)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from replaybook.errors import PlaybookInvalid, Problem
from replaybook.playbook.graph import back_edges, forward_predecessors
from replaybook.playbook.load import load_file, load_playbook
from replaybook.playbook.model import Playbook, RetryPolicy
from replaybook.playbook.validate import (
    Reporter,
    SourceMap,
    duration,
    parse_max_visits,
    parse_retry,
    parse_timeout,
)

CASES = Path("/work/shared/spec/conformance/cases")


def reporter() -> Reporter:
    return Reporter(SourceMap(), "f.yaml")


def load(text: str, **kw: Any) -> tuple[Playbook, list[Problem]]:
    return load_playbook(textwrap.dedent(text), "test.yaml", **kw)


def invalid(text: str) -> list[Problem]:
    with pytest.raises(PlaybookInvalid) as info:
        load(text)
    return info.value.problems


def wrap(steps: str, head: str = "") -> str:
    return (
        "metadata: {name: t}\n"
        + textwrap.dedent(head)
        + "workflow:\n  - step: start\n    next: a\n"
        + textwrap.indent(textwrap.dedent(steps), "  ")
        + "  - step: end\n"
    )


# ------------------------------------------------------------------ retry


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (True, RetryPolicy()),
        (4, RetryPolicy(max_attempts=4)),
        ({}, RetryPolicy()),
        (
            {
                "max_attempts": 5,
                "initial_delay": 0.5,
                "backoff_multiplier": 3,
                "max_delay": "2m",
                "jitter": False,
                "retry_when": "{{ error.status_code == 503 }}",
                "stop_when": True,
            },
            RetryPolicy(5, 0.5, 3.0, 120.0, False, "{{ error.status_code == 503 }}", "true"),
        ),
    ],
)
def test_retry_forms(value: Any, expected: RetryPolicy | None) -> None:
    r = reporter()
    assert parse_retry(value, "retry", r) == expected
    assert r.problems == []


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (0, "retry"),
        (-2, "retry"),
        (1.5, "retry"),
        ("3", "retry"),
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": True}, "retry.max_attempts"),
        ({"initial_delay": -1}, "retry.initial_delay"),
        ({"backoff_multiplier": "x"}, "retry.backoff_multiplier"),
        ({"max_delay": "soon"}, "retry.max_delay"),
        ({"jitter": "yes please"}, "retry.jitter"),
        ({"retry_when": 5}, "retry.retry_when"),
    ],
)
def test_retry_errors(value: Any, path: str) -> None:
    r = reporter()
    parse_retry(value, "retry", r)
    assert [(p.severity, p.path) for p in r.problems] == [("error", path)]


def test_retry_unknown_field_warns_with_hint() -> None:
    r = reporter()
    assert parse_retry({"max_attempts": 2, "delay": 1}, "retry", r) == RetryPolicy(2)
    [problem] = r.problems
    assert problem.severity == "warning" and problem.path == "retry.delay"
    assert "did you mean" in problem.message


def test_retry_in_a_playbook_reports_line() -> None:
    problems = invalid(wrap("- step: a\n  type: python\n  code: x\n  retry: {max_attempts: 0}\n"))
    assert [(p.path, p.line) for p in problems] == [("workflow[1].retry.max_attempts", 8)]


# ------------------------------------------------------------------ timeout, visits


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1.0),
        (2.5, 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("30", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        (" 1.5 h ", 5400.0),
        ("10 seconds", 10.0),
        ("2min", 120.0),
        (None, None),
    ],
)
def test_timeout_parsing(value: Any, seconds: float | None) -> None:
    r = reporter()
    assert parse_timeout(value, "timeout", r) == seconds
    assert r.problems == []


@pytest.mark.parametrize("value", [0, -1, "0s", "soon", "5 parsecs", True, [1], "1e3", "m"])
def test_bad_timeouts(value: Any) -> None:
    r = reporter()
    assert parse_timeout(value, "timeout", r) is None
    assert len(r.problems) == 1 and "timeout" in r.problems[0].message


def test_duration_helper() -> None:
    assert duration("250ms") == 0.25 and duration("x") is None and duration(False) is None


def test_max_visits() -> None:
    r = reporter()
    assert parse_max_visits(None, "m", r) == 1000
    assert parse_max_visits(3, "m", r) == 3
    assert r.problems == []
    for bad in (0, -1, True, "5", 2.0):
        r = reporter()
        parse_max_visits(bad, "m", r)
        assert len(r.problems) == 1


# ------------------------------------------------------------------ templates


def test_template_errors_everywhere_with_lines_and_paths() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              type: iterator
              collection: "{{ workload.items | }}"
              element: i
              task:
                type: python
                args: {x: "{% if %}"}
                code: "{{ not a template }"
              next:
                - when: "{{ result ==  }}"
                  then: [end]
            """,
            """
            workload:
              bad: "{{ 1 + }}"
            workbook:
              - name: w
                type: http
                url: "{{ ) }}"
                code: "{{ also skipped"
            """,
        )
    )
    assert all(p.message.startswith("template syntax error") for p in problems)
    assert [(p.line, p.path) for p in problems] == [
        (4, "workload.bad"),
        (8, "workbook[0].url"),
        (16, "workflow[1].collection"),
        (20, "workflow[1].task.args.x"),
        (23, "workflow[1].next[0].when"),
    ]


def test_template_line_inside_block_scalar() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              type: duckdb
              sql: |
                SELECT 1;
                SELECT {{ workload.x + }};
              next: end
            """
        )
    )
    [problem] = problems
    assert (problem.line, problem.path) == (10, "workflow[1].sql")


def test_python_code_is_not_a_template_but_inputs_named_code_are() -> None:
    _, warnings = load(
        wrap(
            """
            - step: a
              type: python
              code: |
                def main():
                    return "{{ not jinja"
              next: end
            """
        )
    )
    assert warnings == []
    problems = invalid(wrap("- step: a\n  args: {code: '{{ x + }}'}\n  next: end\n"))
    assert [p.path for p in problems] == ["workflow[1].args.code"]


def test_extra_filters_and_functions_are_known() -> None:
    pb, _ = load(
        wrap(
            """
            - step: a
              args:
                j: "{{ x | tojson | fromjson }}"
                b: "{{ 'a' | b64encode | b64decode }}"
                t: "{{ now() }} {{ today() }} {{ uuid() }}"
              next: end
            """
        )
    )
    assert pb.step("a").inputs["t"] == "{{ now() }} {{ today() }} {{ uuid() }}"
    problems = invalid(wrap("- step: a\n  args: {x: '{{ y | no_such_filter }}'}\n  next: end\n"))
    assert "no_such_filter" in problems[0].message


# ------------------------------------------------------------------ graph checks


def test_multiple_errors_reported_at_once() -> None:
    problems = invalid(
        """
        metadata: {name: t}
        workflow:
          - step: begin
            type: http
            url: "{{ x + }}"
            retry: -1
            timeout: never
            next: [nope, begin]
          - step: begin
          - step: bad-name
        """
    )
    messages = [p.message for p in problems]
    assert len(problems) >= 8
    assert "missing step 'start'" in messages and "missing step 'end'" in messages
    assert "duplicate step name 'begin'" in messages
    assert any("bad-name" in m for m in messages)
    assert any("nope" in m for m in messages)
    assert any(p.path == "workflow[0].retry" for p in problems)
    assert any(p.path == "workflow[0].timeout" for p in problems)
    assert any(p.path == "workflow[0].url" for p in problems)
    assert all(p.file == "test.yaml" for p in problems)


def test_missing_step_name() -> None:
    problems = invalid(wrap("- type: python\n  code: x\n- step: a\n  next: end\n"))
    assert any("needs a name" in p.message and p.path == "workflow[1]" for p in problems)


# ------------------------------------------------------------------ graph.py


def case(name: str) -> Playbook:
    path = CASES / name / "playbook.yaml"
    if not path.exists():
        pytest.skip("conformance cases not available")
    return load_file(path)[0]


def test_graph_loop_pagination_self_loop() -> None:
    pb = case("loop_pagination")
    assert back_edges(pb) == {("fetch_page", "fetch_page")}
    assert forward_predecessors(pb) == {
        "start": (),
        "fetch_page": ("start",),
        "done": ("fetch_page",),
        "end": ("done",),
    }


def test_graph_joins() -> None:
    pb = case("join_waits_for_both")
    assert back_edges(pb) == frozenset()
    assert forward_predecessors(pb)["join"] == ("fast", "slow")
    pb = case("join_dead_path")
    preds = forward_predecessors(pb)
    assert preds["merge"] == ("left", "right_more")
    assert preds["right"] == ("decide",)
    pb = case("routing_error_goes_to_on_error")
    assert forward_predecessors(pb)["end"] == ("taken", "not_taken", "handle")
    assert forward_predecessors(pb)["handle"] == ("decide",)


def test_graph_longer_loop_on_error_and_unreachable_steps() -> None:
    pb, _ = load(
        """
        metadata: {name: g}
        workflow:
          - step: start
            next: [a, b]
          - step: a
            type: python
            code: x
            next: c
            on_error: a
          - step: b
            next: c
          - step: c
            next:
              - when: "{{ again }}"
                then: [a]
              - else: [end]
          - step: orphan
            next: c
          - step: end
        """
    )
    assert back_edges(pb) == {("a", "a"), ("c", "a")}
    preds = forward_predecessors(pb)
    assert preds == {
        "start": (),
        "a": ("start",),
        "b": ("start",),
        "c": ("a", "b"),
        "orphan": (),
        "end": ("c",),
    }


def test_graph_back_edge_depends_on_dfs_order() -> None:
    # start -> x -> y -> x: the arc y -> x closes the loop (x is on the path)
    pb, _ = load(
        """
        metadata: {name: g}
        workflow:
          - step: start
            next: x
          - step: y
            next: [x, end]
          - step: x
            next: y
          - step: end
        """
    )
    assert back_edges(pb) == {("y", "x")}
    assert forward_predecessors(pb) == {"start": (), "y": ("x",), "x": ("start",), "end": ("y",)}

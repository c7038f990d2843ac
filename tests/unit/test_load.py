"""Unit tests for replaybook.playbook.load and dialects (spec §1, §4, §5, §6.5, §6.8)."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

from replaybook.errors import PlaybookInvalid, Problem
from replaybook.playbook.load import (
    builtin_types,
    load_file,
    load_playbook,
    load_value,
    task_step,
)
from replaybook.playbook.model import Arc, Playbook, RetryPolicy, Step

CASES = Path("/work/shared/spec/conformance/cases")
CASE_FILES = sorted(CASES.glob("*/playbook.yaml")) + sorted(CASES.glob("*/children/*.yaml"))


def load(text: str, **kw: Any) -> tuple[Playbook, list[Problem]]:
    return load_playbook(textwrap.dedent(text), "test.yaml", **kw)


def invalid(text: str, **kw: Any) -> list[Problem]:
    with pytest.raises(PlaybookInvalid) as info:
        load(text, **kw)
    assert info.value.problems
    return info.value.problems


def wrap(steps: str, head: str = "") -> str:
    """A playbook around the given workflow steps (indented 2), plus start and end."""
    return (
        "metadata: {name: t}\n"
        + textwrap.dedent(head)
        + "workflow:\n  - step: start\n    next: a\n"
        + textwrap.indent(textwrap.dedent(steps), "  ")
        + "  - step: end\n"
    )


# ------------------------------------------------------------------ conformance


@pytest.mark.skipif(not CASE_FILES, reason="conformance cases not available")
@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: str(p.relative_to(CASES)))
def test_conformance_case(path: Path) -> None:
    expected = (
        json.loads((path.parents[0] / "expected.json").read_text())
        if (path.name == "playbook.yaml")
        else {}
    )
    if expected.get("status") != "invalid":
        playbook, warnings = load_file(path)
        assert warnings == []
        assert playbook.has_step("start") and playbook.has_step("end")
        return
    with pytest.raises(PlaybookInvalid) as info:
        load_file(path)
    problems = info.value.problems
    assert all(p.severity == "error" and p.file == str(path) for p in problems)
    text = " ".join(p.message for p in problems)
    for word in expected.get("errors_contain", []):
        assert word in text
    for want in expected.get("errors_subset", []):
        assert any(all(p.as_dict()[k] == v for k, v in want.items()) for p in problems), (
            want,
            problems,
        )


def test_conformance_exact_problems() -> None:
    def only(case: str) -> dict[str, Any]:
        with pytest.raises(PlaybookInvalid) as info:
            load_file(CASES / case / "playbook.yaml")
        assert len(info.value.problems) == 1
        return info.value.problems[0].as_dict()

    if not CASE_FILES:
        pytest.skip("conformance cases not available")
    assert only("invalid_duplicate_step") == {
        "message": "duplicate step name 'fetch'",
        "line": 16,
        "path": "workflow[2].step",
    }
    assert only("invalid_missing_start")["message"] == "missing step 'start'"
    got = only("invalid_unknown_next_target")
    assert got["line"] == 17 and got["path"] == "workflow[1].next"
    assert "unknown next target 'nowhere_step'" in got["message"]
    got = only("invalid_jinja_syntax")
    assert (got["line"], got["path"]) == (17, "workflow[1].args.name")
    assert only("invalid_yaml_syntax")["line"] == 13


# ------------------------------------------------------------------ document


def test_document_fields_and_defaults() -> None:
    pb, warnings = load(
        """
        apiVersion: replaybook/v1
        kind: Playbook
        metadata: {name: weather, version: 3, description: hello}
        workload: {z: 1, a: {y: 2, b: 3}}
        workflow:
          - step: start
            next: end
          - step: end
        """
    )
    assert warnings == []
    assert (pb.name, pb.path, pb.version, pb.description) == ("weather", "weather", 3, "hello")
    assert list(pb.workload) == ["z", "a"] and list(pb.workload["a"]) == ["y", "b"]
    assert pb.file == "test.yaml" and "weather" in pb.source
    assert [s.name for s in pb.steps] == ["start", "end"]
    assert [s.index for s in pb.steps] == [0, 1]
    assert pb.steps[0].line == 7 and pb.steps[1].line == 9


def test_top_level_name_and_path_are_accepted() -> None:
    pb, _ = load(
        """
        name: old
        path: lib/old
        workflow: [{step: start, next: end}, {step: end}]
        """
    )
    assert (pb.name, pb.path, pb.version) == ("old", "lib/old", None)


def test_document_errors_are_all_reported() -> None:
    problems = invalid(
        """
        apiVersion: noetl.io/v9
        kind: Pipeline
        metadata: {path: x}
        workload: [1]
        workflow:
          - step: start
            next: nowhere
          - step: 2bad
            type: pyton
          - step: start
        """
    )
    messages = [p.message for p in problems]
    assert any("apiVersion" in m and "noetl.io/v9" in m for m in messages)
    assert any("kind" in m for m in messages)
    assert "missing metadata.name" in messages
    assert "workload must be a mapping" in messages
    assert any("unknown next target 'nowhere'" in m for m in messages)
    assert any("'2bad' is not an identifier" in m for m in messages)
    assert any("unknown step type 'pyton' (did you mean 'python'?)" in m for m in messages)
    assert "duplicate step name 'start'" in messages
    assert "missing step 'end'" in messages
    assert [p.line for p in problems] == sorted(p.line for p in problems)


def test_missing_workflow_and_empty_text() -> None:
    assert any("workflow" in p.message for p in invalid("metadata: {name: x}\n"))
    assert invalid("")[0].message == "the playbook is empty"
    assert "mapping" in invalid("- 1\n- 2\n")[0].message


def test_yaml_errors() -> None:
    problems = invalid("metadata:\n  name: x\n  name: y\nworkflow: []\n")
    assert any(p.message == "duplicate key 'name'" and p.line == 3 for p in problems)
    problems = invalid("a: [1, 2\nb: 3\n")
    assert len(problems) == 1 and problems[0].message.startswith("YAML syntax error")
    assert problems[0].line >= 2


def test_yaml_anchors_merge_keys_and_plain_values() -> None:
    pb, _ = load(
        """
        metadata: {name: t}
        workload:
          base: &base {retries: 3, host: h}
          merged: {<<: *base, host: other}
          day: 2024-01-02
          flags: [yes, null, 1.5, 0x10, "007"]
        workflow: [{step: start, next: end}, {step: end}]
        """
    )
    assert pb.workload["merged"] == {"retries": 3, "host": "other"}
    assert pb.workload["day"] == "2024-01-02"
    assert pb.workload["flags"] == [True, None, 1.5, 16, "007"]


def test_load_value_reads_a_value_as_a_workload_would() -> None:
    assert load_value("2024-01-02") == "2024-01-02"  # a timestamp stays its text
    assert load_value("2024-01-02 10:00:00") == "2024-01-02 10:00:00"
    assert load_value("[3, x, {a: 1.5}]") == [3, "x", {"a": 1.5}]
    assert load_value("yes") is True and load_value("~") is None
    assert math.isinf(load_value(".inf"))  # refused by its callers
    assert load_value("!!python/name:os.system x") == "x"  # never constructed
    for bad in ("[1, 2", "!custom x"):
        with pytest.raises(ValueError):
            load_value(bad)


def test_non_finite_numbers_in_the_workload_are_errors() -> None:
    problems = invalid(
        "metadata: {name: t}\nworkload:\n  a: .inf\n  b: [1, .nan]\n"
        "workflow: [{step: start, next: end}, {step: end}]\n"
    )
    assert [(p.path, p.line) for p in problems] == [("workload.a", 3), ("workload.b[1]", 4)]
    assert all("not a JSON number" in p.message for p in problems)


def test_recursive_alias_is_an_error() -> None:
    problems = invalid("metadata: {name: t}\nworkload: &w {self: *w}\nworkflow: []\n")
    assert any("recursive" in p.message for p in problems)


def test_load_file_missing_and_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PlaybookInvalid) as info:
        load_file(missing)
    [problem] = info.value.problems
    assert str(missing) in problem.message and problem.file == str(missing)
    with pytest.raises(PlaybookInvalid) as info:
        load_file(tmp_path)  # a directory
    assert str(tmp_path) in info.value.problems[0].message
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PlaybookInvalid):
        load_file(binary)


def test_builtin_types() -> None:
    types = builtin_types()
    for name in (
        "python",
        "http",
        "duckdb",
        "postgres",
        "playbook",
        "iterator",
        "secrets",
        "workbook",
    ):
        assert name in types


def test_known_types_allows_plugins_without_key_warnings() -> None:
    text = wrap("- step: a\n  type: kafka\n  topic: t\n  next: end\n")
    problems = invalid(text)
    assert any("unknown step type 'kafka'" in p.message for p in problems)
    pb, warnings = load(text, known_types={"kafka"})
    assert pb.step("a").type == "kafka" and pb.step("a").spec == {"topic": "t"}
    assert warnings == []


# ------------------------------------------------------------------ steps and inputs


def test_router_spellings_and_fields() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              type: router
              desc: pick
              args: {x: 1}
              next: b
            - step: b
              type: start
              pool: fast
              max_visits: 5
              next: end
            """
        )
    )
    assert warnings == []
    a, b = pb.step("a"), pb.step("b")
    assert a.is_router and a.desc == "pick" and a.inputs == {"x": 1}
    assert b.is_router and b.pool == "fast" and b.max_visits == 5
    assert pb.step("start").max_visits == 1000
    assert pb.step("end").is_router and pb.step("end").next.arcs == ()


def test_input_aliases_merge_with_args_winning() -> None:
    pb, _ = load(
        wrap(
            """
            - step: a
              type: python
              code: "def main(**k): return k"
              data: {a: data, d: 1}
              input: {a: input, i: 1}
              with: {a: with, w: 1}
              args: {a: args, x: 1}
              next: end
            """
        )
    )
    assert pb.step("a").inputs == {"a": "args", "d": 1, "i": 1, "w": 1, "x": 1}
    assert pb.step("a").spec == {"code": "def main(**k): return k"}


def test_inputs_as_one_template_string_and_absent() -> None:
    pb, _ = load(wrap("- step: a\n  with: '{{ workload.x }}'\n  next: end\n"))
    assert pb.step("a").inputs == "{{ workload.x }}"
    assert pb.step("start").inputs is None
    problems = invalid(wrap("- step: a\n  with: '{{ x }}'\n  args: {y: 1}\n  next: end\n"))
    assert any("cannot be merged" in p.message for p in problems)
    problems = invalid(wrap("- step: a\n  args: [1, 2]\n  next: end\n"))
    assert any(p.path == "workflow[1].args" for p in problems)


def test_spec_keeps_action_fields_and_models_the_rest() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              type: http
              method: POST
              endpoint: http://x/y
              headers: {A: b}
              body: {k: v}
              fail_on_status: false
              max_result_bytes: 100
              timeout: 30s
              retry: 2
              save: {storage: event_log}
              auth: my_cred
              desc: post it
              next: end
            """
        )
    )
    assert warnings == []
    a = pb.step("a")
    assert a.spec == {
        "method": "POST",
        "endpoint": "http://x/y",
        "headers": {"A": "b"},
        "body": {"k": "v"},
        "fail_on_status": False,
        "max_result_bytes": 100,
    }
    assert list(a.spec) == [
        "method",
        "endpoint",
        "headers",
        "body",
        "fail_on_status",
        "max_result_bytes",
    ]
    assert a.timeout == 30.0 and a.retry == RetryPolicy(max_attempts=2)
    assert a.save == {"storage": "event_log"} and a.auth == "my_cred" and a.desc == "post it"


def test_end_result_is_modelled() -> None:
    pb, _ = load(
        "metadata: {name: t}\nworkflow:\n  - step: start\n    next: end\n"
        "  - step: end\n    result: {a: '{{ start }}'}\n"
    )
    assert pb.step("end").result == {"a": "{{ start }}"}


def test_bad_policy_fields_are_errors() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              type: python
              code: x
              save: [1]
              auth: 3
              pool: [x]
              max_visits: 0
              next: end
            """
        )
    )
    paths = {p.path for p in problems}
    assert {
        "workflow[1].save",
        "workflow[1].auth",
        "workflow[1].pool",
        "workflow[1].max_visits",
    } <= paths


# ------------------------------------------------------------------ routing


def arcs(pb: Playbook, step: str = "a") -> list[Arc]:
    return list(pb.step(step).next.arcs)


def test_next_scalar_and_list() -> None:
    pb, _ = load(wrap("- step: a\n  next: end\n"))
    assert arcs(pb) == [Arc("end", path="workflow[1].next", group=arcs(pb)[0].group)]
    pb, _ = load(wrap("- step: a\n  next: [b, end]\n- step: b\n"))
    got = arcs(pb)
    assert [a.target for a in got] == ["b", "end"]
    assert [a.path for a in got] == ["workflow[1].next[0]", "workflow[1].next[1]"]
    assert got[0].group != got[1].group and not pb.step("a").next.inclusive
    assert all(a.when is None and not a.is_else for a in got)


def test_next_items_with_data_when_then_else() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              next:
                - step: b
                  data: {city: "{{ result.city }}"}
                - when: "{{ result.t > 30 }}"
                  then: [{step: hot}, c]
                - when: "{{ result.t < 0 }}"
                  step: cold
                  with: {z: 1}
                - when: "{{ result.t < 5 }}"
                  then: c
                - else: [{step: mild, data: {t: "{{ result.t }}"}}]
            - step: b
            - step: c
            - step: hot
            - step: cold
            - step: mild
            """
        )
    )
    assert warnings == []
    got = arcs(pb)
    assert [a.target for a in got] == ["b", "hot", "c", "cold", "c", "mild"]
    assert got[0].data == {"city": "{{ result.city }}"} and got[0].when is None
    assert got[1].when == got[2].when == "{{ result.t > 30 }}"
    assert got[1].group == got[2].group
    assert len({got[0].group, got[1].group, got[3].group, got[4].group, got[5].group}) == 5
    assert got[3].data == {"z": 1} and got[3].when == "{{ result.t < 0 }}"
    assert got[4].when == "{{ result.t < 5 }}"
    assert got[5].is_else and got[5].when is None and got[5].data == {"t": "{{ result.t }}"}
    assert [a.path for a in got] == [
        "workflow[1].next[0]",
        "workflow[1].next[1]",
        "workflow[1].next[1]",
        "workflow[1].next[2]",
        "workflow[1].next[3]",
        "workflow[1].next[4]",
    ]


def test_else_scalar_and_when_then_else_in_one_item() -> None:
    pb, _ = load(
        wrap(
            """
            - step: a
              next:
                - when: "{{ x }}"
                  then: [b]
                  else: c
            - step: b
            - step: c
            """
        )
    )
    b, c = arcs(pb)
    assert (b.target, b.when, b.is_else) == ("b", "{{ x }}", False)
    assert (c.target, c.when, c.is_else) == ("c", None, True)
    assert b.group != c.group


def test_noetl_v2_spec_arcs_and_next_mode() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              next:
                spec: {mode: inclusive}
                arcs:
                  - step: b
                    when: "{{ x }}"
                  - {step: end, data: {k: 1}}
            - step: b
              next_mode: inclusive
              next:
                - when: "{{ y }}"
                  then: [end]
            """
        )
    )
    assert warnings == []
    assert pb.step("a").next.inclusive and pb.step("b").next.inclusive
    first, second = arcs(pb)
    assert first.path == "workflow[1].next.arcs[0]" and first.when == "{{ x }}"
    assert second.data == {"k": 1} and second.when is None


def test_on_error_takes_the_same_forms() -> None:
    pb, _ = load(
        wrap(
            """
            - step: a
              type: python
              code: x
              next: end
              on_error:
                - step: b
                  data: {m: "{{ error.message }}"}
            - step: b
              on_error: end
            """
        )
    )
    [arc] = pb.step("a").on_error.arcs
    assert (arc.target, arc.data, arc.path) == (
        "b",
        {"m": "{{ error.message }}"},
        "workflow[1].on_error[0]",
    )
    assert pb.step("b").on_error.targets == ("end",)


def test_routing_errors_point_at_the_naming_scalar() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              next:
                - step: ghost
                - when: "{{ x }}"
                  then: [end, nobody]
                - else: {step: phantom}
                - {when: 3, then: end}
                - {when: "{{ y }}"}
                - {then: [end], data: {x: 1}}
                - {}
                - 7
              next_mode: sideways
              on_error: missing
            """
        )
    )
    where = {p.message.split(" in step")[0]: (p.line, p.path) for p in problems}
    assert where["unknown next target 'ghost'"] == (8, "workflow[1].next[0].step")
    assert where["unknown next target 'nobody'"] == (10, "workflow[1].next[1].then[1]")
    assert where["unknown next target 'phantom'"] == (11, "workflow[1].next[2].else.step")
    assert where["unknown on_error target 'missing'"] == (18, "workflow[1].on_error")
    messages = " | ".join(p.message for p in problems)
    assert "'when' must be a template string" in messages
    assert "'when' without 'then' or 'step'" in messages
    assert "edge data needs 'step'" in messages
    assert "needs 'step', 'then' or 'else'" in messages
    assert "target must be a step name" in messages
    assert "routing mode must be" in messages


def test_unknown_target_suggests_a_name() -> None:
    problems = invalid(wrap("- step: a\n  next: ned\n"))
    assert "(did you mean 'end'?)" in problems[0].message


# ------------------------------------------------------------------ workbook


WORKBOOK = """
workbook:
  - name: compute
    type: python
    desc: adds
    args: {x: 1, y: 2}
    retry: 5
    timeout: 10
    auth: base_cred
    save: {storage: event_log}
    code: |
      def main(x, y):
          return x + y
  - name: fetch
    type: http
    url: "http://h/{{ city }}"
"""


def test_workbook_step_resolution() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              type: workbook
              name: compute
              args: {y: 20, z: 3}
              timeout: 2m
              save: {storage: duckdb}
              next: b
            - step: b
              type: workbook
              task: fetch
              with: {city: Oslo}
              method: POST
              next: end
            """,
            WORKBOOK,
        )
    )
    assert warnings == []
    assert set(pb.workbook) == {"compute", "fetch"}
    assert pb.workbook["compute"]["type"] == "python"
    a = pb.step("a")
    assert (a.name, a.type, a.workbook) == ("a", "python", "compute")
    assert a.inputs == {"x": 1, "y": 20, "z": 3}
    assert a.spec == {"code": "def main(x, y):\n    return x + y\n"}
    assert a.timeout == 120.0 and a.save == {"storage": "duckdb"}
    assert a.retry == RetryPolicy(max_attempts=5) and a.auth == "base_cred" and a.desc == "adds"
    assert [x.target for x in a.next.arcs] == ["b"]
    b = pb.step("b")
    assert (b.type, b.workbook, b.inputs) == ("http", "fetch", {"city": "Oslo"})
    assert b.spec == {"url": "http://h/{{ city }}", "method": "POST"}


def test_workbook_as_mapping() -> None:
    pb, _ = load(
        wrap(
            "- step: a\n  type: workbook\n  name: hello\n  next: end\n",
            "workbook:\n  hello: {type: python, code: x}\n",
        )
    )
    assert pb.workbook["hello"] == {"name": "hello", "type": "python", "code": "x"}
    assert pb.step("a").type == "python"


def test_workbook_errors() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              type: workbook
              name: compot
              next: b
            - step: b
              type: workbook
              next: end
            """,
            WORKBOOK
            + "  - name: fetch\n    type: http\n  - name: notype\n  - {type: python}\n"
            + "  - name: wb\n    type: workbook\n",
        )
    )
    messages = [p.message for p in problems]
    assert "unknown workbook action 'compot' (did you mean 'compute'?)" in messages
    assert any("needs 'name'" in m for m in messages)
    assert "duplicate workbook action name 'fetch'" in messages
    assert "workbook action 'notype' needs a 'type'" in messages
    assert "workbook action needs a 'name'" in messages
    assert any("cannot itself be of type workbook" in m for m in messages)
    unknown = next(p for p in problems if "compot" in p.message)
    assert unknown.path == "workflow[1].name"


def test_workbook_action_problems_reported_once_at_the_action() -> None:
    problems = invalid(
        wrap(
            "- step: a\n  type: workbook\n  name: bad\n  next: b\n"
            "- step: b\n  type: workbook\n  name: bad\n  next: end\n",
            "workbook:\n  - name: bad\n    type: python\n    timeout: forever\n",
        )
    )
    assert len(problems) == 1
    assert problems[0].path == "workbook[0].timeout" and problems[0].line == 5


# ------------------------------------------------------------------ iterator


def test_iterator_normalised_task_and_task_step() -> None:
    pb, warnings = load(
        wrap(
            """
            - step: a
              type: iterator
              collection: "{{ workload.items }}"
              element: item
              parallel: true
              task:
                type: workbook
                name: compute
                with: {x: "{{ item }}"}
                retry: {max_attempts: 2, jitter: false}
                timeout: 500ms
              next: end
            """,
            WORKBOOK,
        )
    )
    assert warnings == []
    a = pb.step("a")
    assert a.type == "iterator"
    assert a.spec["mode"] == "async" and a.spec["concurrency"] == 16
    assert a.spec["continue_on_error"] is False and "parallel" not in a.spec
    task = a.spec["task"]
    assert task["type"] == "python" and task["workbook"] == "compute"
    assert task["args"] == {"x": "{{ item }}", "y": 2}
    assert task["timeout"] == 0.5 and task["retry"]["max_attempts"] == 2
    assert task["auth"] == "base_cred" and task["save"] == {"storage": "event_log"}
    inner = task_step(a)
    assert isinstance(inner, Step)
    assert (inner.name, inner.type, inner.workbook) == ("a", "python", "compute")
    assert inner.retry == RetryPolicy(max_attempts=2, jitter=False)
    assert inner.inputs == {"x": "{{ item }}", "y": 2} and inner.timeout == 0.5
    assert inner.spec == {"code": "def main(x, y):\n    return x + y\n"}


def test_iterator_sequential_defaults() -> None:
    pb, _ = load(
        wrap(
            """
            - step: a
              type: iterator
              collection: [1, 2]
              element: n
              task: {type: playbook, path: lib/child, args: {n: "{{ n }}"}}
              next: end
            """
        )
    )
    spec = pb.step("a").spec
    assert spec["mode"] == "sequential" and spec["concurrency"] == 1
    assert spec["task"] == {"type": "playbook", "path": "lib/child", "args": {"n": "{{ n }}"}}


def test_iterator_errors_have_paths() -> None:
    problems = invalid(
        wrap(
            """
            - step: a
              type: iterator
              element: 1x
              mode: parallelish
              concurrency: 0
              continue_on_error: maybe
              task: {code: x}
              next: b
            - step: b
              type: iterator
              collection: 5
              element: n
              next: c
            - step: c
              type: iterator
              collection: []
              element: n
              task: python
              parallel: false
              mode: async
              next: end
            """
        )
    )
    by_path = {p.path: p.message for p in problems}
    assert "collection" in by_path["workflow[1]"] or any(
        "needs 'collection'" in p.message for p in problems
    )
    assert "not an identifier" in by_path["workflow[1].element"]
    assert "mode" in by_path["workflow[1].mode"]
    assert "concurrency" in by_path["workflow[1].concurrency"]
    assert "continue_on_error" in by_path["workflow[1].continue_on_error"]
    assert "needs an action 'type'" in by_path["workflow[1].task"]
    assert "collection" in by_path["workflow[2].collection"]
    assert any(p.path == "workflow[2]" and "needs 'task'" in p.message for p in problems)
    assert "must be a mapping" in by_path["workflow[3].task"]
    assert "contradicts" in by_path["workflow[3].parallel"]


# ------------------------------------------------------------------ warnings, strict


def test_unknown_keys_warn_with_hints_and_fail_when_strict() -> None:
    text = wrap(
        """
        - step: a
          type: http
          url: http://x
          nxt: end
          retry: {max_attempt: 2}
          next:
            - step: end
              dta: {x: 1}
        """,
        "metadata_extra: 1\n",
    ).replace("metadata: {name: t}", "metadata: {name: t, verison: 2}")
    pb, warnings = load(text)
    messages = {p.path: p.message for p in warnings}
    assert all(p.severity == "warning" for p in warnings)
    assert "(did you mean 'next'?)" in messages["workflow[1].nxt"]
    assert "(did you mean 'max_attempts'?)" in messages["workflow[1].retry.max_attempt"]
    assert "(did you mean 'data'?)" in messages["workflow[1].next[0].dta"]
    assert "(did you mean 'version'?)" in messages["metadata.verison"]
    assert "metadata_extra" in messages
    assert messages["workflow[1].nxt"].startswith("unknown key 'nxt' in step 'a'")
    assert pb.step("a").spec["nxt"] == "end"
    with pytest.raises(PlaybookInvalid) as info:
        load(text, strict=True)
    assert len(info.value.problems) == len(warnings)
    assert all(p.severity == "error" for p in info.value.problems)


def test_action_fields_of_any_type_do_not_warn_but_router_fields_do() -> None:
    _, warnings = load(
        wrap(
            """
            - step: a
              type: postgres
              db_host: h
              db_name: d
              sql: select 1
              params: {x: 1}
              max_rows: 5
              next: b
            - step: b
              type: secrets
              provider: env
              name: X
              next: c
            - step: c
              code: "x = 1"
              next: end
            """
        )
    )
    assert [p.path for p in warnings] == ["workflow[3].code"]
    assert "no type" in warnings[0].message


def test_warnings_do_not_hide_errors() -> None:
    problems = invalid(wrap("- step: a\n  typo: 1\n  next: nowhere\n"))
    assert [p.severity for p in problems] == ["error"]

"""`replaybook schema`: the JSON Schema generated from the playbook model agrees with
the loader on every playbook we have.

A schema cannot catch every invalid playbook. Of the shared conformance cases it
rejects `invalid_missing_start` (the workflow must contain a `start` and an `end`
step); it cannot catch:
- `invalid_duplicate_step`: unique step names are a uniqueness constraint on one
  property across array items, which JSON Schema cannot state (`uniqueItems` compares
  whole items);
- `invalid_unknown_next_target`: a `next` target must name another step of the same
  document, a cross-reference JSON Schema has no way to express;
- `invalid_jinja_syntax`: template syntax is inside a string; only a Jinja parser tells;
- `invalid_yaml_syntax`: the file is not a document at all, so there is nothing to
  validate (the editor's YAML parser reports it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from replaybook.cli import app
from replaybook.errors import PlaybookInvalid
from replaybook.playbook.load import load_file, load_playbook
from replaybook.schema import check_in_sync, playbook_schema

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT.parent / "shared" / "spec" / "conformance" / "cases"
SCHEMA_CANNOT_CATCH = {
    "invalid_duplicate_step",
    "invalid_unknown_next_target",
    "invalid_jinja_syntax",
    "invalid_yaml_syntax",
}


def _playbooks() -> list[Path]:
    files = sorted((ROOT / "examples").glob("*.yaml"))
    files += sorted((ROOT / "examples" / "playbooks").glob("*.yaml"))
    files += sorted((ROOT / "tests" / "replay" / "playbooks").glob("*.yaml"))
    files += sorted(CASES.glob("*/playbook.yaml"))
    files += sorted(CASES.glob("*/children/*.yaml"))
    return files


def _validator() -> jsonschema.Draft202012Validator:
    schema = playbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


VALIDATOR = _validator()


def _errors(doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)
    ]


def _loader_accepts(path: Path) -> bool:
    try:
        load_file(path, strict=True)
    except PlaybookInvalid:
        return False
    return True


def test_the_schema_models_every_key_the_loader_knows() -> None:
    assert check_in_sync() == []


def test_there_are_playbooks_to_check() -> None:
    files = _playbooks()
    assert len(files) > 60
    assert any(p.parent.name == "invalid_missing_start" for p in files)


@pytest.mark.parametrize("path", _playbooks(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_schema_agrees_with_the_loader(path: Path) -> None:
    case = path.parent.name
    if case in SCHEMA_CANNOT_CATCH:
        assert not _loader_accepts(path)
        pytest.skip(f"{case}: not expressible in JSON Schema (see module docstring)")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if _loader_accepts(path):
        assert _errors(doc) == [], path
    else:
        assert _errors(doc), f"{path} is invalid but the schema accepts it"


BASE = """
metadata: {name: t}
workflow:
  - step: start
    next: work
  - step: work
%s
    next: end
  - step: end
"""


@pytest.mark.parametrize(
    "fields",
    [
        "    type: python\n    code: 'def main(): return 1'\n    retry: {max_attempts: 3}",
        "    type: http\n    url: http://x\n    timeout: 5s\n    retry: 2",
        "    type: duckdb\n    sql: select 1\n    args: {a: 1}",
        "    type: iterator\n    collection: '{{ [1, 2] }}'\n    element: x\n"
        "    mode: async\n    task: {type: python, code: 'def main(x): return x'}",
        "    type: my_plugin_type\n    anything: goes",
        "    next_mode: inclusive",
    ],
)
def test_valid_steps_validate(fields: str) -> None:
    text = BASE % fields
    if "my_plugin_type" not in text:
        load_playbook(text, strict=True)  # the loader agrees
    assert _errors(yaml.safe_load(text)) == []


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ("    type: python\n    cod: x", "typo in an action field"),
        ("    type: python\n    code: x\n    retry: {max_attempts: 0}", "retry < 1"),
        ("    type: http\n    url: x\n    timeout: soon", "timeout not a duration"),
        ("    type: iterator\n    element: x\n    task: {type: python}", "no collection"),
        (
            "    type: iterator\n    collection: []\n    element: 1x\n    task: {type: python}",
            "element not an identifier",
        ),
        ("    type: python\n    code: x\n    max_visits: 0", "max_visits < 1"),
        ("    type: duckdb\n    sql: select 1\n    next_mode: sometimes", "bad mode"),
        ("    type: router", "the control case: a router step is valid"),
    ],
)
def test_invalid_steps_are_rejected(fields: str, why: str) -> None:
    text = BASE % fields
    if "type: router" in text:  # routers are valid: the control case
        assert _errors(yaml.safe_load(text)) == []
        return
    with pytest.raises(PlaybookInvalid):
        load_playbook(text, strict=True)
    assert _errors(yaml.safe_load(text)), why


def test_a_workflow_without_end_is_rejected() -> None:
    doc = yaml.safe_load("metadata: {name: t}\nworkflow:\n  - step: start\n")
    assert _errors(doc)
    doc["workflow"].append({"step": "end"})
    assert _errors(doc) == []


def test_cli_prints_the_schema(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == playbook_schema()
    out = tmp_path / "playbook.schema.json"
    result = CliRunner().invoke(app, ["schema", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == playbook_schema()

"""A plugin package adds a step type through the `replaybook.actions` entry points,
without touching the engine: validated, run and recorded like a built-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = """
from typing import Any, ClassVar

class ShoutAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def run(self, spec: Any, inputs: Any, ctx: Any) -> Any:
        ctx.log("shouting")
        return {"text": str(spec["text"]).upper() + "!" * int(inputs.get("n", 1))}
"""

PLAYBOOK = """metadata: {name: plugin_demo}
workflow:
  - step: start
    next: loud
  - step: loud
    type: shout
    text: "hello {{ workload.who }}"
    args: {n: 2}
    next: end
  - step: end
    result: {said: "{{ loud.text }}"}
"""


def test_entry_point_plugin_adds_a_step_type(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "rb_shout-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "rb_shout.py").write_text(PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rb-shout\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[replaybook.actions]\nshout = rb_shout:ShoutAction\n")
    pb = tmp_path / "p.yaml"
    pb.write_text(PLAYBOOK)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    env["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    env["REPLAYBOOK_DB"] = str(tmp_path / "rb.db")
    cmd = [sys.executable, "-m", "replaybook", "run", str(pb), "--json", "--set", "who=you"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["result"] == {"said": "HELLO YOU!!"}
    # Without the plugin on the path the same playbook is invalid: the type is unknown.
    env["PYTHONPATH"] = ""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "shout" in json.loads(p.stdout)["errors"][0]["message"]

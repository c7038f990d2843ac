"""Run the shared conformance suite and hold it to `conformance-pending.txt`.

Fails when a case fails that is not listed as pending (with the issue that brings
it), and when a listed case now passes (so the list only shrinks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT.parent / "shared" / "spec" / "conformance" / "run.py"
PENDING = ROOT / "conformance-pending.txt"


def pending() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in PENDING.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def main() -> int:
    if not RUNNER.exists():
        print(f"no conformance suite at {RUNNER}; skipped")
        return 0
    env = dict(os.environ)
    env.setdefault("REPLAYBOOK_CMD", f"{sys.executable} -m replaybook")
    args = [sys.executable, str(RUNNER), *sys.argv[1:]]
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    results = {
        name: verdict for verdict, name in re.findall(r"^(PASS|FAIL|SKIP) (\S+)", proc.stdout, re.M)
    }
    if not results:
        print("conformance: the runner reported no cases")
        return 1
    expected = pending()
    bad = [n for n, v in results.items() if v == "FAIL" and n not in expected]
    fixed = [n for n, v in results.items() if v == "PASS" and n in expected]
    for n in bad:
        print(f"conformance: {n} fails and is not listed as pending")
    for n in fixed:
        print(f"conformance: {n} passes now; remove it from {PENDING.name}")
    print(
        f"conformance: {sum(v == 'PASS' for v in results.values())} passed, "
        f"{sum(v == 'FAIL' for v in results.values())} failed ({len(expected)} listed pending)"
    )
    return 1 if bad or fixed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Record golden event histories for the replay tests.

    python tests/replay/record.py            # (re)record every playbook in playbooks/

Each golden file holds the playbook's name, the payload, the event log (without ids
and timestamps) and the outcome. Re-record only when a change to the engine's logic
is intended, and bump LOGIC_VERSION when old histories would fold differently.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store import open_store

HERE = Path(__file__).parent
PAYLOADS = {"branch_exclusive_x10": {"x": 10}}


def record(pb_file: Path, tmp: Path) -> dict[str, object]:
    store = open_store(f"sqlite:///{tmp / (pb_file.stem + '.db')}")
    with EmbeddedRunner(store, tmp, concurrency=4) as runner:
        pb, version = runner.register_file(pb_file)
        payload = PAYLOADS.get(pb_file.stem, {})
        out = runner.run(pb.path, version, payload)
        events = [
            {k: v for k, v in e.as_dict().items() if k not in ("id", "at", "execution_id")}
            for e in store.read_events(out.execution_id)
        ]
    store.close()
    outcome = out.as_dict()
    outcome.pop("execution_id")
    return {"playbook": pb_file.name, "payload": payload, "events": events, "outcome": outcome}


def main() -> None:
    names = sys.argv[1:]
    with tempfile.TemporaryDirectory() as d:
        for f in sorted((HERE / "playbooks").glob("*.yaml")):
            if names and f.stem not in names:
                continue
            golden = record(f, Path(d))
            (HERE / "golden" / f"{f.stem}.json").write_text(
                json.dumps(golden, indent=1, ensure_ascii=False) + "\n"
            )
            print(f"recorded {f.stem}: {len(golden['events'])} events")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

"""Iterator throughput and memory on the embedded engine.

Runs an async iterator of trivial `python` items (each returns its element) over
collections of 1,000, 10,000 and 100,000 items, each size in a fresh process with a
fresh SQLite store, and prints items per second, microseconds per item and the
engine process's peak RSS. Per-item time should stay flat as the collection grows
(no per-item cost that grows with the items already done); peak RSS should stay
well under 300 MB at 100,000 items. Figures are from one run on this machine:
compare them as ratios, not absolutes.

    python bench/iterator_items.py [--sizes 1000,10000,100000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store import open_store


def iterator_yaml(n: int, concurrency: int) -> str:
    return f"""apiVersion: noetl.io/v1
kind: Playbook
metadata: {{name: bench_iter_{n}, path: bench/iter_{n}}}
workload: {{n: {n}}}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: "{{{{ range(workload.n) | list }}}}"
    element: x
    mode: async
    concurrency: {concurrency}
    task:
      type: python
      args: {{x: "{{{{ x }}}}"}}
      code: |
        def main(x):
            return x
    next: end
  - step: end
    result: "{{{{ each | length }}}}"
"""


def measure(n: int, concurrency: int) -> dict[str, float]:
    """Run one size in this process (called in a fresh child process)."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = open_store(f"sqlite:///{tmp / 'bench.db'}")
        pb_file = tmp / "iter.yaml"
        pb_file.write_text(iterator_yaml(n, concurrency))
        warm_file = tmp / "warm.yaml"
        warm_file.write_text(
            iterator_yaml(concurrency, concurrency).replace(f"iter_{concurrency}", "warm")
        )
        with EmbeddedRunner(store, tmp, concurrency=concurrency) as runner:
            runner.start_workers()
            wpb, wv = runner.register_file(warm_file)
            runner.run(wpb.path, wv)  # start the python processes outside the timing
            pb, version = runner.register_file(pb_file)
            t0 = time.perf_counter()
            out = runner.run(pb.path, version)
            took = time.perf_counter() - t0
            assert out.status == "completed" and out.result == n, out
        store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"items": n, "seconds": took, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.concurrency)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--concurrency", str(args.concurrency)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{n:>7} items: {r['seconds']:7.2f} s  {n / r['seconds']:7.0f} items/s  "
            f"{r['seconds'] / n * 1e6:6.0f} us/item  peak RSS {r['peak_rss_mb']:5.0f} MB",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    ratio = (last["seconds"] / last["items"]) / (first["seconds"] / first["items"])
    print(f"per-item time, {last['items']:,} vs {first['items']:,} items: x{ratio:.2f}")


if __name__ == "__main__":
    main()

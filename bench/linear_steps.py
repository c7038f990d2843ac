"""Per-step overhead of the embedded engine on a linear playbook of trivial steps.

Runs an N-step chain (default 1,000) of `python` steps that return a number, in
process with a fresh SQLite store, and prints wall time per step. Also runs the same
chain of routers (no action at all) so the engine's own cost can be told apart from
the python process round trip. Figures are from one run on this machine; compare
them as ratios, not absolutes.

    python bench/linear_steps.py [--steps 1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from replaybook.runtime.embedded import EmbeddedRunner
from replaybook.store import open_store


def chain_yaml(n: int, kind: str) -> str:
    lines = [
        "apiVersion: noetl.io/v1",
        "kind: Playbook",
        f"metadata: {{name: bench_{kind}_{n}, path: bench/{kind}_{n}}}",
        "workload: {}",
        "workflow:",
        "  - step: start",
        "    next: s0",
    ]
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        lines.append(f"  - step: s{i}")
        if kind == "python":
            lines += [
                "    type: python",
                f"    args: {{i: {i}}}",
                "    code: |",
                "      def main(i):",
                "          return i + 1",
            ]
        else:
            lines.append(f"    args: {{i: {i}}}")
        lines.append(f"    next: {nxt}")
    lines += ["  - step: end"]
    return "\n".join(lines) + "\n"


def run_chain(n: int, kind: str, tmp: Path, concurrency: int) -> float:
    store = open_store(f"sqlite:///{tmp / f'{kind}.db'}")
    pb_file = tmp / f"{kind}.yaml"
    pb_file.write_text(chain_yaml(n, kind))
    with EmbeddedRunner(store, tmp, concurrency=concurrency) as runner:
        pb, version = runner.register_file(pb_file)
        runner.start_workers()
        # Warm the python process pool so its start-up is not counted per step.
        if kind == "python":
            warm = tmp / "warm.yaml"
            warm.write_text(
                chain_yaml(2, "python")
                .replace("bench_python_2", "warm")
                .replace("bench/python_2", "warm")
            )
            wpb, wv = runner.register_file(warm)
            runner.run(wpb.path, wv)
        t0 = time.perf_counter()
        out = runner.run(pb.path, version)
        took = time.perf_counter() - t0
        assert out.status == "completed", out
    store.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
        routers = run_chain(args.steps, "router", tmp, args.concurrency)
        python = run_chain(args.steps, "python", tmp, args.concurrency)
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    n = args.steps
    print(f"linear chain of {n} steps, embedded (SQLite WAL), concurrency {args.concurrency}")
    print(f"  router steps : {routers:.3f} s total, {routers / n * 1000:.3f} ms per step")
    print(f"  python steps : {python:.3f} s total, {python / n * 1000:.3f} ms per step")
    print(f"  python/router: {python / routers:.2f}x")
    target = 1.0
    verdict = "within" if python / n * 1000 <= target else "ABOVE"
    print(f"  target <= {target} ms per python step: {verdict} target")


if __name__ == "__main__":
    main()

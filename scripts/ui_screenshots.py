"""Screenshots of every page of the web UI, with demo data, into docs/ui/.

Starts `replaybook server --workers 4` on a fresh SQLite store, registers the example
pipeline and its sub-playbook, runs it to the end, adds a failed execution, a running
one and a schedule, then opens each page in headless Chromium at 1280 px wide.

    .venv/bin/python scripts/ui_screenshots.py [--out docs/ui] [--chromium /usr/bin/chromium]

Run from the repository root (the example's data paths are relative to it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from replaybook.client import ApiClient
from replaybook.server.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[1]

FLAKY_LOAD = """
metadata: {name: orders_ingest, path: demo/orders_ingest, description: Nightly order import}
workload: {day: "2024-05-01", source: /data/orders}
workflow:
  - step: start
    next: [fetch_orders, fetch_customers]
  - step: fetch_orders
    type: python
    args: {day: "{{ workload.day }}", source: "{{ workload.source }}"}
    code: |
      def main(day, source):
          print(f"reading {source}/{day}.csv")
          raise FileNotFoundError(f"{source}/{day}.csv does not exist yet")
    retry: {max_attempts: 2, initial_delay: 0.2, jitter: false}
    next: join_orders
  - step: fetch_customers
    type: python
    code: |
      def main():
          print("customers: 1,204 rows")
          return {"rows": 1204}
    next: join_orders
  - step: join_orders
    type: python
    args: {customers: "{{ fetch_customers }}"}
    code: |
      def main(customers):
          return {"joined": customers["rows"]}
    next: end
  - step: end
"""

LONG_BACKFILL = """
metadata: {name: warehouse_backfill, path: demo/warehouse_backfill}
workload: {days: 30}
workflow:
  - step: start
    next: plan
  - step: plan
    type: python
    args: {days: "{{ workload.days }}"}
    code: |
      def main(days):
          return {"partitions": [f"2024-04-{d:02d}" for d in range(1, days + 1)]}
    next: backfill
  - step: backfill
    type: iterator
    collection: "{{ plan.partitions }}"
    element: day
    mode: async
    concurrency: 2
    task:
      type: python
      args: {day: "{{ day }}"}
      code: |
        import time
        def main(day):
            time.sleep(1.5)
            print(f"loaded partition {day}")
            return {"day": day, "rows": 1000 + len(day)}
    next: check
  - step: check
    type: python
    args: {loaded: "{{ backfill }}"}
    code: |
      def main(loaded):
          return {"partitions": len(loaded)}
    next:
      - when: "{{ check.partitions < 30 }}"
        then: [plan]
      - else: [end]
  - step: end
"""


def seed(api: ApiClient) -> dict[str, str]:
    for f in ("examples/playbooks/score_airport_days.yaml", "examples/nyc_weather_delays.yaml"):
        api.register((ROOT / f).read_text(), file=f)
    api.register(FLAKY_LOAD)
    api.register(LONG_BACKFILL)
    nyc = api.start("examples/nyc_weather_delays")
    failed = api.start("demo/orders_ingest")
    api.execution(nyc, wait=60)
    api.execution(failed, wait=60)
    for _ in range(3):  # some history for the list
        api.execution(api.start("demo/orders_ingest", payload={"day": "2024-04-30"}), wait=30)
    running = api.start("demo/warehouse_backfill")
    api.request(
        "POST",
        "/api/schedules",
        json_body={
            "playbook": "examples/nyc_weather_delays",
            "cron": "0 6 * * *",
            "timezone": "Europe/Berlin",
            "id": "nyc-daily",
        },
    )
    api.request(
        "POST",
        "/api/schedules",
        json_body={"playbook": "demo/orders_ingest", "cron": "*/15 * * * *", "id": "orders"},
    )
    api.request("POST", "/api/schedules/orders/pause")
    return {"nyc": nyc, "failed": failed, "running": running}


def shoot(url: str, ids: dict[str, str], out: Path, chromium: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=["--headless=new", "--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def snap(name: str, path: str, full: bool = True) -> None:
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{name}.png"), full_page=full)
            print(f"wrote {out / name}.png")

        snap("catalog", "/ui/catalog")
        snap("playbook", "/ui/catalog/examples/nyc_weather_delays")
        snap("executions", "/ui/executions")
        page.goto(f"{url}/ui/executions/{ids['nyc']}#step=score_days")
        expect(page.locator("#step-result")).to_be_visible()
        page.screenshot(path=str(out / "execution.png"), full_page=True)
        page.goto(f"{url}/ui/executions/{ids['failed']}#step=fetch_orders")
        expect(page.locator("#step-error")).to_be_visible()
        page.screenshot(path=str(out / "execution_failed.png"), full_page=False)
        page.goto(f"{url}/ui/executions/{ids['running']}#step=backfill")
        expect(page.locator(".node.st-running")).to_have_count(1)
        page.wait_for_timeout(3000)  # let a few items finish, for the progress shown
        page.screenshot(path=str(out / "execution_running.png"), full_page=False)
        snap("workers", "/ui/workers")
        snap("schedules", "/ui/schedules")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "ui"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env["REPLAYBOOK_DATA_DIR"] = str(Path(tmp) / "data")
        env.pop("REPLAYBOOK_API_TOKEN", None)
        db = f"sqlite:///{Path(tmp) / 'rb.db'}"
        os.chdir(ROOT)
        # The server's own slots, and one remote worker for the workers page.
        cluster = LocalCluster(
            db,
            workers=1,
            server_workers=4,
            worker_concurrency=4,
            env=env,
            worker_args=["--pool", "gpu"],
        )
        with cluster, ApiClient(cluster.url) as api:
            ids = seed(api)
            shoot(cluster.url, ids, Path(args.out), args.chromium)
            api.cancel(ids["running"])


if __name__ == "__main__":
    main()

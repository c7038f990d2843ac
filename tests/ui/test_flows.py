"""The UI in a real browser against a real server: start an execution from the
catalog form (a bad payload is refused first), watch its graph reach completed
without a reload, open a step and see its result, cancel a long-running execution,
resume a failed one once what it needs exists, and never see a secret's value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

GATED = """
metadata: {name: gated, path: ui/gated}
workload: {n: 1, gate: ""}
workflow:
  - step: start
    next: [wait_gate, side]
  - step: wait_gate
    type: python
    args: {gate: "{{ workload.gate }}"}
    code: |
      import os, time
      def main(gate):
          # Held until the test opens the gate, so the page sees it running first.
          while gate and not os.path.exists(gate):
              time.sleep(0.05)
          return {"opened": True}
    next: double
  - step: side
    type: python
    code: |
      def main():
          return "side done"
    next: double
  - step: double
    type: python
    args: {n: "{{ workload.n }}"}
    code: |
      def main(n):
          print("doubling", n)
          return {"doubled": n * 2}
    next: end
  - step: end
    result: {value: "{{ double.doubled }}"}
"""

SLEEPY = """
metadata: {name: sleepy, path: ui/sleepy}
workflow:
  - step: start
    next: nap
  - step: nap
    type: python
    code: |
      import time
      def main():
          time.sleep(30)
    next: end
  - step: end
"""

NEEDS_FILE = """
metadata: {name: needs_file, path: ui/needs_file}
workload: {path: ""}
workflow:
  - step: start
    next: read
  - step: read
    type: python
    args: {path: "{{ workload.path }}"}
    code: |
      def main(path):
          with open(path) as f:
              return {"text": f.read().strip()}
    next: end
  - step: end
    result: "{{ read.text }}"
"""

SECRET = """
metadata: {name: secretive, path: ui/secretive}
workflow:
  - step: start
    next: token
  - step: token
    type: secrets
    provider: env
    name: MY_TOKEN
    next: use
  - step: use
    type: python
    args: {token: "{{ token.value }}"}
    code: |
      def main(token):
          print("using", token)
          return {"echo": token, "length": len(token)}
    next: end
  - step: end
"""


def node(page: Any, step: str) -> Any:
    return page.locator(f'#graph .node[data-step="{step}"]')


def test_start_from_the_catalog_and_watch_it_complete_live(
    server: Any, page: Any, tmp_path: Path
) -> None:
    server.register(GATED)
    gate = tmp_path / "gate"
    page.goto(f"{server.url}/ui/catalog")
    page.get_by_role("link", name="ui/gated").click()
    expect(page.locator("h1")).to_contain_text("gated")

    payload = page.locator("#payload")
    payload.fill('{"n": 21, "gate": ')
    page.locator("#start-button").click()
    expect(page.locator("#payload-error")).to_contain_text("not valid JSON")
    expect(payload).to_have_class(re.compile("invalid"))
    payload.fill("[1, 2]")
    page.locator("#start-button").click()
    expect(page.locator("#payload-error")).to_contain_text("must be a JSON object")
    assert "/ui/catalog/" in page.url  # nothing was started

    payload.fill(f'{{"n": 21, "gate": "{gate}"}}')
    page.locator("#start-button").click()
    page.wait_for_url(re.compile(r"/ui/executions/[0-9a-f]{32}$"))
    page.evaluate("window.__sameDocument = true")
    expect(node(page, "wait_gate")).to_have_class(re.compile("st-running"))
    expect(node(page, "side")).to_have_class(re.compile("st-completed"))
    expect(node(page, "double")).to_have_class(re.compile("st-pending"))
    expect(page.locator("#exec-status .badge")).to_have_text("running")

    gate.write_text("open")
    expect(page.locator("#exec-status .badge")).to_have_text("completed")
    for step in ("start", "wait_gate", "side", "double", "end"):
        expect(node(page, step)).to_have_class(re.compile("st-completed"))
    expect(page.locator('#steps-table tr[data-step="double"] .badge')).to_have_text("completed")
    expect(page.locator('.tl-row[data-step="double"] .tl-bar.st-completed')).to_have_count(1)
    expect(page.locator("#cancel-button")).to_be_hidden()
    assert page.evaluate("window.__sameDocument") is True  # no reload happened

    node(page, "double").click()
    expect(page.locator("#step-result")).to_contain_text('"doubled": 42')
    expect(page.locator("#step-inputs")).to_contain_text('"n": 21')
    expect(page.locator("#step-logs")).to_contain_text("doubling 21")
    assert "#step=double" in page.url
    page.locator("[data-close-panel]").click()
    expect(page.locator("#execution-result")).to_contain_text('"value": 42')


def test_cancel_a_long_running_execution(server: Any, page: Any) -> None:
    entry = server.register(SLEEPY)
    eid = server.api.start(entry["path"])
    page.goto(f"{server.url}/ui/executions/{eid}")
    expect(node(page, "nap")).to_have_class(re.compile("st-running"))
    page.locator("#cancel-button").click()
    expect(page.locator("#exec-status .badge")).to_have_text("cancelled")
    expect(node(page, "nap")).to_have_class(re.compile("st-cancelled"))
    expect(page.locator("#resume-button")).to_be_visible()
    expect(page.locator("#cancel-button")).to_be_hidden()
    assert server.api.execution(eid)["status"] == "cancelled"


def test_resume_a_failed_execution_after_fixing_its_input(
    server: Any, page: Any, tmp_path: Path
) -> None:
    entry = server.register(NEEDS_FILE)
    needed = tmp_path / "input.txt"
    eid = server.api.start(entry["path"], payload={"path": str(needed)})
    assert server.api.execution(eid, wait=30)["status"] == "failed"
    page.goto(f"{server.url}/ui/executions/{eid}#step=read")
    expect(page.locator("#exec-status .badge")).to_have_text("failed")
    expect(node(page, "read")).to_have_class(re.compile("st-failed"))
    expect(page.locator("#step-error")).to_contain_text("No such file")

    needed.write_text("fixed it\n")
    page.locator("#resume-button").click()
    expect(page.locator("#exec-status .badge")).to_have_text("completed")
    expect(node(page, "read")).to_have_class(re.compile("st-completed"))
    expect(page.locator("#step-result")).to_contain_text("fixed it")
    expect(page.locator("#resume-button")).to_be_hidden()
    assert server.api.execution(eid)["result"] == "fixed it"


def test_secrets_never_reach_a_page(server: Any, page: Any) -> None:
    secret = "tok-5f1e9a-very-secret-value"
    entry = server.register(SECRET)
    eid = server.api.start(entry["path"])
    out = server.api.execution(eid, wait=30)
    assert out["status"] == "completed"
    assert out["result"] == {"use": {"echo": "***", "length": len(secret)}}
    urls = [f"/ui/executions/{eid}", f"/ui/executions/{eid}/panel", "/ui/executions"]
    urls += [f"/ui/executions/{eid}/panel?step={s}" for s in ("start", "token", "use", "end")]
    for url in urls:
        html = httpx.get(server.url + url, trust_env=False).text
        assert secret not in html, url
        assert secret[4:12] not in html, url
    page.goto(f"{server.url}/ui/executions/{eid}#step=use")
    expect(page.locator("#step-logs")).to_contain_text("using ***")
    expect(page.locator("#step-inputs")).to_contain_text('"token": "***"')
    assert secret not in page.content()


def test_sign_in_with_the_api_token(browser: Any, tmp_path: Path, env_for: Any) -> None:
    """With REPLAYBOOK_API_TOKEN set, a page load goes to the login page; the token
    sets a cookie with which pages, the stream and the page's API calls work."""
    from replaybook.client import ApiClient
    from replaybook.server.cluster import LocalCluster

    token = "ui-test-token-0123456789"
    env = env_for(tmp_path, REPLAYBOOK_API_TOKEN=token)
    cluster = LocalCluster(f"sqlite:///{tmp_path / 'rb.db'}", workers=0, server_workers=1, env=env)
    with cluster, ApiClient(cluster.url, token=token) as api:
        api.register(GATED)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{cluster.url}/ui/catalog/ui/gated")
        page.wait_for_url(re.compile(r"/ui/login\?next="))
        page.locator("#token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".form-error")).to_contain_text("not the server's API token")
        page.locator("#token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/ui/catalog/ui/gated$"))
        cookie = next(c for c in context.cookies() if c["name"] == "replaybook_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert token not in cookie["value"]
        page.locator("#start-button").click()  # the page's own API call, by cookie
        page.wait_for_url(re.compile(r"/ui/executions/[0-9a-f]{32}$"))
        expect(page.locator("#exec-status .badge")).to_have_text("completed")
        page.get_by_role("link", name="Sign out").click()
        page.wait_for_url(re.compile(r"/ui/login"))
        page.goto(f"{cluster.url}/ui/executions")
        page.wait_for_url(re.compile(r"/ui/login\?next=%2Fui%2Fexecutions"))
        context.close()


def test_pause_resume_and_delete_a_schedule(server: Any, page: Any) -> None:
    server.register(SLEEPY)
    body = {"playbook": "ui/sleepy", "cron": "30 4 * * 1", "timezone": "Europe/Berlin"}
    server.api.request("POST", "/api/schedules", json_body={**body, "id": "weekly"})
    page.goto(f"{server.url}/ui/schedules")
    row = page.locator('tr[data-schedule="weekly"]')
    expect(row).to_contain_text("30 4 * * 1")
    expect(row).to_contain_text("Europe/Berlin")
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge")).to_have_text("paused")
    assert server.api.request("GET", "/api/schedules/weekly")["paused"] is True
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Confirm delete").click()
    expect(row).to_have_count(0)
    assert all(s["id"] != "weekly" for s in server.api.request("GET", "/api/schedules"))


def test_add_a_schedule_from_the_playbook_page(server: Any, page: Any) -> None:
    server.register(SLEEPY)
    page.goto(f"{server.url}/ui/catalog/ui/sleepy")
    form = page.locator("#schedule-form")
    form.locator("#schedule-cron").fill("0 25 * * *")  # no hour 25: the server says so
    form.get_by_role("button", name="Add schedule").click()
    expect(form.locator("#schedule-error")).to_contain_text("Could not add")
    assert server.api.request("GET", "/api/schedules") == []
    form.locator("#schedule-cron").fill("15 7 * * 1-5")
    form.locator("#schedule-tz").fill("Europe/Berlin")
    form.locator("#schedule-payload").fill('{"day": "monday"}')
    form.locator("#schedule-pin").check()
    form.get_by_role("button", name="Add schedule").click()
    page.wait_for_url(re.compile(r"/ui/schedules$"))
    (made,) = server.api.request("GET", "/api/schedules")
    assert (made["cron"], made["timezone"], made["payload"]) == (
        "15 7 * * 1-5",
        "Europe/Berlin",
        {"day": "monday"},
    )
    assert made["playbook_version"] == 1
    expect(page.locator(f'tr[data-schedule="{made["id"]}"]')).to_contain_text("15 7 * * 1-5")

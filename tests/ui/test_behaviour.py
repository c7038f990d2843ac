"""The page script's behaviour in a real browser against a real server: payloads
are sent exactly as typed, lists and execution pages stay live (and say when they
lost the server), wide graphs fit their box, the login page shows no navigation."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

ECHO = """
metadata: {name: echo, path: ui/echo}
workflow:
  - step: start
    next: end
  - step: end
    result: "{{ workload.msg }}"
"""


def test_payload_is_sent_as_typed(server: Any, page: Any) -> None:
    server.register(ECHO)
    page.goto(f"{server.url}/ui/catalog/ui/echo")
    payload = page.locator("#payload")
    payload.fill('{"msg": 1e400}')  # JSON.parse says Infinity; the server refuses it
    page.locator("#start-button").click()
    expect(page.locator("#payload-error")).to_contain_text("Could not start")
    expect(page.locator("#payload-error")).to_contain_text("not JSON data")
    assert "/ui/catalog/" in page.url
    payload.fill('{"msg": 12345678901234567890}')
    page.locator("#start-button").click()
    page.wait_for_url(re.compile(r"/ui/executions/[0-9a-f]{32}$"))
    eid = page.url.rsplit("/", 1)[1]
    assert server.api.execution(eid, wait=30)["result"] == 12345678901234567890

    page.goto(f"{server.url}/ui/catalog/ui/echo")
    form = page.locator("#schedule-form")
    form.locator("#schedule-payload").fill('{"msg": 1e400}')
    form.get_by_role("button", name="Add schedule").click()
    expect(form.locator("#schedule-error")).to_contain_text("not JSON data")
    form.locator("#schedule-payload").fill('{"msg": 12345678901234567890}')
    form.get_by_role("button", name="Add schedule").click()
    page.wait_for_url(re.compile(r"/ui/schedules$"))
    made = [
        s for s in server.api.request("GET", "/api/schedules") if s["playbook_path"] == "ui/echo"
    ]
    assert [s["payload"] for s in made] == [{"msg": 12345678901234567890}]

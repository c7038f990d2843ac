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


GATE = """
metadata: {name: gate, path: ui/gate}
workload: {gate: ""}
workflow:
  - step: start
    next: hold
  - step: hold
    type: python
    args: {gate: "{{ workload.gate }}"}
    code: |
      import os, time
      def main(gate):
          while not os.path.exists(gate):
              time.sleep(0.05)
          return "open"
    next: end
  - step: end
"""


def test_executions_list_follows_running_rows(server: Any, page: Any, tmp_path: Any) -> None:
    server.register(GATE)
    gate = tmp_path / "gate"
    eid = server.api.start("ui/gate", payload={"gate": str(gate)})
    polled: list[str] = []
    page.on("request", lambda r: polled.append(r.url) if "/api/executions/" in r.url else None)
    page.goto(f"{server.url}/ui/executions?playbook=ui/gate")
    row = page.locator(f'tr[data-execution="{eid}"]')
    expect(row.locator(".badge")).to_have_text("running")
    expect(row.locator("[data-since]")).to_have_count(1)  # the running clock
    page.wait_for_function("window.replaybookListPolling === true")
    gate.write_text("open")
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator("[data-since]")).to_have_count(0)  # the clock stopped
    expect(row.locator(".cell-duration")).to_have_text(re.compile(r"\d"))
    page.wait_for_function("window.replaybookListPolling === false")  # none left to follow
    assert polled and all(u.endswith(f"/api/executions/{eid}") for u in polled)


def test_execution_page_says_reconnecting_while_the_server_is_away(
    browser: Any, tmp_path: Any, env_for: Any
) -> None:
    import signal

    from replaybook.client import ApiClient
    from replaybook.server.cluster import LocalCluster

    gate = tmp_path / "gate"
    env = env_for(tmp_path)
    cluster = LocalCluster(f"sqlite:///{tmp_path / 'rb.db'}", workers=0, server_workers=1, env=env)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        with cluster, ApiClient(cluster.url) as api:
            api.register(GATE)
            eid = api.start("ui/gate", payload={"gate": str(gate)})
            page = context.new_page()
            page.goto(f"{cluster.url}/ui/executions/{eid}")
            live = page.locator("#live-indicator")
            expect(live).to_have_text("live")
            expect(page.locator("#steps-reached")).to_have_text("2 of 3 reached")
            cluster.stop_server(0, signal.SIGKILL)
            expect(live).to_have_text("reconnecting…")
            expect(live).to_have_attribute("data-state", "reconnecting")
            expect(page.locator("#exec-status .badge")).to_have_text("running")
            cluster.start_server(0)
            expect(live).to_have_text("live")
            expect(live).to_have_attribute("data-state", "live")
    finally:
        gate.write_text("open")
        context.close()


def test_steps_reached_counter_is_live(server: Any, page: Any, tmp_path: Any) -> None:
    server.register(GATE)
    gate = tmp_path / "gate"
    eid = server.api.start("ui/gate", payload={"gate": str(gate)})
    page.goto(f"{server.url}/ui/executions/{eid}")
    expect(page.locator('#graph .node[data-step="hold"]')).to_have_class(re.compile("st-running"))
    expect(page.locator("#steps-reached")).to_have_text("2 of 3 reached")
    expect(page.locator('#steps-table tr[data-step="end"] .badge')).to_have_text("not reached")
    gate.write_text("open")
    expect(page.locator("#exec-status .badge")).to_have_text("completed")
    expect(page.locator("#steps-reached")).to_have_text("3 of 3 reached")
    expect(page.locator("#live-indicator")).to_be_hidden()
    last_seq = server.api.execution(eid)["last_seq"]
    expect(page.locator("#event-count")).to_have_text(str(last_seq))  # counted live


def wide_playbook(n: int = 31) -> str:
    names = [f"branch_{i:02d}" for i in range(n)]
    steps = [f"  - step: start\n    next: [{', '.join(names)}]"]
    steps += [f"  - step: {name}\n    next: join" for name in names]
    steps += ["  - step: join\n    next: end", "  - step: end"]
    return "metadata: {name: wide, path: ui/wide}\nworkflow:\n" + "\n".join(steps) + "\n"


def inside(page: Any, selector: str, box: str) -> bool:
    """Whether the element's box lies within the scroll box horizontally."""
    return bool(
        page.evaluate(
            """([sel, box]) => {
                const a = document.querySelector(sel).getBoundingClientRect();
                const b = document.querySelector(box).getBoundingClientRect();
                return a.left >= b.left - 1 && a.right <= b.right + 1;
            }""",
            [selector, box],
        )
    )


def test_a_wide_graph_is_fitted_and_can_be_shown_full_size_centred(server: Any, page: Any) -> None:
    server.register(wide_playbook())
    eid = server.api.start("ui/wide")
    assert server.api.execution(eid, wait=30)["status"] == "completed"
    page.goto(f"{server.url}/ui/executions/{eid}")
    fit = page.locator('[data-fit-for="graph"]')
    expect(fit).to_be_visible()
    expect(fit).to_have_attribute("aria-pressed", "true")  # far wider than the box
    expect(page.locator("#graph")).to_have_class(re.compile(r"\bfit\b"))
    for step in ("start", "join", "end", "branch_00", "branch_30"):
        assert inside(page, f'#graph .node[data-step="{step}"]', "#graph"), step
    assert page.evaluate("document.querySelector('#graph').scrollWidth") <= page.evaluate(
        "document.querySelector('#graph').clientWidth"
    )

    fit.click()
    expect(fit).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#graph")).not_to_have_class(re.compile(r"\bfit\b"))
    scroll = page.evaluate(
        "(() => { const w = document.querySelector('#graph');"
        " return [w.scrollLeft, w.scrollWidth, w.clientWidth]; })()"
    )
    left, width, client = scroll
    assert width > 3 * client
    assert abs(left - (width - client) / 2) <= 2  # centred: start, join and end in view
    for step in ("start", "join", "end"):
        assert inside(page, f'#graph .node[data-step="{step}"]', "#graph"), step


def test_a_narrow_graph_has_no_fit_button(server: Any, page: Any) -> None:
    server.register(ECHO)
    page.goto(f"{server.url}/ui/catalog/ui/echo")
    expect(page.locator("#playbook-graph svg.graph")).to_be_visible()
    expect(page.locator('[data-fit-for="playbook-graph"]')).to_be_hidden()


GATED_ITEMS = """
metadata: {name: gated_items, path: ui/gated_items}
workload: {gate: ""}
workflow:
  - step: start
    next: items
  - step: items
    type: iterator
    collection: "{{ range(6) | list }}"
    element: x
    task:
      type: python
      args: {x: "{{ x }}", gate: "{{ workload.gate }}"}
      code: |
        import os, time
        def main(x, gate):
            while not os.path.exists(gate):
                time.sleep(0.05)
            if x % 3 == 0:
                raise ValueError(f"item {x}")
            return x
    continue_on_error: true
    next: end
  - step: end
"""


def test_iterator_node_counts_failed_items_live(server: Any, page: Any, tmp_path: Any) -> None:
    server.register(GATED_ITEMS)
    gate = tmp_path / "gate"
    eid = server.api.start("ui/gated_items", payload={"gate": str(gate)})
    page.goto(f"{server.url}/ui/executions/{eid}")
    items = page.locator('#graph .node[data-step="items"]')
    expect(items).to_have_class(re.compile("st-running"))
    expect(items).not_to_have_class(re.compile("items-failed"))
    gate.write_text("open")
    expect(page.locator("#exec-status .badge")).to_have_text("completed")
    expect(items.locator(".prog")).to_have_text("6/6 · 2 failed")
    expect(items).to_have_class(re.compile(r"\bitems-failed\b"))


def test_pages_fit_1024_and_1280_px_and_cron_stays_on_one_line(server: Any, browser: Any) -> None:
    server.register(GATE)
    server.register(ECHO)
    eid = server.api.start("ui/echo", payload={"msg": "hi"})
    server.api.execution(eid, wait=30)
    for sid, cron, tz in (
        ("weekdays-at-half-past-four-long-id", "30 4 * * 1-5", "America/Argentina/Buenos_Aires"),
        ("quarter", "*/15 * * * *", "UTC"),
    ):
        body = {"playbook": "ui/gate", "cron": cron, "timezone": tz, "id": sid}
        server.api.request("POST", "/api/schedules", json_body=body)
    urls = ["/ui/catalog", "/ui/catalog/ui/echo", "/ui/executions", f"/ui/executions/{eid}"]
    urls += ["/ui/workers", "/ui/schedules"]
    for width in (1024, 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        for url in urls:
            page.goto(server.url + url)
            expect(page.locator("main")).to_be_visible()
            scroll, inner = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert scroll <= inner, (width, url, scroll)  # nothing runs past the header
        page.goto(server.url + "/ui/schedules")
        for code in page.locator("#schedules-table code").all():
            assert code.evaluate("c => c.getClientRects().length") == 1, width  # one line
            box = code.bounding_box()
            assert box is not None and box["height"] < 30
        table = page.locator("#schedules-table").bounding_box()
        card = page.locator("#schedules-table").locator("xpath=ancestor::section[1]")
        card_box = card.bounding_box()
        assert table is not None and card_box is not None
        scrolls = card.locator(".table-scroll").evaluate("e => e.scrollWidth > e.clientWidth")
        assert scrolls or table["x"] + table["width"] <= card_box["x"] + card_box["width"] + 1
        context.close()


def test_iterator_children_stay_inside_the_panel(server: Any, page: Any) -> None:
    from test_pages import CHILD, FAN

    server.register(CHILD)
    server.register(FAN)
    eid = server.api.start("tests/fan")
    assert server.api.execution(eid, wait=30)["status"] == "completed"
    for width in (1024, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{server.url}/ui/executions/{eid}#step=each")
        rows = page.locator("#step-children tbody tr")
        expect(rows).to_have_count(6)
        expect(rows.first.locator(".item")).to_have_text("#0 alpha")
        expect(rows.last.locator(".item")).to_have_text("#5 foxtrot")
        assert inside(page, "#step-children", "#panel"), width

"""Every UI route in process (TestClient): pages answer 200, unknown ids 404, user
text (playbook names, results, logs, YAML) is escaped, and the login cookie stands
in for the bearer token when one is configured (and is not needed otherwise)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from replaybook.server.app import create_app
from replaybook.server.auth import SESSION_SECONDS, UI_COOKIE, ui_cookie_value

EVIL = "<script>alert('x')</script>"

XSS = """
metadata: {name: "evil <script>alert('x')</script>", path: tests/evil}
workload: {note: "<img src=x onerror=alert(1)>"}
workflow:
  - step: start
    next: shout
  - step: shout
    type: python
    code: |
      def main():
          print("<script>alert('x')</script>")
          return {"html": "<script>alert('x')</script>"}
    next: end
  - step: end
"""

LOOP = """
metadata: {name: loop, path: tests/loop}
workload: {n: 3}
workflow:
  - step: start
    next: count
  - step: count
    args: {i: 1}
    next:
      - when: "{{ i < workload.n }}"
        then: [{step: count, data: {i: "{{ i + 1 }}"}}]
      - else: [items]
  - step: items
    type: iterator
    collection: "{{ range(4) | list }}"
    element: x
    task:
      type: python
      args: {x: "{{ x }}"}
      code: |
        def main(x):
            if x == 2:
                raise ValueError("two")
            return x
    continue_on_error: true
    next: end
  - step: end
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        f"sqlite:///{tmp_path / 'rb.db'}", workers=2, data_dir=tmp_path / "data", poll_seconds=0.1
    )
    with TestClient(app) as c:
        yield c


def run(c: TestClient, content: str, payload: dict[str, Any] | None = None) -> str:
    path = c.post("/api/catalog", json={"content": content}).json()["path"]
    eid = str(
        c.post("/api/executions", json={"path": path, "payload": payload or {}}).json()[
            "execution_id"
        ]
    )
    assert c.get(f"/api/executions/{eid}?wait=30").json()["status"] in ("completed", "failed")
    return eid


def assert_escaped(html: str) -> None:
    assert EVIL not in html
    assert "<img src=x" not in html
    assert "<script>" not in html.replace('<script src="/ui/static/app.js', "").replace(
        '<script type="application/json" id="live-data">', ""
    )


def test_every_page_answers_and_escapes_user_text(client: TestClient) -> None:
    eid = run(client, XSS)
    client.post(
        "/api/schedules", json={"playbook": "tests/evil", "cron": "0 6 * * *", "id": "nightly"}
    )
    pages = [
        "/ui/catalog",
        "/ui/catalog/tests/evil",
        "/ui/catalog/tests/evil?version=1",
        "/ui/executions",
        "/ui/executions?status=completed&playbook=tests/evil",
        "/ui/executions?status=failed",
        "/ui/executions?offset=50&limit=25",
        f"/ui/executions/{eid}",
        f"/ui/executions/{eid}/panel",
        f"/ui/executions/{eid}/panel?step=shout",
        "/ui/workers",
        "/ui/schedules",
    ]
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert_escaped(r.text)
    detail = client.get(f"/ui/executions/{eid}").text
    assert "evil &lt;script&gt;" in detail
    assert 'data-step="shout"' in detail and "st-completed" in detail
    panel = client.get(f"/ui/executions/{eid}/panel?step=shout").text
    assert "&lt;script&gt;alert" in panel  # the result and the log line, as text
    assert "Content-Security-Policy" in client.get("/ui/catalog").headers
    assert "nightly" in client.get("/ui/schedules").text
    assert client.get("/ui/executions?status=completed").text.count("data-execution=") == 1
    assert client.get("/ui/executions?status=running").text.count("data-execution=") == 0


def test_home_static_and_unknown_ids(client: TestClient) -> None:
    eid = run(client, XSS)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/executions"
    for name, kind in (("app.css", "text/css"), ("app.js", "text/javascript")):
        r = client.get(f"/ui/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
    missing = [
        "/ui/executions/0123456789abcdef",
        "/ui/executions/0123456789abcdef/panel",
        f"/ui/executions/{eid}/panel?step=no_such_step",
        "/ui/catalog/no/such/playbook",
        "/ui/catalog/tests/evil?version=99",
        "/ui/static/other.js",
    ]
    for url in missing:
        assert client.get(url).status_code == 404, url
    assert "No execution" in client.get("/ui/executions/<i>x<i>").text
    assert "<i>x<i>" not in client.get("/ui/executions/<i>x<i>").text


def test_execution_page_shows_loops_iterators_and_failures(client: TestClient) -> None:
    eid = run(client, LOOP)
    html = client.get(f"/ui/executions/{eid}").text
    assert 'class="edge e-back"' in html  # count -> count is drawn as a back edge
    assert "↻3" in html  # count ran three times
    panel = client.get(f"/ui/executions/{eid}/panel?step=items").text
    assert "4/4" in panel and "1 failed" in panel
    failed = run(client, LOOP.replace("continue_on_error: true", "continue_on_error: false"))
    panel = client.get(f"/ui/executions/{failed}/panel?step=items").text
    assert 'id="step-error"' in panel and "two" in panel
    summary = client.get(f"/ui/executions/{failed}/panel").text
    assert "two" in summary


def test_without_a_token_there_is_no_login(client: TestClient) -> None:
    r = client.get("/ui/login?next=/ui/workers", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/workers"
    assert client.get("/ui/executions").status_code == 200
    assert "Sign out" not in client.get("/ui/executions").text


def test_token_login_sets_a_cookie_the_guard_accepts(tmp_path: Path) -> None:
    token = "s3cret-token-for-the-ui"
    app = create_app(f"sqlite:///{tmp_path / 'rb.db'}", token=token, data_dir=tmp_path / "d")
    with TestClient(app) as c:
        r = c.get("/ui/executions?status=failed", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/login?next=%2Fui%2Fexecutions%3Fstatus%3Dfailed"
        assert c.get("/", follow_redirects=False).status_code == 303
        assert c.get("/api/executions").status_code == 401  # the API still says 401
        assert c.post("/ui/executions").status_code in (401, 405)
        login = c.get("/ui/login?next=/ui/workers")
        assert login.status_code == 200 and 'name="token"' in login.text
        assert c.get("/ui/static/app.css").status_code == 200  # the login page's style

        bad = c.post("/ui/login", data={"token": "wrong", "next": "/ui/workers"})
        assert bad.status_code == 401 and "not the server" in bad.text
        assert UI_COOKIE not in c.cookies

        ok = c.post(
            "/ui/login", data={"token": token, "next": "/ui/workers"}, follow_redirects=False
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/workers"
        set_cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and re.search("SameSite=strict", set_cookie, re.I)
        assert token not in set_cookie
        expires, _, _ = c.cookies[UI_COOKIE].partition(".")
        assert 0 < int(expires) - time.time() <= SESSION_SECONDS
        assert c.cookies[UI_COOKIE] == ui_cookie_value(token, int(expires))
        assert c.get("/ui/workers").status_code == 200
        assert c.get("/api/executions").status_code == 200  # the page's script calls
        assert "Sign out" in c.get("/ui/workers").text

        c.cookies.clear()
        c.cookies.set(UI_COOKIE, "0" * 64)
        assert c.get("/api/executions").status_code == 401
        # An expired session, or one signed with another token, is no session.
        c.cookies.set(UI_COOKIE, ui_cookie_value(token, int(time.time()) - 1))
        assert c.get("/api/executions").status_code == 401
        later = int(time.time()) + 60
        c.cookies.set(UI_COOKIE, ui_cookie_value("another-token-123456", later))
        assert c.get("/api/executions").status_code == 401
        c.cookies.set(UI_COOKIE, f"{later + 10**6}.{ui_cookie_value(token, later)[11:]}")
        assert c.get("/api/executions").status_code == 401  # expiry is signed
        c.cookies.clear()
        headers = {"Authorization": f"Bearer {token}"}
        assert c.get("/ui/catalog", headers=headers).status_code == 200

        # Only local paths are followed after signing in.
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil"):
            r = c.post("/ui/login", data={"token": token, "next": target}, follow_redirects=False)
            assert r.headers["location"] == "/ui/executions", target
        c.cookies.set(UI_COOKIE, ui_cookie_value(token, int(time.time()) + 60))
        out = c.get("/ui/logout", follow_redirects=False)
        assert out.status_code == 303 and UI_COOKIE in out.headers["set-cookie"]


def test_pages_on_postgresql(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
    import pgtest

    pgtest.require()
    name = pgtest.create_database("rb_ui_test")
    try:
        url = pgtest.url_of(name, schema=pgtest.new_schema_name())
        app = create_app(url, workers=2, data_dir=tmp_path / "data", poll_seconds=0.1)
        with TestClient(app) as c:
            eid = run(c, LOOP)
            for page in ("/ui/executions", f"/ui/executions/{eid}", "/ui/catalog/tests/loop"):
                assert c.get(page).status_code == 200, page
            assert "4/4" in c.get(f"/ui/executions/{eid}/panel?step=items").text
            assert (
                c.get("/ui/executions?status=completed&playbook=tests/loop").text.count(
                    "data-execution="
                )
                == 1
            )
    finally:
        pgtest.drop_database(name)


WAITS = """
metadata: {name: waits, path: tests/waits}
workload: {flag: ""}
workflow:
  - step: start
    next: hold
  - step: hold
    type: python
    args: {flag: "{{ workload.flag }}"}
    code: |
      import os, time
      def main(flag):
          while not os.path.exists(flag):
              time.sleep(0.02)
          return "released"
    next: end
  - step: end
"""


def test_workers_page_lists_running_jobs(client: TestClient, tmp_path: Path) -> None:
    flag = tmp_path / "release"
    path = client.post("/api/catalog", json={"content": WAITS}).json()["path"]
    eid = client.post(
        "/api/executions", json={"path": path, "payload": {"flag": str(flag)}}
    ).json()["execution_id"]
    try:
        deadline = time.monotonic() + 30
        while True:
            html = client.get("/ui/workers").text
            # Wait for `hold` itself: `start` may be caught leased on its way.
            leased = f"/ui/executions/{eid}" in html and ">hold<" in html
            if leased or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        row = html[html.index('id="running-table"') :]
        assert f'href="/ui/executions/{eid}"' in row and ">hold<" in row
    finally:
        flag.touch()
    assert client.get(f"/api/executions/{eid}?wait=30").json()["status"] == "completed"
    assert "No job is leased right now." in client.get("/ui/workers").text


TINY = """
metadata: {name: tiny, path: tests/tiny}
workflow:
  - step: start
    next: end
  - step: end
"""


def test_bad_ui_urls_answer_html_pages_naming_the_parameter(client: TestClient) -> None:
    client.post("/api/catalog", json={"content": TINY})
    bad = {
        "/ui/executions?limit=abc": "limit",
        "/ui/executions?limit=7": "limit",
        "/ui/executions?offset=1e9": "offset",
        "/ui/executions?offset=-1": "offset",
        "/ui/executions?offset=99999999999999999999999": "offset",  # was a 500
        "/ui/executions?offset=" + "9" * 5000: "offset",
        "/ui/executions?status=bogus": "status",
        "/ui/catalog/tests/tiny?version=abc": "version",
        "/ui/catalog/tests/tiny?version=99999999999999999999": "version",
    }
    for url, name in bad.items():
        r = client.get(url)
        assert r.status_code == 400, (url, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), url
        assert f"Parameter &#39;{name}&#39;" in r.text, url
        assert '"detail"' not in r.text
    for url in ("/ui/nonexistent", "/ui/executions/x/y/z", "/ui/static/nope.js"):
        r = client.get(url)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), url
        assert "Not found" in r.text and '"detail"' not in r.text
    assert client.get("/ui/executions?offset=&limit=&status=").status_code == 200
    assert client.get("/api/nonexistent").headers["content-type"].startswith("application/json")
    assert client.get("/ui/executions?offset=1000000000").status_code == 200


def test_paging_past_the_end_and_the_oldest_link(client: TestClient) -> None:
    path = client.post("/api/catalog", json={"content": TINY}).json()["path"]
    ids = [
        client.post("/api/executions", json={"path": path}).json()["execution_id"]
        for _ in range(27)
    ]
    html = client.get("/ui/executions?limit=25").text
    assert "1\u201325 of 27" in html
    oldest = re.search(r'id="oldest-link" href="([^"]+)"', html)
    assert oldest is not None and "offset=25" in oldest.group(1)
    last = client.get("/ui/executions" + oldest.group(1).replace("&amp;", "&")).text
    assert last.count("data-execution=") == 2 and ids[0] in last
    assert 'id="oldest-link"' not in last
    past = client.get("/ui/executions?limit=25&offset=100").text
    assert "No executions on this page" in past and "there are 27" in past
    assert "Start one from the catalog" not in past
    assert 'href="?status=&amp;playbook=&amp;limit=25&offset=0">Go to the first page' in past
    empty = client.get("/ui/executions?status=failed").text
    assert "No executions match these filters" in empty


def test_the_login_page_shows_no_navigation_and_no_sign_out(tmp_path: Path) -> None:
    token = "s3cret-token-for-the-ui"
    app = create_app(f"sqlite:///{tmp_path / 'rb.db'}", token=token, data_dir=tmp_path / "d")
    with TestClient(app) as c:
        plain = c.get("/ui/login?next=/ui/workers")
        wrong = c.post("/ui/login", data={"token": "wrong", "next": "/ui/workers"})
        assert (plain.status_code, wrong.status_code) == (200, 401)
        for html in (plain.text, wrong.text):
            assert 'name="token"' in html
            assert "Sign out" not in html and "/ui/logout" not in html
            assert 'class="nav"' not in html
            for section in ("catalog", "executions", "schedules", "workers"):
                assert f'href="/ui/{section}"' not in html
        c.post("/ui/login", data={"token": token, "next": "/ui/workers"})
        signed_in = c.get("/ui/workers").text
        assert 'class="nav"' in signed_in and "Sign out" in signed_in


def test_workers_page_has_one_row_per_pool(client: TestClient) -> None:
    """The server's own slots and remote workers of the default pool are one row, in
    separate columns (as /api/pools reports them), not two rows named default."""
    registry = client.app.state.rb.workers  # type: ignore[attr-defined]
    registry.seen("remote-a", [None], running=1, concurrency=4)
    registry.seen("remote-b", [None, "gpu"], running=0, concurrency=2)
    html = client.get("/ui/workers").text
    table = html[html.index('id="pools-table"') : html.index("</table>", html.index("pools-table"))]
    rows = re.findall(r'<tr data-pool="([^"]+)">(.*?)</tr>', table, re.S)
    assert [name for name, _ in rows] == ["default", "gpu"]
    cells = {name: re.findall(r"<td[^>]*>(.*?)</td>", body, re.S) for name, body in rows}
    default, gpu = cells["default"], cells["gpu"]
    assert "Remote workers" in table and "In-process slots" in table
    assert default[1] == "2" and default[2] == "2"  # remote workers, alive
    assert default[3].startswith("2 ")  # the server's --workers 2
    assert default[4].startswith("1 ")  # remote-a's running job (the server's: none)
    assert gpu[1] == "1" and "—" in gpu[3]
    api = {p["pool"]: p for p in client.get("/api/pools").json()}
    assert api["default"]["in_process"] == 2


def test_an_iterator_node_shows_its_failed_items(client: TestClient) -> None:
    eid = run(client, LOOP)
    html = client.get(f"/ui/executions/{eid}").text
    node = re.search(r'<g class="([^"]*)" data-step="items".*?</g>', html, re.S)
    assert node is not None
    assert "items-failed" in node.group(1) and "st-completed" in node.group(1)
    assert "4/4 · 1 failed" in node.group(0)
    count = re.search(r'<g class="([^"]*)" data-step="count"', html)
    assert count is not None and "items-failed" not in count.group(1)


CHILD = """
metadata: {name: child, path: tests/child}
workload: {word: ""}
workflow:
  - step: start
    next: end
  - step: end
    result: "{{ workload.word }}"
"""

FAN = """
metadata: {name: fan, path: tests/fan}
workflow:
  - step: start
    next: each
  - step: each
    type: iterator
    collection: ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    element: word
    mode: async
    concurrency: 3
    task:
      type: playbook
      path: tests/child
      args: {word: "{{ word }}"}
    next: end
  - step: end
"""


def test_an_iterator_panel_lists_its_children_by_item(client: TestClient) -> None:
    client.post("/api/catalog", json={"content": CHILD})
    eid = run(client, FAN)
    assert client.get(f"/api/executions/{eid}").json()["status"] == "completed"
    panel = client.get(f"/ui/executions/{eid}/panel?step=each").text
    table = panel[panel.index('id="step-children"') :]
    table = table[: table.index("</table>")]
    assert re.findall(r'data-index="(\d+)"', table) == ["0", "1", "2", "3", "4", "5"]
    words = re.findall(r'class="item-value mono" title="[^"]*">([^<]*)<', table)
    assert words == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    assert "#0" in table and "#5" in table
    assert 'class="table-scroll"' in panel[panel.index("Sub-playbook executions") :]


READS = """
metadata: {name: reads, path: tests/reads}
workload: {path: ""}
workflow:
  - step: start
    next: read
  - step: read
    type: python
    args: {path: "{{ workload.path }}"}
    code: |
      def main(path):
          print("reading", path)
          with open(path) as f:
              return f.read().strip()
    next: end
  - step: end
"""


def test_a_resumed_steps_logs_say_which_visit_and_attempt(
    client: TestClient, tmp_path: Path
) -> None:
    needed = tmp_path / "needed.txt"
    eid = run(client, READS, {"path": str(needed)})
    assert client.get(f"/api/executions/{eid}").json()["status"] == "failed"
    needed.write_text("here")
    client.post(f"/api/executions/{eid}/resume", json={})
    assert client.get(f"/api/executions/{eid}?wait=30").json()["status"] == "completed"
    panel = client.get(f"/ui/executions/{eid}/panel?step=read").text
    groups = re.findall(
        r'<div class="log-group" data-visit="(\d+)" data-attempt="(\d+)">(.*?)</pre>', panel, re.S
    )
    assert [(v, a) for v, a, _ in groups] == [("2", "1"), ("1", "1")]  # newest first
    new, old = groups[0][2], groups[1][2]
    assert "visit 2 · attempt 1" in new and 'data-status="completed"' in new
    assert "visit 1 · attempt 1" in old and 'data-status="failed"' in old
    assert "Traceback" in old and "Traceback" not in new
    assert '<span class="log-at">v2 a1</span> <span class="log-line">reading' in new
    assert '<span class="log-at">v1 a1</span> <span class="log-line">reading' in old


def test_steps_never_reached_say_so_in_the_table_as_in_the_legend(
    client: TestClient, tmp_path: Path
) -> None:
    eid = run(client, READS, {"path": str(tmp_path / "missing.txt")})
    html = client.get(f"/ui/executions/{eid}").text
    table = html[html.index('id="steps-table"') :]
    row = re.search(r'<tr data-step="end".*?</tr>', table, re.S)
    assert row is not None
    assert '<span class="badge st-pending" data-status="pending">not reached</span>' in row.group(0)
    assert ">pending<" not in html
    legend = html[html.index('class="legend"') : html.index("</div>", html.index('class="legend"'))]
    assert "not reached" in legend
    assert ">not reached<" in client.get(f"/ui/executions/{eid}/panel?step=end").text


BIDI = """
metadata: {name: bidi, path: tests/bidi}
workflow:
  - step: start
    next: trick
  - step: trick
    type: python
    code: |
      def main():
          print("log \\u202eevil\\u202c tail")
          return {"name": "abc\\u202edef", "after": 1}
    next: end
  - step: end
"""


def test_bidi_controls_cannot_reorder_a_panel(client: TestClient) -> None:
    eid = run(client, BIDI)
    assert client.get(f"/api/executions/{eid}?results=true").json()["results"]["trick"] == {
        "name": "abc\u202edef",
        "after": 1,
    }
    panel = client.get(f"/ui/executions/{eid}/panel?step=trick").text
    assert "\u202e" not in panel and "\u202c" not in panel
    shown = panel.replace("&#34;", '"')
    assert '"name": "abc\\u202edef",' in shown  # the same JSON value, its control escaped
    assert "log \\u202eevil\\u202c tail" in panel
    yaml_page = client.get("/ui/catalog/tests/bidi").text
    assert "\u202e" not in yaml_page
    css = client.get("/ui/static/app.css").text
    assert "pre.code, code, .error-box { unicode-bidi: isolate;" in css


def test_the_events_link_asks_for_10000_and_says_how_many_there_are(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from replaybook.server.ui import pages

    eid = run(client, TINY)
    last_seq = client.get(f"/api/executions/{eid}").json()["last_seq"]
    html = client.get(f"/ui/executions/{eid}").text
    assert f'href="/api/executions/{eid}/events?limit=10000"' in html
    assert f'id="event-count" data-count="{last_seq}">{last_seq}<' in html
    assert re.search(r'id="events-more" hidden', html)
    assert len(client.get(f"/api/executions/{eid}/events?limit=10000").json()) == last_seq

    real = pages.execution_view

    def many(*args: Any) -> Any:
        view = real(*args)
        view.last_seq = 12345
        return view

    monkeypatch.setattr(pages, "execution_view", many)
    html = client.get(f"/ui/executions/{eid}").text
    assert 'data-count="12345">12,345<' in html
    more = re.search(r'<span class="muted small" id="events-more">(.*?)</span>', html)
    assert more is not None and "the first 10,000 of 12,345" in more.group(1)
    assert "?after=10000" in more.group(1)

"""Integration tests for the http action (spec §6.2), against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from replaybook.actions.base import ActionContext
from replaybook.actions.http import HttpAction, HttpClients
from replaybook.errors import ActionError, StepTimeout


def _echo(request: Request) -> Response:
    body = request.get_data()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return Response(
        json.dumps(
            {
                "method": request.method,
                "path": request.path,
                "query": {k: request.args.getlist(k) for k in request.args},
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "json": parsed,
                "body_b": list(body),
            }
        ),
        content_type="application/json",
    )


@pytest.fixture
def server(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/json").respond_with_json(
        {"name": "replaybook", "items": [1, 2, 3], "nested": {"code": "007", "none": None}}
    )
    httpserver.expect_request("/text").respond_with_data("hello, text", content_type="text/plain")
    httpserver.expect_request("/echo").respond_with_handler(_echo)
    httpserver.expect_request("/redirect").respond_with_data(
        "", status=302, headers={"Location": "/json"}
    )
    httpserver.expect_request("/status/404").respond_with_json(
        {"status": 404, "ok": False}, status=404
    )
    httpserver.expect_request("/missing").respond_with_json(
        {"error": "no such route", "path": "/missing"}, status=404
    )
    httpserver.expect_request("/cookie").respond_with_data(
        "set", headers={"Set-Cookie": "session=abc; Path=/"}
    )
    return httpserver


@pytest.fixture
def action() -> Iterator[HttpAction]:
    a = HttpAction()
    yield a
    a.close()


def ctx(timeout: float | None = None, cancelled: threading.Event | None = None) -> ActionContext:
    return ActionContext(
        execution_id="e",
        step="fetch",
        attempt=1,
        data_dir=Path("/nonexistent"),
        timeout=timeout,
        cancelled=cancelled or threading.Event(),
    )


def test_get_json_result_shape(server: HTTPServer, action: HttpAction) -> None:
    result = action.run({"url": server.url_for("/json")}, {}, ctx())
    assert list(result) == ["status_code", "headers", "url", "elapsed_ms", "data"]
    assert result["status_code"] == 200
    assert result["data"] == {
        "name": "replaybook",
        "items": [1, 2, 3],
        "nested": {"code": "007", "none": None},
    }
    assert result["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in result["headers"])
    assert result["url"] == server.url_for("/json")
    assert isinstance(result["elapsed_ms"], float) and result["elapsed_ms"] >= 0


def test_text_body_and_endpoint_alias(server: HTTPServer, action: HttpAction) -> None:
    result = action.run({"endpoint": server.url_for("/text")}, {}, ctx())
    assert result["data"] == "hello, text"
    assert result["status_code"] == 200


def test_post_mapping_body_as_json_with_headers(server: HTTPServer, action: HttpAction) -> None:
    body = {"a": 1, "tags": ["x", "y"], "nested": {"ok": True}, "city": "東京"}
    spec = {"method": "post", "url": server.url_for("/echo"), "headers": {"X-Test": "abc"}}
    data = action.run({**spec, "body": body}, {"ignored": 1}, ctx())["data"]
    assert data["method"] == "POST"
    assert data["json"] == body
    assert data["headers"]["x-test"] == "abc"
    assert "application/json" in data["headers"]["content-type"]
    assert bytes(data["body_b"]).decode("utf-8") == json.dumps(
        body, ensure_ascii=False, separators=(",", ":")
    )
    for alias in ("json", "payload"):
        assert action.run({**spec, alias: [1, 2]}, {}, ctx())["data"]["json"] == [1, 2]


def test_string_body_sent_byte_for_byte(server: HTTPServer, action: HttpAction) -> None:
    text = "name=東京&x=1 \n raw"
    spec = {"method": "PUT", "url": server.url_for("/echo"), "body": text}
    data = action.run(spec, {}, ctx())["data"]
    assert bytes(data["body_b"]) == text.encode("utf-8")
    assert "content-type" not in data["headers"]


def test_inputs_become_query_or_json_body(server: HTTPServer, action: HttpAction) -> None:
    url = server.url_for("/echo")
    got = action.run({"url": url}, {"q": "hello", "page": 2, "on": True}, ctx())["data"]
    assert got["method"] == "GET"
    assert got["query"] == {"q": ["hello"], "page": ["2"], "on": ["true"]}
    assert got["json"] is None
    got = action.run({"url": url, "method": "POST"}, {"city": "Paris", "n": 2}, ctx())["data"]
    assert got["json"] == {"city": "Paris", "n": 2}
    assert got["query"] == {}
    got = action.run({"url": url, "method": "DELETE"}, {"id": 7}, ctx())["data"]
    assert got["query"] == {"id": ["7"]}
    got = action.run({"url": url, "method": "POST"}, {}, ctx())["data"]
    assert got["body_b"] == []
    # params given: the inputs are not sent
    got = action.run({"url": url, "method": "POST", "params": {"a": 1}}, {"b": 2}, ctx())
    assert got["data"]["query"] == {"a": ["1"]}
    assert got["data"]["json"] is None


def test_query_params_render_as_text(server: HTTPServer, action: HttpAction) -> None:
    spec = {
        "url": server.url_for("/echo") + "?fixed=1",
        "params": {"ms": 3000, "f": 1.5, "yes": True, "no": False, "many": [1, "b"], "n": None},
    }
    result = action.run(spec, {}, ctx())
    assert result["data"]["query"] == {
        "fixed": ["1"],
        "ms": ["3000"],
        "f": ["1.5"],
        "yes": ["true"],
        "no": ["false"],
        "many": ["1", "b"],
        "n": [""],
    }
    assert "ms=3000" in result["url"] and result["url"].startswith(server.url_for("/echo?"))


def test_status_404_fails_with_status(server: HTTPServer, action: HttpAction) -> None:
    url = server.url_for("/missing")
    with pytest.raises(ActionError) as err:
        action.run({"url": url}, {}, ctx())
    assert str(err.value).startswith(f"HTTP 404 Not Found: GET {url} -> ")
    assert err.value.type == "http"
    assert err.value.status_code == 404
    assert err.value.details["status_code"] == 404


def test_fail_on_status_false_returns_result(server: HTTPServer, action: HttpAction) -> None:
    spec = {"url": server.url_for("/status/404"), "fail_on_status": False}
    result = action.run(spec, {}, ctx())
    assert result["status_code"] == 404
    assert result["data"] == {"status": 404, "ok": False}


def test_redirects(server: HTTPServer, action: HttpAction) -> None:
    result = action.run({"url": server.url_for("/redirect")}, {}, ctx())
    assert result["status_code"] == 200
    assert result["url"] == server.url_for("/json")
    result = action.run({"url": server.url_for("/redirect"), "follow_redirects": False}, {}, ctx())
    assert result["status_code"] == 302
    assert result["headers"]["location"] == "/json"


def test_cookies_are_not_kept_between_requests(server: HTTPServer, action: HttpAction) -> None:
    action.run({"url": server.url_for("/cookie")}, {}, ctx())
    headers = action.run({"url": server.url_for("/echo")}, {}, ctx())["data"]["headers"]
    assert "cookie" not in headers


def test_resolved_auth_adds_header(server: HTTPServer, action: HttpAction) -> None:
    spec: dict[str, Any] = {"url": server.url_for("/echo")}
    auth = {"type": "http_bearer", "token": "t0k"}
    headers = action.run({**spec, "auth": auth}, {}, ctx())["data"]["headers"]
    assert headers["authorization"] == "Bearer t0k"
    auth = {"type": "http_header", "name": "X-Api-Key", "value": "k"}
    headers = action.run({**spec, "auth": auth}, {}, ctx())["data"]["headers"]
    assert headers["x-api-key"] == "k"


def test_connection_refused(action: HttpAction) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ActionError) as err:
        action.run({"url": url}, {}, ctx())
    assert str(err.value) == f"HTTP request failed: connection refused to {url}"
    assert err.value.type == "http"


def test_timeout_bounded_by_attempt_timeout(httpserver: HTTPServer, action: HttpAction) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(StepTimeout) as err:
            action.run({"url": httpserver.url_for("/slow"), "timeout": 30}, {}, ctx(timeout=0.5))
    finally:
        release.set()
    assert time.monotonic() - started < 2
    assert str(err.value) == "timed out after 0.5 s"
    release.clear()
    started = time.monotonic()
    try:
        with pytest.raises(StepTimeout, match=r"timed out after 0\.3 s"):
            action.run({"url": httpserver.url_for("/slow"), "timeout": "300ms"}, {}, ctx())
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_bad_fields(server: HTTPServer, action: HttpAction) -> None:
    with pytest.raises(ActionError, match="needs a `url`"):
        action.run({}, {}, ctx())
    with pytest.raises(ActionError, match="bad timeout"):
        action.run({"url": server.url_for("/json"), "timeout": "soon"}, {}, ctx())
    with pytest.raises(ActionError, match="HTTP request failed"):
        action.run({"url": "ftp://example.invalid/x"}, {}, ctx())


def test_shared_clients_service(server: HTTPServer, action: HttpAction) -> None:
    clients = HttpClients()
    c = ActionContext("e", "s", 1, Path("/x"), services={"http": clients})
    assert action.run({"url": server.url_for("/json")}, {}, c)["status_code"] == 200
    assert clients.get(True) is clients.get(True)
    clients.close()


def test_parallel_requests(server: HTTPServer, action: HttpAction) -> None:
    results: list[int] = []

    def one() -> None:
        results.append(action.run({"url": server.url_for("/json")}, {}, ctx())["status_code"])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8

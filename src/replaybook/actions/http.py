"""The `http` action (spec §6.2), on httpx.

    HttpAction().run(spec, inputs, ctx) -> {status_code, headers, url, elapsed_ms, data}
    HttpClients                          shared httpx.Clients (one per TLS `verify`
                                         setting), ctx.services["http"] if given

Fields: `method` (GET), `url` (alias `endpoint`), `headers`, `params` (query), `body`
(aliases `json`, `payload`), `timeout` (30 s; the attempt's own timeout bounds it
too), `verify` (true, or a CA bundle path), `follow_redirects` (true),
`fail_on_status` (true). With neither body nor params, the inputs become the query
(GET, DELETE, HEAD, OPTIONS) or a JSON body (other methods). A text body is sent as its
UTF-8 bytes; any other body as UTF-8 JSON with `content-type: application/json`
(unless the headers set one). Query values: numbers as written, booleans `true`/
`false`, null empty, lists repeated, mappings as JSON.

`data` is the parsed body when the content type says JSON, or when an untyped or
text/plain body is a JSON object or array; otherwise the text. Clients keep no
cookies between requests (steps of different executions share them). `auth`, when
the executor has resolved it to a credential mapping, adds its header: `http_bearer`
(token), `http_basic` (username, password), `http_header` (name, value).

Errors: status >= 400 -> ActionError "HTTP 404 Not Found: GET <url> -> <body start>"
(type "http", status_code, details = the result) unless `fail_on_status` is false;
transport failures -> ActionError "HTTP request failed: ..." (type "http"); timeouts
-> StepTimeout.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from replaybook.actions.base import ActionContext
from replaybook.errors import ActionError, StepTimeout

if TYPE_CHECKING:
    import ssl

    import httpx

DEFAULT_TIMEOUT = 30.0
_QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD", "OPTIONS"})
_SNIPPET_CHARS = 200
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
# Query pairs, typed as httpx wants them (the values are always text here).
_Query = list[tuple[str, str | int | float | bool | None]]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class HttpClients:
    """httpx.Clients shared by http steps, one per `verify` setting (redirects and
    timeouts are per request). Thread-safe."""

    def __init__(self) -> None:
        self._clients: dict[bool | str, httpx.Client] = {}
        self._lock = threading.Lock()

    def get(self, verify: bool | str) -> httpx.Client:
        client = self._clients.get(verify)
        if client is None:
            with self._lock:
                client = self._clients.get(verify)
                if client is None:
                    client = _new_client(verify)
                    self._clients[verify] = client
        return client

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


def _new_client(verify: bool | str) -> httpx.Client:
    import http.cookiejar

    import httpx

    tls: bool | ssl.SSLContext = verify if isinstance(verify, bool) else _ca_context(verify)
    # A jar that refuses every cookie: a shared client must not carry one step's
    # cookies into another's requests.
    jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(verify=tls, cookies=jar, timeout=DEFAULT_TIMEOUT)


def _ca_context(path: str) -> ssl.SSLContext:
    import ssl

    try:
        return ssl.create_default_context(cafile=path)
    except OSError as exc:
        raise ActionError(f"http step: cannot read CA bundle {path!r}: {exc}", type="http") from exc


class HttpAction:
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._clients = HttpClients()

    def close(self) -> None:
        self._clients.close()

    def run(self, spec: Mapping[str, Any], inputs: Mapping[str, Any], ctx: ActionContext) -> Any:
        import httpx

        clients = ctx.services.get("http")
        if not isinstance(clients, HttpClients):
            clients = self._clients
        method = str(spec.get("method") or "GET").upper()
        url = spec.get("url") or spec.get("endpoint")
        if not isinstance(url, str) or not url:
            raise ActionError("http step needs a `url` (text)", type="http")
        timeout = _parse_timeout(spec.get("timeout"))
        if ctx.timeout is not None:
            timeout = min(timeout, ctx.timeout)
        client = clients.get(_verify(spec.get("verify", True)))
        params, content, headers = _request_parts(method, spec, inputs)
        _add_auth(headers, spec.get("auth"))
        try:
            request = client.build_request(
                method,
                _with_query(url, params),
                content=content,
                headers=headers,
                timeout=httpx.Timeout(timeout),
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            raise ActionError(f"HTTP request failed: bad request to {url}: {exc}", "http") from exc
        follow = _flag(spec.get("follow_redirects", True), "follow_redirects")
        result, reason = _send(client, request, follow, timeout, ctx)
        if result["status_code"] >= 400 and _flag(
            spec.get("fail_on_status", True), "fail_on_status"
        ):
            raise ActionError(
                _status_message(method, result, reason),
                type="http",
                status_code=result["status_code"],
                details=result,
            )
        return result


def _send(
    client: httpx.Client, request: httpx.Request, follow: bool, timeout: float, ctx: ActionContext
) -> tuple[dict[str, Any], str]:
    """Send the request, read the body (checking deadline and cancel between chunks);
    return the result and the status's reason phrase."""
    import httpx

    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    try:
        response = client.send(request, stream=True, follow_redirects=follow)
        try:
            chunks: list[bytes] = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if ctx.cancelled.is_set():
                    raise ActionError("cancelled", type="cancelled")
                if time.monotonic() > deadline:
                    raise StepTimeout(timeout)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise StepTimeout(timeout) from exc
    except httpx.HTTPError as exc:
        raise ActionError(_transport_message(exc, request), type="http") from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    body = b"".join(chunks)
    result = {
        "status_code": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "url": str(response.url),
        "elapsed_ms": elapsed_ms,
        "data": _decode_body(body, response.headers.get("content-type", ""), response.encoding),
    }
    # The standard phrase when there is one ("Not Found", whatever the server says).
    return result, httpx.codes.get_reason_phrase(response.status_code) or response.reason_phrase


def _with_query(url: str, params: _Query | None) -> httpx.URL:
    """The URL with `params` appended to the query string it already has."""
    import httpx

    parsed = httpx.URL(url)
    if not params:
        return parsed
    extra = str(httpx.QueryParams(params)).encode("ascii")
    return parsed.copy_with(query=parsed.query + b"&" + extra if parsed.query else extra)


def _transport_message(exc: Exception, request: httpx.Request) -> str:
    import httpx

    url = str(request.url)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return f"HTTP request failed: connection refused to {url}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return f"HTTP request failed: cannot connect to {url}: {exc}"
    return f"HTTP request failed: {type(exc).__name__}: {exc} ({request.method} {url})"


def _status_message(method: str, result: dict[str, Any], reason: str) -> str:
    data = result["data"]
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    snippet = " ".join(text.split())
    if len(snippet) > _SNIPPET_CHARS:
        snippet = snippet[:_SNIPPET_CHARS] + "..."
    status = f"HTTP {result['status_code']} {reason}".rstrip()
    tail = f" -> {snippet}" if snippet else ""
    return f"{status}: {method} {result['url']}{tail}"


def _decode_body(body: bytes, content_type: str, encoding: str | None) -> Any:
    if not body:
        return ""
    kind = content_type.split(";", 1)[0].strip().lower()
    is_json = kind.endswith("json") or kind.endswith("+json")
    if is_json or kind in ("", "text/plain"):
        first = body.lstrip()[:1]
        if is_json or first in (b"{", b"["):
            try:
                return json.loads(body)
            except ValueError:
                pass
    return body.decode(encoding or "utf-8", errors="replace")


def _request_parts(
    method: str, spec: Mapping[str, Any], inputs: Mapping[str, Any]
) -> tuple[_Query | None, bytes | None, dict[str, str]]:
    headers = _headers(spec.get("headers"))
    body_key = next((k for k in ("body", "json", "payload") if spec.get(k) is not None), None)
    body: Any = spec[body_key] if body_key else None
    raw_params = spec.get("params")
    if body_key is None and raw_params is None and inputs:
        if method in _QUERY_METHODS:
            raw_params = dict(inputs)
        else:
            body = dict(inputs)
            body_key = "body"
    params = _query(raw_params) if raw_params is not None else None
    content: bytes | None = None
    if body_key is not None:
        has_type = any(name.lower() == "content-type" for name in headers)
        if isinstance(body, str):
            content = body.encode("utf-8")
            if body_key != "body" and not has_type:
                headers["content-type"] = "application/json"
        else:
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if not has_type:
                headers["content-type"] = "application/json"
    return params, content, headers


def _headers(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ActionError("http step: `headers` must be a mapping", type="http")
    return {str(k): _text(v) for k, v in raw.items() if v is not None}


def _query(raw: Any) -> _Query:
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
        items = [(p[0], p[1]) for p in raw]
    else:
        raise ActionError("http step: `params` must be a mapping", type="http")
    pairs: _Query = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((str(key), _text(v)) for v in values)
    return pairs


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _add_auth(headers: dict[str, str], auth: Any) -> None:
    if not isinstance(auth, Mapping):
        return
    kind = str(auth.get("type", ""))
    if kind == "http_bearer" and auth.get("token") is not None:
        headers.setdefault("Authorization", f"Bearer {auth['token']}")
    elif kind == "http_basic" and auth.get("username") is not None:
        import base64

        pair = f"{auth['username']}:{auth.get('password') or ''}".encode()
        headers.setdefault("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    elif kind == "http_header":
        name = auth.get("name") or auth.get("header")
        if name and auth.get("value") is not None:
            headers.setdefault(str(name), _text(auth["value"]))


def _parse_timeout(raw: Any) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        return float(raw)
    if isinstance(raw, str):
        m = _DURATION.match(raw)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ActionError(f"http step: bad timeout {raw!r} (seconds, or like 30s, 5m)", type="http")


def _flag(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ActionError(f"http step: `{name}` must be true or false, not {raw!r}", type="http")


def _verify(raw: Any) -> bool | str:
    if isinstance(raw, str) and raw.strip().lower() not in ("true", "false"):
        return raw
    return _flag(raw, "verify")

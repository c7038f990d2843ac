"""Talking to a Replaybook server: the HTTP API client, the remote worker's
Coordinator and its child-execution runner.

    ApiClient(url, token)     one method per endpoint; HTTP errors become the same
                              exceptions the embedded code raises (NotFound,
                              StaleLease, PlaybookInvalid, TemplateError, UsageError)
    RemoteCoordinator(api)    what a WorkerPool needs, over the queue endpoints
    RemoteChildRunner(api)    `playbook` steps of a remote worker start children there
    server_from_env(flag)     --server, else $REPLAYBOOK_SERVER
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from replaybook.errors import (
    ActionError,
    NotFound,
    PlaybookInvalid,
    Problem,
    ReplaybookError,
    StaleLease,
    StepTimeout,
    TemplateError,
    UsageError,
)
from replaybook.playbook.model import Playbook
from replaybook.runtime.coordinator import FinishedCallback, JobContext
from replaybook.server.wire import job_from_json, job_to_json, new_event_to_json
from replaybook.store.base import Job, Lessee, NewEvent

log = logging.getLogger("replaybook.client")

# How long a worker keeps retrying a call while the server is unreachable (a server
# restart): long enough to ride one out, short of a lease's default length.
RECONNECT_SECONDS = 20.0


class ServerError(ReplaybookError):
    """The server could not be reached or answered something unexpected."""


def server_from_env(flag: str | None) -> str | None:
    return flag or os.environ.get("REPLAYBOOK_SERVER") or None


def token_from_env() -> str | None:
    return os.environ.get("REPLAYBOOK_API_TOKEN") or None


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        max_connections: int = 32,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
            trust_env=False,  # the server is named explicitly: never through a proxy
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {}
        if json_body is not None:
            kwargs["json"] = json_body
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=10.0)
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ServerError(f"server {self.base_url} unreachable: {e}") from e
        if resp.status_code >= 400:
            raise _error(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # -- catalog ---------------------------------------------------------------------
    def register(self, content: str, file: str | None = None, strict: bool = False) -> Any:
        body = {"content": content, "file": file, "strict": strict}
        return self.request("POST", "/api/catalog", json_body=body)

    def catalog_list(self) -> Any:
        return self.request("GET", "/api/catalog")

    def catalog_get(self, path: str, version: int | None = None) -> Any:
        return self.request("GET", f"/api/catalog/{path}", params={"version": version})

    def catalog_versions(self, path: str) -> Any:
        return self.request("GET", f"/api/catalog/{path}/versions")

    # -- executions --------------------------------------------------------------------
    def start(
        self,
        path: str,
        version: int | None = None,
        payload: Mapping[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> str:
        body = {"path": path, "version": version, "payload": dict(payload or {})}
        if parent is not None:
            body["parent"] = dict(parent)
        out = self.request("POST", "/api/executions", json_body=body)
        return str(out["execution_id"])

    def executions(self, **filters: Any) -> Any:
        return self.request("GET", "/api/executions", params=filters)

    def execution(self, execution_id: str, wait: float = 0, results: bool = False) -> Any:
        params = {"wait": wait or None, "results": "true" if results else None}
        return self.request(
            "GET", f"/api/executions/{execution_id}", params=params, timeout=wait + 60
        )

    def events(self, execution_id: str, after: int = 0, limit: int = 1000) -> Any:
        return self.request(
            "GET", f"/api/executions/{execution_id}/events", params={"after": after, "limit": limit}
        )

    def all_events(self, execution_id: str, after: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.events(execution_id, after, 1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            after = page[-1]["seq"]

    def stream(self, execution_id: str, after: int = 0) -> Iterator[tuple[str, Any]]:
        """(kind, data) messages of the live stream: ("event", event dict) ... then
        ("end", {"status"}). Reconnects from the last seen seq if the connection drops."""
        deadline: float | None = None
        while True:
            try:
                with self._http.stream(
                    "GET",
                    f"/api/executions/{execution_id}/stream",
                    params={"after": after},
                    timeout=httpx.Timeout(None, connect=10.0),
                ) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise _error(resp)
                    deadline = None
                    for kind, data in _sse(resp.iter_lines()):
                        if kind == "event":
                            after = data["seq"]
                        yield kind, data
                        if kind == "end":
                            return
            except (httpx.TransportError, ServerError) as e:
                # The server went away (a restart): retry from the last seq seen.
                now = time.monotonic()
                deadline = deadline or now + RECONNECT_SECONDS * 3
                if now > deadline:
                    raise ServerError(f"server {self.base_url} unreachable: {e}") from e
                time.sleep(0.2)

    def cancel(self, execution_id: str, reason: str | None = None) -> Any:
        body = {"reason": reason} if reason else {}
        return self.request("POST", f"/api/executions/{execution_id}/cancel", json_body=body)

    def resume(self, execution_id: str, from_step: str | None = None) -> Any:
        body = {"from_step": from_step}
        return self.request("POST", f"/api/executions/{execution_id}/resume", json_body=body)

    # -- workers and queue -----------------------------------------------------------------
    def workers(self) -> Any:
        return self.request("GET", "/api/workers")

    def pools(self) -> Any:
        return self.request("GET", "/api/pools")

    def health(self) -> Any:
        return self.request("GET", "/health")


def _error(resp: httpx.Response) -> ReplaybookError:
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text[:500]}
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        detail = json.dumps(detail)[:500]
    code = resp.status_code
    kind = body.get("type") if isinstance(body, dict) else None
    if code == 401:
        return UsageError(f"the server refused the request: {detail} (set REPLAYBOOK_API_TOKEN)")
    if code == 404:
        return NotFound(detail)
    if code == 409:
        return StaleLease(detail)
    if code == 422 and kind == "invalid":
        return PlaybookInvalid([Problem(**_problem(p)) for p in body.get("errors", [])])
    if code == 422 and kind == "template":
        return TemplateError(detail)
    if code in (400, 422):
        return UsageError(detail)
    return ServerError(f"server answered {code}: {detail}")


def _problem(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message": str(p.get("message")),
        "line": p.get("line") or 0,
        "path": p.get("path") or "",
    }


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", list[str]()
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


# -- remote workers -----------------------------------------------------------------------
def _retrying(fn: Callable[[], Any], what: str, stop: threading.Event | None = None) -> Any:
    """Call `fn`, retrying while the server is unreachable (it may be restarting)."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    delay = 0.05
    while True:
        try:
            return fn()
        except ServerError as e:
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise
            log.warning("%s: %s; retrying", what, e)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class _Outgoing:
    """A completion waiting to be sent, and what the server answered for it."""

    __slots__ = ("body", "chain", "error", "finished", "leads", "next", "wake")

    def __init__(self, body: dict[str, Any], chain: Lessee | None) -> None:
        self.body = body
        self.chain = chain
        self.wake = threading.Event()  # set when answered, or when it is to send
        self.finished = False
        self.leads = False
        self.next: Mapping[str, Any] | None = None
        self.error: Exception | None = None

    def finish(self, nxt: Mapping[str, Any] | None, error: Exception | None) -> None:
        self.next, self.error = nxt, error
        self.finished = True
        self.wake.set()


class RemoteCoordinator:
    """The Coordinator of `replaybook worker --server URL`."""

    def __init__(
        self,
        api: ApiClient,
        env: Mapping[str, str] | None = None,
        *,
        running: Callable[[], int] | None = None,
        concurrency: int | None = None,
        max_wait: float = 2.0,
    ) -> None:
        self.api = api
        # A long poll cannot be interrupted from here: keep it short enough that a
        # draining worker does not wait long for it (an idle worker asks every
        # `max_wait` seconds, which costs the server next to nothing).
        self.max_wait = max_wait
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.running = running
        self.concurrency = concurrency
        self._contexts: dict[str, dict[str, Any]] = {}
        self._playbooks: dict[tuple[str, int], Playbook] = {}
        self._lock = threading.Lock()
        self._interrupted = threading.Event()
        self._out_lock = threading.Lock()
        self._outbox: list[_Outgoing] = []
        self._sending = False

    def _keep(self, leased: Mapping[str, Any]) -> Job:
        job = job_from_json(leased["job"])
        with self._lock:
            self._contexts[job.lease_token] = dict(leased)
        return job

    def lease(
        self,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        pools: Sequence[str | None] | None,
        wait: float,
    ) -> list[Job]:
        if self._interrupted.is_set():
            return []
        wait = min(wait, self.max_wait)
        body = {
            "worker_id": worker_id,
            "limit": limit,
            "lease_seconds": lease_seconds,
            "pools": None if pools is None else list(pools),
            "wait": wait,
            "running": self.running() if self.running else None,
            "concurrency": self.concurrency,
        }
        out = self.api.request("POST", "/api/queue/lease", json_body=body, timeout=wait + 60)
        return [self._keep(j) for j in out["jobs"]]

    def context(self, job: Job) -> JobContext | None:
        with self._lock:
            got = self._contexts.pop(job.lease_token, None)
        if got is None or got.get("playbook") is None:
            return None
        ref = got["playbook"]
        return JobContext(self._playbook(ref["path"], int(ref["version"])), got["snapshot"])

    def _playbook(self, path: str, version: int) -> Playbook:
        key = (path, version)
        pb = self._playbooks.get(key)
        if pb is None:
            from replaybook.playbook.load import load_playbook

            entry = _retrying(lambda: self.api.catalog_get(path, version), "catalog")
            pb, _ = load_playbook(entry["content"], file=f"{path}@{version}")
            self._playbooks[key] = pb
        return pb

    def complete(self, job: Job, events: Sequence[NewEvent], *, chain: Lessee | None) -> Job | None:
        """Completions made while another is on its way are sent together in one
        request (`/api/queue/complete-many`) by whichever thread is first: a busy
        worker pays one round trip, and the server one transaction per execution,
        for many outcomes."""
        mine = _Outgoing(
            {"job": job_to_json(job), "events": [new_event_to_json(e) for e in events]}, chain
        )
        with self._out_lock:
            self._outbox.append(mine)
            if not self._sending:
                self._sending = mine.leads = True
        while not mine.finished:
            if mine.leads:
                mine.leads = False
                self._send_outbox()
                continue
            mine.wake.wait()
            mine.wake.clear()  # `finished` and `leads` are set before `wake`
        if mine.error is not None:
            raise mine.error
        return None if mine.next is None else self._keep(mine.next)

    def _send_outbox(self) -> None:
        """Send what waits, then hand the sending on to the first completion that
        came meanwhile (so no thread keeps sending others' outcomes while its own
        next job waits), or stop."""
        with self._out_lock:
            batch, self._outbox = self._outbox, []
        # One request per lessee (a pool's threads share one): chains stay right.
        by_chain: dict[Lessee | None, list[_Outgoing]] = {}
        for item in batch:
            by_chain.setdefault(item.chain, []).append(item)
        for chain, items in by_chain.items():
            self._send(chain, items)
        with self._out_lock:
            if self._outbox:
                nxt = self._outbox[0]
                nxt.leads = True
                nxt.wake.set()
            else:
                self._sending = False

    def _send(self, chain: Lessee | None, items: list[_Outgoing]) -> None:
        body: dict[str, Any] = {"completions": [i.body for i in items], "chain": None}
        if chain is not None:
            body["chain"] = {
                "worker_id": chain.worker_id,
                "lease_seconds": chain.lease_seconds,
                "pools": None if chain.pools is None else list(chain.pools),
            }
        try:
            out = _retrying(
                lambda: self.api.request("POST", "/api/queue/complete-many", json_body=body),
                "complete",
            )
            results = out["results"]
        except Exception as e:
            for item in items:
                item.finish(None, e)
            return
        for item, res in zip(items, results, strict=True):
            err = res.get("error")
            if err is None:
                item.finish(res.get("next"), None)
            elif err.get("type") == "stale_lease":
                item.finish(None, StaleLease(str(err.get("detail"))))
            else:
                item.finish(None, ServerError(str(err.get("detail"))))

    def record(self, execution_id: str, events: Sequence[NewEvent]) -> None:
        body = {"execution_id": execution_id, "events": [new_event_to_json(e) for e in events]}
        _retrying(lambda: self.api.request("POST", "/api/queue/record", json_body=body), "record")

    def heartbeat(self, jobs: Sequence[Job], lease_seconds: float) -> set[str]:
        body = {
            "worker_id": jobs[0].worker_id if jobs else "",
            "lease_seconds": lease_seconds,
            "jobs": [job_to_json(j) for j in jobs],
            "running": self.running() if self.running else None,
            "concurrency": self.concurrency,
        }
        out = self.api.request("POST", "/api/queue/heartbeat", json_body=body)
        return {str(t) for t in out["lost"]}

    def release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        with self._lock:
            for j in jobs:
                self._contexts.pop(j.lease_token, None)
        body = {"jobs": [job_to_json(j) for j in jobs]}
        try:
            self.api.request("POST", "/api/queue/release", json_body=body)
        except ServerError:
            log.warning("could not release %d job(s); their leases will expire", len(jobs))

    def on_finished(self, fn: FinishedCallback) -> None:
        # The server does not push; a finished execution shows as lost leases on the
        # next heartbeat, which cancels its running attempts.
        pass

    def interrupt(self) -> None:
        self._interrupted.set()


class RemoteChildRunner:
    """Runs a `playbook` step's child execution on the server and waits for it."""

    def __init__(
        self,
        api: ApiClient,
        release_slot: Callable[[], None] | None = None,
        take_slot: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self._release = release_slot or (lambda: None)
        self._take = take_slot or (lambda: None)

    def run_child(
        self,
        ctx: Any,
        path: str,
        version: int | None,
        payload: Mapping[str, Any],
        return_step: str | None,
    ) -> Any:
        try:
            entry = self.api.catalog_get(path, version)
        except NotFound:
            which = f"'{path}'" + (f" version {version}" if version is not None else "")
            raise ActionError(f"playbook {which} is not in the catalog", type="not_found") from None
        parent = {"execution_id": ctx.execution_id, "step": ctx.step}
        child = self.api.start(entry["path"], entry["version"], payload, parent=parent)
        ctx.log(f"started child execution {child} ({entry['path']} version {entry['version']})")
        deadline = None if ctx.timeout is None else time.monotonic() + ctx.timeout
        self._release()
        try:
            while True:
                out = self.api.execution(child, wait=1.0, results=bool(return_step))
                if out["status"] in ("completed", "failed", "cancelled"):
                    break
                if ctx.cancelled.is_set():
                    self.api.cancel(child, "the parent step was cancelled")
                    raise ActionError("cancelled", type="cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    self.api.cancel(child, "the parent step timed out")
                    raise StepTimeout(ctx.timeout or 0)
        finally:
            self._take()
        if out["status"] == "completed":
            if return_step:
                results = out.get("results") or {}
                if return_step not in results:
                    raise ActionError(
                        f"child execution {child} has no result for return_step '{return_step}'"
                    )
                return results[return_step]
            return out["result"]
        err = out.get("error") or {}
        detail = f"step '{err.get('step')}': {err.get('message')}" if err else out["status"]
        raise ActionError(f"child execution {child} {out['status']} in {detail}", type="child")

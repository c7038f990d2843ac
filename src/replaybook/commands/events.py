"""`replaybook executions events ID --follow`: print events as they are written, until
the execution ends. On a server the live stream (SSE) carries them; on a local store
its log is read again whenever the last read found nothing new (a short poll: the
CLI is a reader, not on any execution's hot path). With --json, one event per line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from replaybook.client import ApiClient
from replaybook.core.events import TERMINAL_EXECUTION
from replaybook.store.base import Store

POLL_SECONDS = 0.2


def print_event(e: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(e, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    where = e.get("step") or ""
    if "visit" in e:
        where += f"#{e['visit']}"
    if "attempt" in e:
        where += f" attempt {e['attempt']}"
    data = json.dumps(e["data"], ensure_ascii=False)[:200]
    print(f"{e['seq']:>5} {e['at']} {e['type']:<20} {where} {data}", flush=True)


def follow_remote(api: ApiClient, execution_id: str, after: int, as_json: bool) -> None:
    for kind, data in api.stream(execution_id, after):
        if kind == "event":
            print_event(data, as_json)


def follow_local(store: Store, execution_id: str, after: int, as_json: bool) -> None:
    while True:
        events = store.read_events(execution_id, after_seq=after)
        for e in events:
            print_event(e.as_dict(), as_json)
            after = e.seq
        if any(e.type in TERMINAL_EXECUTION for e in events):
            return
        info = store.get_execution(execution_id)
        if not events and info is not None and info.status != "running":
            return
        if not events:
            time.sleep(POLL_SECONDS)

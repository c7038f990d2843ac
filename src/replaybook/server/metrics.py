"""Prometheus metrics of one server process (`/metrics`, text exposition format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "replaybook_http_requests",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "replaybook_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
        )
        self.executions_started = Counter(
            "replaybook_executions_started", "Executions started through this server", registry=r
        )
        self.jobs_leased = Counter(
            "replaybook_jobs_leased", "Jobs leased to workers through this server", registry=r
        )
        self.jobs_completed = Counter(
            "replaybook_jobs_completed", "Job outcomes recorded through this server", registry=r
        )
        self.stale_completions = Counter(
            "replaybook_stale_completions",
            "Completions refused because their lease was lost",
            registry=r,
        )
        self.stream_clients = Gauge(
            "replaybook_event_streams", "Open live event streams", registry=r
        )
        self.workers = Gauge("replaybook_workers", "Workers seen recently", registry=r)
        self.schedule_slots = Counter(
            "replaybook_schedule_slots",
            "Schedule slots fired by this server, by outcome (started, failed)",
            ["outcome"],
            registry=r,
        )
        self.hook_requests = Counter(
            "replaybook_hook_requests",
            "Webhook requests, by outcome (started, denied, bad_body)",
            ["outcome"],
            registry=r,
        )

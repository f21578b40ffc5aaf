"""Prometheus metrics of one app (own registry, so several apps in a process stay apart),
and a pure ASGI middleware that times every request (cheaper than BaseHTTPMiddleware)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Requests handled together by one re-score (at most ``serving.event_batch_max``).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: The status nginx logs for a client that closed the connection before the answer: nobody
#: is answered, and it is the caller's doing, not a server error.
CLIENT_CLOSED = 499
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "propensity_requests",
            "HTTP requests",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "propensity_request_seconds",
            "HTTP request latency",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter(
            "propensity_scores",
            "visitors scored in real time, by decided route",
            ("route", "endpoint"),
            registry=self.registry,
        )
        self.events = Counter(
            "propensity_events", "posted events", ("outcome",), registry=self.registry
        )
        # Bound once: ``labels()`` on every event post cost more than the increment.
        self.events_accepted = self.events.labels("accepted")
        self.events_rejected = self.events.labels("rejected")
        self.superseded = Counter(
            "propensity_superseded_writes",
            "re-scored records not stored because newer events arrived meanwhile",
            registry=self.registry,
        )
        self.history_incomplete = Counter(
            "propensity_history_incomplete",
            "real-time re-scores from a stored history that may lack events the model reads "
            "(the live run kept a shorter window than the model's, or the count limit cut it)",
            registry=self.registry,
        )
        self.event_batches = Histogram(
            "propensity_event_batch_size",
            "POST /v1/events requests re-scored together in one batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.explained_on_read = Counter(
            "propensity_explained_on_read",
            "real-time records whose top features were computed at their first lookup",
            registry=self.registry,
        )
        self.model_version = Gauge(
            "propensity_model_info",
            "loaded model (value 1; version in the label)",
            ("version",),
            registry=self.registry,
        )
        self.reloads = Counter(
            "propensity_model_reloads", "model reloads", ("outcome",), registry=self.registry
        )

    def set_model(self, version: str | None) -> None:
        self.model_version.clear()
        if version is not None:
            self.model_version.labels(version=version).set(1)


class RequestRecorder:
    """Counts and times requests by method, route template and status; shared by the
    middleware and the hot routes (``serving.api.hot_routes``), which answer in front of it."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        # labels() costs more than the observation: keep the children per label set.
        self._latency: dict[str, Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.metrics.latency.labels(route)
        latency.observe(seconds)
        key = (method, route, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.metrics.requests.labels(method, route, str(status))
        counter.inc()


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, recorder: RequestRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except ClientDisconnect:
            # Gone mid-body (a chunked body is read inside the route): nobody to answer, so
            # neither a 500 nor an ERROR line in the log.
            status = CLIENT_CLOSED
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.recorder.record(scope["method"], path, status, time.perf_counter() - started)

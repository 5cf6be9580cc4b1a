"""Prometheus metrics of one app instance (its own registry, so tests can make many apps)."""

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10_000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests handled.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "HTTP requests being handled now.", registry=self.registry
        )
        self.predictions = Counter(
            "predictions", "Rows predicted, over all routes.", registry=self.registry
        )
        self.batch_rows = Histogram(
            "model_batch_rows",
            "Rows per model call (after micro-batching; every call counts).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "model_load_seconds", "Time it took to load the model.", registry=self.registry
        )
        self.model = Info("model", "The loaded model.", registry=self.registry)
        self.payload_events = Counter(
            "payload_log_events",
            "Payload log events (PAYLOAD_LOG_URL): sent, failed to send, or dropped unsent "
            "because the queue was full.",
            ["outcome"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one request. The labelled children are looked up once per
        (route, method, status) and kept: `labels()` is too slow to call on every request."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

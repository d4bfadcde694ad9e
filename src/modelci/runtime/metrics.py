"""The server's Prometheus metrics: requests by route and status, latency, batch sizes, in-flight.

With one process the metrics live in the app's own registry. With several uvicorn workers,
`python -m modelci.runtime.server` points `PROMETHEUS_MULTIPROC_DIR` at a fresh folder before
the workers start, prometheus_client then keeps every value in a per-process file, and `/metrics`
(answered by whichever worker gets the scrape) adds up all workers: a scrape never sees one
worker's share.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """Counters and histograms for one app; `render` gives the Prometheus text page."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_VARIABLE) or None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelci_requests",
            "Requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelci_request_duration_seconds",
            "Time from the route being called to the answer being ready, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "modelci_batch_size",
            "Rows per predict call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "modelci_requests_in_flight",
            "Invocations being answered now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # Labelled children are looked up once, not per request.
        self._counters: dict[tuple[str, int], Counter] = {}
        self._latencies: dict[str, Histogram] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self._counters[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = self.latency.labels(route)
        latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric (all workers' in multiprocess mode)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST

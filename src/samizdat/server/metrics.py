"""Prometheus metrics for one node: connections, messages, latency, deliveries.

A private registry per app, so two servers in one test process never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "samizdat_connections", "Authorised WebSocket connections", registry=self.registry
        )
        self.messages = Counter(
            "samizdat_messages_sent",
            "Messages committed (rate() gives messages/s)",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "samizdat_deliveries", "Update frames queued to sockets", registry=self.registry
        )
        self.requests = Counter(
            "samizdat_requests",
            "RPC requests by method and outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "samizdat_send_latency_seconds",
            "messages.send: request received to ack (durable)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "samizdat_commit_batch_size",
            "Sends per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics"]

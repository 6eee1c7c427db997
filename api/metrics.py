"""Prometheus metrics of the API process, on a registry owned by the app (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "sharpeyes_alerts_consumed", "Stream entries turned into alerts", registry=r
        )
        self.duplicates = Counter(
            "sharpeyes_alerts_duplicate", "Redelivered entries that changed nothing", registry=r
        )
        self.cases_created = Counter(
            "sharpeyes_cases_created", "Cases opened from alerts", registry=r
        )
        self.dead_lettered = Counter(
            "sharpeyes_alerts_dead_lettered",
            "Entries moved to the dead-letter stream",
            registry=r,
        )
        # Delivery through the consumer group (api/consumer.py).
        self.reclaimed = Counter(
            "sharpeyes_alerts_reclaimed",
            "Entries taken over (XAUTOCLAIM) after another consumer held them too long",
            registry=r,
        )
        self.handle_failures = Counter(
            "sharpeyes_alerts_handle_failures",
            "Attempts to record an entry that failed (retried until max_deliveries)",
            registry=r,
        )
        self.trimmed = Counter(
            "sharpeyes_alerts_trimmed_unconsumed",
            "Pending entries trimmed from the stream before anyone acknowledged them (lost: "
            "raise redis.maxlen)",
            registry=r,
        )
        self.lag = Gauge(
            "sharpeyes_alert_stream_lag",
            "Entries in the stream not yet delivered to the consumer group",
            registry=r,
        )
        self.pending = Gauge(
            "sharpeyes_alert_stream_pending",
            "Entries delivered to a consumer but not yet acknowledged",
            registry=r,
        )
        self.dead_letters = Gauge(
            "sharpeyes_alert_dead_letters", "Entries in the dead-letter stream", registry=r
        )
        self.delivery_seconds = Histogram(
            "sharpeyes_alert_delivery_seconds",
            "From the frame that raised an alert to its case being committed",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )

"""Prometheus metrics of a pipeline worker, on a registry owned by the worker (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_analysed = Counter(
            "sharpeyes_frames_analysed", "Frames run through the detector", ["camera"], registry=r
        )
        self.batches = Counter("sharpeyes_batches", "Detector calls", registry=r)
        self.batch_size = Histogram(
            "sharpeyes_batch_size",
            "Frames per detector call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "sharpeyes_inference_seconds",
            "Detector time per call",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            "sharpeyes_end_to_end_latency_seconds",
            "Frame capture to analysis result",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_wait_seconds = Histogram(
            "sharpeyes_batch_wait_seconds",
            "Capture of a batch's oldest frame to the batch closing (mailbox + batching wait)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
            registry=r,
        )
        self.inference_errors = Counter(
            "sharpeyes_inference_errors", "Detector calls that raised", registry=r
        )
        self.cameras_waiting = Gauge(
            "sharpeyes_cameras_waiting",
            "Due cameras with a frame left out of the last batch (more than max_batch due)",
            registry=r,
        )
        self.analysis_rate_scale = Gauge(
            "sharpeyes_analysis_rate_scale",
            "Factor applied to every camera's configured analysis rate (1 = as configured; "
            "lower when inference cannot keep up)",
            registry=r,
        )
        self.analysis_rate_scale.set(1.0)
        self.rate_adjustments = Counter(
            "sharpeyes_analysis_rate_adjustments",
            "Changes of the analysis rate scale",
            ["direction"],
            registry=r,
        )
        self.inference_utilisation = Gauge(
            "sharpeyes_inference_utilisation",
            "Share of wall time the inference workers spent in the detector (last window)",
            registry=r,
        )
        self.inference_capacity_fps = Gauge(
            "sharpeyes_inference_capacity_fps",
            "Frames per second the detector sustains, measured over the last window",
            registry=r,
        )
        self.analysis_demand_fps = Gauge(
            "sharpeyes_analysis_demand_fps",
            "Analyses per second all cameras ask for at their configured rates",
            registry=r,
        )
        self.alerts = Counter("sharpeyes_alerts", "Alert events raised", ["kind"], registry=r)
        self.alerts_published = Counter(
            "sharpeyes_alerts_published", "Alert events written to the stream", registry=r
        )
        self.alerts_failed = Counter(
            "sharpeyes_alerts_failed",
            "Alert events dropped undelivered (outbox full or unwritable, unreadable record)",
            registry=r,
        )
        # Delivery through the outbox (alerting/outbox.py): what waited for Redis and when.
        self.alerts_spooled = Counter(
            "sharpeyes_alerts_spooled",
            "Alert events kept in the outbox because Redis could not take them at once",
            registry=r,
        )
        self.alerts_replayed = Counter(
            "sharpeyes_alerts_replayed",
            "Spooled alert events delivered later (also those left by a previous run)",
            registry=r,
        )
        self.alerts_deduplicated = Counter(
            "sharpeyes_alerts_deduplicated",
            "Deliveries Redis already had under the same idempotency key (nothing added)",
            registry=r,
        )
        self.outbox_pending = Gauge(
            "sharpeyes_outbox_pending", "Alert events waiting in the outbox", registry=r
        )
        self.outbox_bytes = Gauge("sharpeyes_outbox_bytes", "Size of the outbox file", registry=r)
        self.outbox_lag_seconds = Gauge(
            "sharpeyes_outbox_lag_seconds",
            "How long the oldest event in the outbox has waited for Redis (0 when empty)",
            registry=r,
        )
        self.outbox_snapshots_dropped = Counter(
            "sharpeyes_outbox_snapshots_dropped",
            "Snapshots not kept with a spooled event (outbox past its snapshot budget)",
            registry=r,
        )
        self.delivery_errors = Counter(
            "sharpeyes_alert_delivery_errors",
            "Failed attempts to hand an event to Redis (each is retried from the outbox)",
            registry=r,
        )
        self.cameras_live = Gauge(
            "sharpeyes_cameras_live", "Cameras currently delivering frames", registry=r
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP for Prometheus."""
        start_http_server(port, addr=host, registry=self.registry)

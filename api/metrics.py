"""Prometheus metrics of the API process, on a registry owned by the app (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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

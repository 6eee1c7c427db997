"""The alert event contract between pipeline and API, and its delivery through Redis Streams.

Imports nothing else of SharpEyes: both the pipeline (producer) and the API (consumer)
depend on this package.
"""

from alerting.events import AlertEvent, EventKind, Severity

__all__ = ["AlertEvent", "EventKind", "Severity"]

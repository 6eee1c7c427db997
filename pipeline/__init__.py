"""The running analysis service: scheduling, batching, zone geometry, gathering rules.

May import camera_adapters, models and alerting; never the API.
"""

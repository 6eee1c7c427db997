"""The linkage-centre dispatch service (FastAPI): alert consumer, cases, live feed.

May import alerting and camera_adapters (specs only); never the pipeline or the inference
stack, so the API starts fast and runs on machines without models.
"""

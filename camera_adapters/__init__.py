"""Frame sources (RTSP, files; ONVIF discovery) and the camera specification.

Imports nothing else of SharpEyes; the pipeline and the API (for specs only) depend on it.
"""

from camera_adapters.frames import Frame
from camera_adapters.spec import CameraSpec, Location
from camera_adapters.zone_spec import GatheringThresholds, ZoneSpec

__all__ = ["CameraSpec", "Frame", "GatheringThresholds", "Location", "ZoneSpec"]

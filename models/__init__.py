"""Person detectors behind one small interface, their model files and checksums.

Imports nothing else of SharpEyes: the pipeline and the benchmarks depend on this package,
never the other way round.
"""

from models.detections import Detections
from models.detector import Detector

__all__ = ["Detections", "Detector"]

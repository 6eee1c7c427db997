"""A minimal ONVIF test camera: SOAP device + Media + Media2 services and WS-Discovery.

No installable ONVIF simulator fits the tests' rules (ipycam binds every interface and answers
WS-Discovery without the ProbeMatches wrapper), so this one follows the standards closely
enough that the real client libraries (onvif-zeep-async, wsdiscovery) work against it.
``python -m tests.onvif_device --help`` runs it by hand.
"""

from tests.onvif_device.device import DeviceConfig, OnvifTestDevice, Profile
from tests.onvif_device.discovery import DiscoveryResponder

__all__ = ["DeviceConfig", "DiscoveryResponder", "OnvifTestDevice", "Profile"]

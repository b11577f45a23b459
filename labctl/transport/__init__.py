"""How commands reach a host: locally, inside a simulated host's namespaces, or over SSH.

Every transport offers the same small interface (see base.Transport), so the
OVS, controller and verify code runs unchanged over any of them.
"""

from labctl.transport.base import Completed, Transport
from labctl.transport.local import LocalTransport
from labctl.transport.netns import NetnsTransport

__all__ = ["Completed", "LocalTransport", "NetnsTransport", "Transport"]

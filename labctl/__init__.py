"""labctl — Open vSwitch + OpenFlow testbeds from one inventory file."""

__version__ = "0.1.0"

"""Fan-out between nodes: the Bus port, an in-process adapter (default) and NATS."""

from samizdat.bus.events import BusEvent, ChatChanged, DevicesRevoked, Push
from samizdat.bus.memory import InProcessBus
from samizdat.bus.ports import Bus

__all__ = ["Bus", "BusEvent", "ChatChanged", "DevicesRevoked", "InProcessBus", "Push"]

"""`kubeguard.sensors.proc`: the name the agent imports the fallback sensor by (see proc_connector)."""

from kubeguard.sensors.proc_connector import ProcConnectorSensor

__all__ = ["ProcConnectorSensor"]

"""Kernel sensors: bpftrace tracepoints, the netlink process connector, fanotify.

Every sensor follows the contract in `kubeguard.sensors.base` and emits `kubeguard.model.Event`
dicts keyed by Falco field names.
"""

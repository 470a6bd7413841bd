"""container.mount.* fields as libsinsp gives them (the container's mounts come from the pod source)."""

from __future__ import annotations

from kubeguard.rules.falco_fields import indexed

MOUNTS = [{"source": "/var/run/docker.sock", "dest": "/var/run/docker.sock", "mode": "", "rdwr": "true",
           "propagation": "rprivate"}]


def test_mount_dest_by_source_glob_and_not_found() -> None:
    event = {"container.mounts": MOUNTS}
    assert indexed(event, "container.mount.dest", "/var/run/docker.sock") == "/var/run/docker.sock"
    assert indexed(event, "container.mount.dest", "/proc*") == "N/A"  # known mounts, none from /proc
    assert indexed({}, "container.mount.dest", "/proc*") is None  # mounts unknown
    assert indexed(event, "container.mount", "0") == "/var/run/docker.sock:/var/run/docker.sock::true:rprivate"

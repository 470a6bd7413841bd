"""Quarantine a pod: cut it off the network with nftables and, optionally, freeze it (cgroup.freeze).

One nftables table, ``inet kubeguard_quarantine``, holds two sets: the pods' host-side interfaces
(``ifaces``) and their addresses (``addrs``). Its forward, input and output chains drop anything
from or to them, so the pod reaches nothing (other pods, the node, the outside) and nothing reaches
it, whatever the CNI routes through. Releasing removes the pod's elements, and the table with the
last of them (a lock file serialises quarantine and release, so a release never deletes a table another
process has just filled). Freezing writes 1 to the pod cgroup's ``cgroup.freeze`` (every container of the
pod stops where it is); releasing writes 0. Both are reversible and idempotent.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubeguard.cluster.cgroups import find_cgroup2_root
from kubeguard.cluster.podmap import PodMap

TABLE = "kubeguard_quarantine"
LOCK = Path("/run/kubeguard-quarantine.lock")
RULESET = f"""
table inet {TABLE} {{
  set ifaces {{ type ifname; }}
  set addrs {{ type ipv4_addr; }}
  chain forward {{ type filter hook forward priority -10; policy accept;
    iifname @ifaces drop
    oifname @ifaces drop
    ip saddr @addrs drop
    ip daddr @addrs drop
  }}
  chain input {{ type filter hook input priority -10; policy accept;
    iifname @ifaces drop
    ip saddr @addrs drop
  }}
  chain output {{ type filter hook output priority -10; policy accept;
    oifname @ifaces drop
    ip daddr @addrs drop
  }}
}}
"""


class QuarantineError(Exception):
    """nft failed, or the pod's interface / cgroup cannot be found; one line."""


@dataclass(frozen=True)
class Target:
    """What is cut off: the pod's address, its host-side interface (when routed to one), its cgroup."""

    ip: str
    interface: str
    cgroup_dir: Path | None


def target_of(podmap: PodMap, namespace: str, name: str) -> Target:
    """The quarantine target of pod NAMESPACE/NAME in `podmap`; LookupError (one line) when it is not there
    or has no IPv4 address (host network pods cannot be quarantined)."""
    found = next((w for w in podmap.by_pod_uid.values() if w.namespace == namespace and w.pod == name), None)
    if found is None:
        raise LookupError(f"{namespace}/{name}: no such pod in the pods map")
    ip = next((addr for addr, w in podmap.by_ip.items() if w.pod_uid == found.pod_uid and ":" not in addr), "")
    if not ip:
        raise LookupError(f"{namespace}/{name}: the pod has no IPv4 address"
                          " (host network pods cannot be quarantined)")
    return Target(ip, interface_of(ip), pod_cgroup(found.pod_uid, find_cgroup2_root()))


def _nft(script: str) -> None:
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if nft is None:
        raise QuarantineError("nft not found (install Debian's nftables)")
    done = subprocess.run([nft, "-f", "-"], input=script, capture_output=True, text=True)
    if done.returncode != 0:
        raise QuarantineError(f"nft: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")


def interface_of(ip: str) -> str:
    """The host-side interface the node routes `ip` through (a pod's veth with routed CNIs)."""
    done = subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True, text=True)
    try:
        routes = json.loads(done.stdout) if done.returncode == 0 else []
    except ValueError:
        routes = []
    dev = str(routes[0].get("dev", "")) if routes else ""
    if not dev or dev == "lo" or Path(f"/sys/class/net/{dev}/bridge").exists():
        return ""  # a bridge carries other pods too: the address set alone isolates this pod
    return dev


def pod_cgroup(pod_uid: str, root: Path | None) -> Path | None:
    """The pod-level cgroup v2 directory (``.../pod<uid>`` or the systemd ``pod<uid_with_underscores>``)."""
    if root is None or not pod_uid:
        return None
    names = {f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}"}
    for dirpath, dirs, _files in os.walk(root):
        for name in dirs:
            if name in names or name.removesuffix(".slice").rsplit("-", 1)[-1] in names:
                return Path(dirpath, name)
    return None


@contextmanager
def _table_lock() -> Iterator[None]:
    """Held while the table is changed (a no-op lock when /run is not writable: the change itself is atomic)."""
    try:
        handle = open(LOCK, "a")  # noqa: SIM115 - held for the with block
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def quarantine(target: Target, freeze: bool) -> None:
    """Cut the pod off (and freeze it when asked)."""
    elements = f"add element inet {TABLE} addrs {{ {target.ip} }}\n"
    if target.interface:
        elements += f"add element inet {TABLE} ifaces {{ \"{target.interface}\" }}\n"
    with _table_lock():
        _nft(RULESET + elements)
    if freeze:
        set_frozen(target, True)


def release(target: Target) -> None:
    """Undo `quarantine` (network and freeze); fine when the pod was not quarantined."""
    with _table_lock():
        _nft(RULESET)  # the table exists, so the deletes below can name it
        for script in (f"delete element inet {TABLE} addrs {{ {target.ip} }}",
                       f"delete element inet {TABLE} ifaces {{ \"{target.interface}\" }}" if target.interface else ""):
            if script:
                try:
                    _nft(script)
                except QuarantineError:
                    pass  # not in the set
        if not quarantined_elements():
            _nft(f"delete table inet {TABLE}")
    if target.cgroup_dir is not None and (target.cgroup_dir / "cgroup.freeze").exists():
        set_frozen(target, False)


def set_frozen(target: Target, frozen: bool) -> None:
    if target.cgroup_dir is None:
        raise QuarantineError("cannot freeze: the pod's cgroup was not found on this node")
    try:
        (target.cgroup_dir / "cgroup.freeze").write_text("1" if frozen else "0")
    except OSError as exc:
        raise QuarantineError(f"{target.cgroup_dir}/cgroup.freeze: {exc.strerror}") from exc


def quarantined_elements() -> list[str]:
    """Every address and interface in the quarantine sets ([] when the table does not exist)."""
    done = subprocess.run(["nft", "-j", "list", "table", "inet", TABLE], capture_output=True, text=True)
    if done.returncode != 0:
        return []
    try:
        items = json.loads(done.stdout).get("nftables", [])
    except ValueError:
        return []
    return [str(e) for item in items if isinstance(item, dict) and "set" in item
            for e in item["set"].get("elem", [])]


def is_quarantined(ip: str) -> bool:
    done = subprocess.run(["nft", "-j", "list", "set", "inet", TABLE, "addrs"], capture_output=True, text=True)
    if done.returncode != 0:
        return False
    return f'"{ip}"' in done.stdout

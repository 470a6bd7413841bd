"""Enrichment: cgroup id -> container -> pod fields, host processes, ancestry, user names, pods-file reload."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kubeguard.agent.enrich import Enricher, split_image
from kubeguard.agent.podsource import FilePodSource, PodSourceError
from kubeguard.agent.proctable import ProcessTable
from kubeguard.cluster.cgroups import CgroupResolver
from kubeguard.model import Event

CID = "ab12" * 16
UID = "0f0e0d0c-0b0a-4909-8807-060504030201"


def pod(name: str, cid: str, uid: str, ip: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "labels": {"app": name}},
        "spec": {"serviceAccountName": "web-sa", "nodeName": "node-1",
                 "containers": [{"name": "app", "image": "registry.example/shop/web:2.1"}]},
        "status": {"podIP": ip, "containerStatuses": [
            {"name": "app", "image": "registry.example/shop/web:2.1", "containerID": f"containerd://{cid}"}]},
    }


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Enricher, int, int, Path]:
    root = tmp_path / "cgroup"
    container = root / "kubepods" / "besteffort" / f"pod{UID}" / CID
    container.mkdir(parents=True)
    host = root / "system.slice" / "sshd.service"
    host.mkdir(parents=True)
    pods_file = tmp_path / "pods.json"
    pods_file.write_text(json.dumps({"kind": "List", "items": [pod("web", CID, UID, "10.1.0.5")]}))
    source = FilePodSource(pods_file, min_refresh=0.0)
    source.refresh(force=True)
    enricher = Enricher(source, CgroupResolver(root=root, refresh_interval=0.0),
                        ProcessTable(proc=Path("/nonexistent")), node="node-1")
    return enricher, os.stat(container).st_ino, os.stat(host).st_ino, pods_file


def test_container_event_gets_pod_identity_and_ancestry(setup) -> None:
    enricher, container_ino, _, _ = setup
    for pid, ppid, name in ((500, 1, "containerd-shim"), (501, 500, "bash"), (502, 501, "cat")):
        enricher.enrich(Event({"evt.type": "execve", "evt.dir": "<", "proc.pid": pid, "proc.ppid": ppid,
                               "proc.name": name, "proc.args": "", "user.uid": 0, "_cgroup_id": container_ino}))
    event = enricher.enrich(Event({"evt.type": "openat", "proc.pid": 502, "proc.name": "cat", "user.uid": 0,
                                   "fd.name": "/etc/shadow", "_cgroup_id": container_ino}))
    assert event["container.id"] == CID
    assert (event["k8s.ns.name"], event["k8s.pod.name"], event["k8s.pod.uid"]) == ("shop", "web", UID)
    assert event["k8s.pod.labels"] == {"app": "web"}
    assert event["k8s.pod.sa"] == "web-sa"
    assert (event["container.image.repository"], event["container.image.tag"]) == ("registry.example/shop/web", "2.1")
    assert event["proc.pname"] == "bash"
    assert event["proc.aname"][:3] == ["cat", "bash", "containerd-shim"]
    assert event["proc.apid"][:3] == [502, 501, 500]
    assert event["user.name"] == "root"
    assert event.workload is not None and event.workload.pod == "web"


def test_host_process_gets_container_id_host(setup) -> None:
    enricher, _, host_ino, _ = setup
    event = enricher.enrich(Event({"evt.type": "execve", "proc.pid": 700, "proc.ppid": 1, "proc.name": "sshd",
                                   "_cgroup_id": host_ino}))
    assert event["container.id"] == "host"
    assert "k8s.pod.name" not in event
    assert event["k8s.node.name"] == "node-1"


def test_cgroup_path_wins_and_unknown_container_keeps_its_id(setup) -> None:
    enricher, _, _, _ = setup
    other = "cd34" * 16
    event = enricher.enrich(Event({"evt.type": "execve", "proc.pid": 800, "proc.ppid": 1, "proc.name": "x",
                                   "_cgroup_path": f"/kubepods/pod{UID}/{other}"}))
    assert event["container.id"] == other
    # same pod uid: identity comes from the pod even when the container is not listed yet
    assert event["k8s.pod.name"] == "web"


def test_pods_file_is_reloaded_when_a_new_pod_appears(setup, tmp_path: Path) -> None:
    enricher, _, _, pods_file = setup
    new_cid, new_uid = "ef56" * 16, "11111111-2222-4333-8444-555555555555"
    time.sleep(0.01)
    pods_file.write_text(json.dumps({"kind": "List", "items": [pod("web", CID, UID, "10.1.0.5"),
                                                               pod("api", new_cid, new_uid, "10.1.0.6")]}))
    os.utime(pods_file, (time.time() + 5, time.time() + 5))
    event = enricher.enrich(Event({"evt.type": "execve", "proc.pid": 900, "proc.ppid": 1, "proc.name": "api",
                                   "_cgroup_path": f"/kubepods/besteffort/pod{new_uid}/{new_cid}"}))
    assert event["k8s.pod.name"] == "api"


def test_a_container_s_fields_follow_the_pods_when_they_are_read_again(setup) -> None:
    enricher, container_ino, _, pods_file = setup

    def labels() -> object:
        return enricher.enrich(Event({"evt.type": "execve", "proc.pid": 950, "proc.ppid": 1, "proc.name": "x",
                                      "_cgroup_id": container_ino}))["k8s.pod.labels"]

    assert labels() == {"app": "web"} and labels() == {"app": "web"}  # the second from the container's entry
    relabelled = pod("web", CID, UID, "10.1.0.5")
    relabelled["metadata"]["labels"] = {"app": "web", "track": "canary"}  # type: ignore[index]
    pods_file.write_text(json.dumps({"kind": "List", "items": [relabelled]}))
    os.utime(pods_file, (time.time() + 5, time.time() + 5))
    assert enricher.pods.refresh(force=True)
    assert labels() == {"app": "web", "track": "canary"}


def test_broken_pods_file_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "pods.json"
    broken.write_text("{not json")
    with pytest.raises(PodSourceError, match=r"pods.json: not JSON"):
        FilePodSource(broken).load()
    source = FilePodSource(broken)
    assert source.refresh(force=True) is False
    assert "not JSON" in source.last_error


def test_split_image() -> None:
    assert split_image("nginx") == ("nginx", "")
    assert split_image("localhost:5000/app:1.2") == ("localhost:5000/app", "1.2")
    assert split_image("localhost:5000/app") == ("localhost:5000/app", "")
    assert split_image("repo/app@sha256:abcd") == ("repo/app", "")


def test_setuid_events_carry_the_uid_before_the_change(setup) -> None:
    enricher, container_ino, _, _ = setup
    enricher.enrich(Event({"evt.type": "execve", "proc.pid": 950, "proc.ppid": 1, "proc.name": "suid",
                           "user.uid": 65534, "_cgroup_id": container_ino}))
    up = enricher.enrich(Event({"evt.type": "setresuid", "proc.pid": 950, "evt.rawres": 0, "evt.arg.ruid": 0,
                                "evt.arg.euid": 0, "user.uid": 0, "_cgroup_id": container_ino}))
    assert up["user.uid"] == 65534  # who asked: the rule "non-root becomes root" needs this
    again = enricher.enrich(Event({"evt.type": "setuid", "proc.pid": 950, "evt.rawres": 0, "evt.arg.uid": 1000,
                                   "user.uid": 1000, "_cgroup_id": container_ino}))
    assert again["user.uid"] == 0  # the table learnt the change
    denied = enricher.enrich(Event({"evt.type": "setuid", "proc.pid": 950, "evt.rawres": -1, "evt.arg.uid": 0,
                                    "user.uid": 1000, "_cgroup_id": container_ino}))
    assert denied["user.uid"] == 1000


@pytest.mark.parametrize("duration_types", [None, frozenset({"openat"})])
def test_proc_duration_from_proc_start_or_exec_time(tmp_path: Path, duration_types: frozenset[str] | None) -> None:
    """proc.duration: since the process's creation (/proc/PID/stat start time); a process gone before its exec is
    processed counts from that exec; proc.tty is a process field on every event. When the loaded rules read it on
    opens only, an exec reads nothing from /proc and carries no proc.duration, and the opens get the same values."""
    proc = tmp_path / "proc"
    (proc / "700").mkdir(parents=True)
    ticks = os.sysconf("SC_CLK_TCK")
    started = time.clock_gettime(time.CLOCK_BOOTTIME) - 10  # created 10 s ago
    (proc / "700" / "stat").write_text(f"700 (nginx) S 1 {' '.join(['0'] * 17)} {int(started * ticks)} 0 0\n")
    enricher = Enricher(FilePodSource(tmp_path / "none.json"), CgroupResolver(root=tmp_path, refresh_interval=0.0),
                        ProcessTable(proc=proc))
    enricher.read_duration = True
    enricher.duration_types = duration_types
    reads: list[int] = []
    started_ns = enricher.procs.started_ns
    enricher.procs.started_ns = lambda info: reads.append(info.pid) or started_ns(info)  # type: ignore[method-assign]
    now = time.time_ns()
    for pid in (700, 701):  # 701 has no /proc entry any more
        ex = enricher.enrich(Event({"evt.type": "execve", "evt.dir": "<", "evt.rawres": 0, "evt.time": now - 10**9,
                                    "proc.pid": pid, "proc.ppid": 1, "proc.name": "nginx", "proc.tty": 34816}))
        assert ("proc.duration" in ex) == (duration_types is None)
    assert reads == ([700, 701] if duration_types is None else [])
    old, gone = (enricher.enrich(Event({"evt.type": "openat", "evt.time": now, "proc.pid": pid,
                                        "fd.name": "/etc/shadow"})) for pid in (700, 701))
    assert 9.5e9 < old["proc.duration"] < 10.5e9
    assert gone["proc.duration"] == 10**9
    assert (old["proc.tty"], gone["proc.tty"]) == (34816, 34816)


def test_container_mounts_from_host_path_volumes(tmp_path: Path) -> None:
    spec = pod("dind", CID, UID, "10.1.0.9")
    spec["spec"]["volumes"] = [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "sock", "mountPath": "/run/docker.sock",
                                                      "readOnly": True}]
    pods_file = tmp_path / "pods.json"
    pods_file.write_text(json.dumps({"kind": "List", "items": [spec]}))
    source = FilePodSource(pods_file, min_refresh=0.0)
    source.refresh(force=True)
    assert source.mounts(CID) == [{"source": "/var/run/docker.sock", "dest": "/run/docker.sock", "mode": "ro",
                                   "rdwr": "false", "propagation": "rprivate"}]
    assert source.mounts("ff" * 32) is None

"""PodCgroupWatch: the pod cgroups the kubelet makes, both drivers' names, on a plain directory tree (inotify)."""

from __future__ import annotations

import select
from pathlib import Path

from kubeguard.policy.podwatch import PodCgroupWatch, pod_uid

UID = "7fbe70de-edbd-4441-b667-c2db3af34e65"
UID2 = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def made(watch: PodCgroupWatch) -> list[tuple[str, str]]:
    select.select([watch], [], [], 10)
    return watch.read()


def test_pod_uid_from_both_drivers_names() -> None:
    assert pod_uid(f"pod{UID}") == UID
    assert pod_uid(f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice") == UID
    assert pod_uid("besteffort") == pod_uid("kubepods.slice") == ""
    assert pod_uid("cri-containerd-" + "ab" * 32 + ".scope") == ""


def test_pod_cgroups_are_reported_as_they_are_made(tmp_path: Path) -> None:
    (tmp_path / "kubepods" / "besteffort").mkdir(parents=True)
    (tmp_path / "system.slice").mkdir()
    watch = PodCgroupWatch(str(tmp_path))
    try:
        assert watch.read() == []
        pod = tmp_path / "kubepods" / "besteffort" / f"pod{UID}"
        pod.mkdir()
        assert made(watch) == [(UID, str(pod))]
        (pod / ("ab" * 32)).mkdir()  # a container: below a pod, not watched
        (tmp_path / "system.slice" / f"pod{UID2}").mkdir()  # outside kubepods
        assert watch.read() == []
        # the systemd driver's tree, made after the watch started: watched as it appears
        qos = tmp_path / "kubepods.slice" / "kubepods-burstable.slice"
        qos.parent.mkdir()
        assert made(watch) == []
        qos.mkdir()
        assert made(watch) == []
        slice_ = qos / f"kubepods-burstable-pod{UID2.replace('-', '_')}.slice"
        slice_.mkdir()
        assert made(watch) == [(UID2, str(slice_))]
        guaranteed = tmp_path / "kubepods.slice" / f"kubepods-pod{UID.replace('-', '_')}.slice"
        guaranteed.mkdir()  # a Guaranteed pod sits right below kubepods
        assert made(watch) == [(UID, str(guaranteed))]
    finally:
        watch.close()

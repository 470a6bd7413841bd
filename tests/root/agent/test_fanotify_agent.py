"""As root: the agent runs fanotify next to its process sensor; writes below /etc and binary dirs from
a pod raise the write rules with the pod's identity, once, and writes elsewhere raise nothing."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentlab import AgentProcess, describe
from podlab import Pod, PodLab
from roothelpers import require

pytestmark = pytest.mark.root
PYTHON = os.path.realpath(sys.executable)
ETC_RULE = "Write below etc in container"
BIN_RULE = "Write below binary dir"
# The writer keeps its file open a moment, as an editor or a dropper does: fanotify reports the write
# with the writer's fd (fd.num), which the write rules require, while the writer is still there.
WRITER = "import sys, time\nf = open(sys.argv[1], 'a')\nf.write('x\\n'); f.flush()\ntime.sleep(1.0)\nf.close()\n"


def start(tmp_path: Path, podlab: PodLab, sensor: str) -> AgentProcess:
    if sensor == "ebpf":
        require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor)")
    pods = podlab.write_pods(tmp_path / "pods.json")
    try:
        agent = AgentProcess.start(tmp_path / "agent", pods, sensor=sensor)
    except RuntimeError as exc:
        require(False, f"a running agent with the {sensor} sensor ({exc})")
        raise
    # the agent announces its sensors one line after the other: the process sensor's line (which `start` waits
    # for) may be read before the fanotify sensor's is written
    deadline = time.monotonic() + 30
    while "sensor fanotify running" not in agent.stderr() and agent.proc.poll() is None \
            and time.monotonic() < deadline and "file writes are seen by" not in agent.stderr():
        time.sleep(0.05)
    if "sensor fanotify running" not in agent.stderr():
        agent.stop()  # a failing start must not leave the agent running
        require(False, f"the fanotify sensor in the agent ({agent.stderr()})")
    return agent


@pytest.fixture
def targets() -> Iterator[dict[str, Path]]:
    tag = secrets.token_hex(4)
    paths = {"etc": Path(f"/etc/kgfan-{tag}.conf"), "bin": Path(f"/usr/local/bin/kgfan-{tag}"),
             "tmp": Path(f"/tmp/kgfan-{tag}.txt")}
    yield paths
    for path in paths.values():
        path.unlink(missing_ok=True)


def write(pod: Pod, path: Path) -> None:
    assert pod.run([PYTHON, "-c", WRITER, str(path)]).returncode == 0


def assert_identity(alert: dict, pod: Pod, path: Path) -> None:
    fields = alert["output_fields"]
    assert (fields["k8s.ns.name"], fields["k8s.pod.name"], fields["container.id"]) == (
        pod.namespace, pod.name, pod.container_id)
    assert fields["fd.name"] == str(path)


def test_proc_sensor_plus_fanotify_sees_writes_below_etc_and_bin_dirs(podlab: PodLab, tmp_path: Path,
                                                                       targets: dict[str, Path]) -> None:
    # The proc connector sees no file activity at all: these alerts can only come from fanotify.
    pod = podlab.pod("cfg", namespace="ops")
    agent = start(tmp_path, podlab, "proc")
    try:
        write(pod, targets["etc"])
        alert = agent.wait_alert(ETC_RULE, pod.container_id)
        assert alert is not None, describe(agent.alerts_for(pod.container_id))
        assert_identity(alert, pod, targets["etc"])
        write(pod, targets["bin"])
        alert = agent.wait_alert(BIN_RULE, pod.container_id)
        assert alert is not None, describe(agent.alerts_for(pod.container_id))
        assert_identity(alert, pod, targets["bin"])
    finally:
        agent.stop()


def test_one_write_seen_by_ebpf_and_fanotify_alerts_once_and_tmp_writes_none(podlab: PodLab, tmp_path: Path,
                                                                            targets: dict[str, Path]) -> None:
    pod = podlab.pod("app", namespace="shop")
    agent = start(tmp_path, podlab, "ebpf")
    try:
        write(pod, targets["tmp"])
        write(pod, targets["etc"])
        alert = agent.wait_alert(ETC_RULE, pod.container_id)
        assert alert is not None, describe(agent.alerts_for(pod.container_id))
        assert_identity(alert, pod, targets["etc"])
        time.sleep(3.0)  # both sensors have delivered by now
    finally:
        agent.stop()
    got = agent.alerts_for(pod.container_id)
    assert [a["rule"] for a in got] == [ETC_RULE], describe(got)

"""A container the exec guard's plan does not know yet, in a pod whose cgroup is in the plan (a new replica's or a
restarted container's, before the kubelet reports its container ID): its execs are held at exec (SIGSTOP, before
the new image's first instruction) and reported (``N`` lines) until the container is planned; then killed, or
judged by the answerer. The runtime's own exec into the cgroup (from the runtime's mount namespace) is not held."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from agentlab import AgentProcess, describe
from podlab import Pod, PodLab
from roothelpers import require
from test_policy_root import deviations, start_agent, wait_line
from test_short_lived_root import build

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.cluster.podmap import PodMap
from kubeguard.lab.pods import NSENTER, extra_container, remove_extra_container
from kubeguard.policy.containerfs import host_mount_ns
from kubeguard.policy.enforce import Enforcer
from kubeguard.policy.execguard import ExecGuard, GuardedCgroup
from kubeguard.policy.policy_engine import PolicyEngine
from kubeguard.policy.store import PolicyStore

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("exec_guard_backend")]  # both backends (conftest.py)
TRUE = os.path.realpath(shutil.which("true") or "/usr/bin/true")
HELD_TIMEOUT = 60.0  # a held exec is reported within this (generous: two busy cores)


def test_execs_in_an_unplanned_container_of_a_guarded_pod_are_held(podlab: PodLab) -> None:
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    guard = ExecGuard()
    held: queue.Queue[tuple[int, int]] = queue.Queue()
    guard.on_new_container = lambda pid, cgroup: held.put((pid, cgroup))
    extra: Pod | None = None
    try:
        _spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        pod = podlab.pod("newcomer", mount_ns=True)
        pod_cgroup = os.stat(pod.cgroup_v2.parent).st_ino
        plan = [GuardedCgroup(pod_cgroup, pod=True, runtime_mount_ns=host_mount_ns())]
        guard.apply(plan)
        extra = extra_container(pod)

        # a binary outside any plan, in the unplanned container: held; the agent's answer here is a kill
        run = extra.popen([str(marker), str(markers)])
        pid, cgroup = held.get(timeout=HELD_TIMEOUT)
        assert (pid, cgroup) == (run.pid, extra.cgroup_id)  # the wrapper's shell exec'd itself into the marker
        guard.kill_held(pid)
        assert run.wait(timeout=30) == -signal.SIGKILL
        assert list(markers.iterdir()) == [], "the held binary ran its own code"

        # an allowed binary: held too, then released by the answerer once its container is planned
        run = extra.popen([TRUE])
        pid, cgroup = held.get(timeout=HELD_TIMEOUT)
        plan = [*plan, GuardedCgroup(cgroup, frozenset({os.stat(TRUE).st_ino}))]
        guard.apply(plan)
        assert guard.judge_held(pid, cgroup)
        assert run.wait(timeout=30) == 0

        # planned now: the kernel decides at once, nothing more is held
        kills = guard.kills
        assert extra.run([str(marker), str(markers)]).returncode == -signal.SIGKILL
        assert extra.run([TRUE]).returncode == 0
        deadline = time.monotonic() + HELD_TIMEOUT
        while guard.kills < kills + 1:  # its K line
            assert time.monotonic() < deadline, "the kernel's kill was not reported"
            time.sleep(0.05)
        assert list(markers.iterdir()) == []
        assert held.empty() and guard.new_holds == 2

        # the runtime's own exec into the pod's other container (from the host's mount namespace, as runc init
        # is): not held; the same binary from the container's mount namespace is
        procs = pod.cgroup_v2 / "cgroup.procs"
        runtime = subprocess.run([NSENTER, f"--net=/run/netns/{pod.netns}", "--", "sh", "-c",
                                  f'echo $$ > {procs} && exec "$@"', "kg-runtime", TRUE], timeout=60)
        assert runtime.returncode == 0 and held.empty()
        run = pod.popen([TRUE])
        pid, cgroup = held.get(timeout=HELD_TIMEOUT)
        assert cgroup == pod.cgroup_id
        guard.kill_held(pid)
        assert run.wait(timeout=30) == -signal.SIGKILL

        # the pod out of the plan: nothing is held any more
        guard.apply(plan[1:])
        assert pod.run([TRUE]).returncode == 0 and held.empty()
    finally:
        guard.close()
        if extra is not None:
            remove_extra_container(extra)
        shutil.rmtree(work, ignore_errors=True)


POLICY = f"""apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {{name: deployment-web, namespace: shop}}
spec:
  workload: {{kind: Deployment, name: web}}
  mode: protect
  processes: [{{path: "{os.path.dirname(TRUE)}/*"}}]
"""


def policy_store(tmp_path: Path) -> PolicyStore:
    """A policy directory holding POLICY, opened."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY)
    store = PolicyStore(policies)
    store.open()
    return store


def replica_of(podlab: PodLab, app: str, template: str, suffix: str) -> Pod:
    """A pod of Deployment `app` in namespace shop (through its ReplicaSet), with its own mount namespace."""
    return podlab.pod(f"{app}-{template}-{suffix}", namespace="shop", owner=("ReplicaSet", f"{app}-{template}"),
                      labels={"app": app, "pod-template-hash": template}, mount_ns=True)


def blocked_alert(agent: AgentProcess, container_id: str, marker: Path, workload: str, pod_name: str) -> dict:
    """The one deviation alert for the marker binary's exec in the container (waited for): `blocked`, in protect,
    naming the workload and the pod."""
    deadline = time.monotonic() + 60
    while not (found := [a for a in deviations(agent, container_id)
                         if a["output_fields"].get("proc.exepath") == str(marker)]):
        assert time.monotonic() < deadline, describe(agent.alerts())
        time.sleep(0.2)
    (alert,) = found
    fields = alert["output_fields"]
    shown = {k: v for k, v in fields.items() if k.startswith(("policy", "k8s"))}
    assert fields["policy.action"] == "blocked" and fields["policy.workload"] == workload, shown
    assert fields["k8s.pod.name"] == pod_name and fields["policy.mode"] == "protect"
    return alert


def process_state(pid: int) -> str:
    """The state letter of process `pid` (`T` or `t`: stopped)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def listed_creating(pod: Pod) -> dict:
    """The pod as the kubelet lists it before its container has started (no container ID reported yet)."""
    creating = pod.pod_object()
    creating["status"]["containerStatuses"][0].pop("containerID")
    creating["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    return creating


def enforced(work: Path, messages: list[str]) -> tuple[Path, Path]:
    """The marker binary and the directory of its markers, once the enforcer says protect is enforced."""
    _spawner, marker = build(work)
    markers = work / "markers"
    markers.mkdir()
    deadline = time.monotonic() + 120
    while not any("shop/Deployment/web protect enforced" in m for m in messages):
        assert time.monotonic() < deadline, f"protect was not enforced: {messages}"
        time.sleep(0.05)
    return marker, markers


def test_the_enforcer_guards_a_new_container_from_its_first_exec(podlab: PodLab, tmp_path: Path) -> None:
    """A container of a protected pod that the pods map does not list (a restarted or new one; or the container of a
    new replica whose status has no container ID yet): its first exec of a dropped binary is killed, allowed execs
    run, and the container stays planned over the next syncs."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    pod = podlab.pod("web-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                     labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
    replica = podlab.pod("web-5f6d7-z9x8c", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                         labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
    creating = listed_creating(replica)
    store = policy_store(tmp_path)
    podmap = PodMap.from_pods([pod.pod_object(), creating])
    messages: list[str] = []
    engine = PolicyEngine(store, lambda: podmap)
    enforcer = Enforcer(engine, lambda: podmap, messages.append, interval=0.5)
    enforcer.start()
    extras: list[Pod] = []
    try:
        marker, markers = enforced(work, messages)
        first = extra_container(pod)
        extras.append(first)
        assert first.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
        assert list(markers.iterdir()) == [], "the dropped binary ran in the new container"
        assert enforcer.new_container_kills == 1 and first.cgroup_id in engine.guarded_cgroups
        second = extra_container(pod)
        extras.append(second)
        assert second.run([TRUE], timeout=60).returncode == 0  # held, judged allowed, released
        failed = [r.returncode for r in (c.run([TRUE], timeout=60) for c in (first, second) for _ in range(50))
                  if r.returncode != 0]
        assert failed == [], f"{len(failed)} allowed runs failed: {messages}"
        holds = enforcer.exec_guard.new_holds
        assert holds == 2  # one per new container: planned after it, decided in the kernel
        syncs = time.monotonic() + 2.0  # several syncs: the unlisted containers stay in the plan
        while time.monotonic() < syncs:
            time.sleep(0.1)
        for container in (first, second):
            assert container.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
            assert container.run([TRUE], timeout=60).returncode == 0
        assert list(markers.iterdir()) == [] and enforcer.exec_guard.new_holds == holds
        # the new replica's container (its pod cgroup found by the pod uid in its name)
        assert replica.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
        assert replica.run([TRUE], timeout=60).returncode == 0
        assert list(markers.iterdir()) == [] and enforcer.new_container_kills == 2
        assert enforcer.exec_guard.new_holds == holds + 1 and replica.cgroup_id in engine.guarded_cgroups
        gone = first.cgroup_id
        remove_extra_container(first)  # gone before the pods map listed it: it leaves the plan
        deadline = time.monotonic() + 60
        while gone in engine.guarded_cgroups:
            assert time.monotonic() < deadline, "a removed container stayed in the plan"
            time.sleep(0.05)
        assert second.cgroup_id in engine.guarded_cgroups
        assert enforcer.errors == 0, messages
    finally:
        enforcer.stop()
        for extra in extras:
            remove_extra_container(extra)
        shutil.rmtree(work, ignore_errors=True)


def test_a_new_pod_cgroup_is_planned_as_the_kubelet_makes_it(podlab: PodLab, tmp_path: Path) -> None:
    """The kubelet lists a pod, then makes its cgroup, then starts its containers. The enforcer sees the pod cgroup
    appear (inotify) and plans it at once: here its periodic look is an hour away, so nothing else could, and the
    pod's first container is guarded from its first exec."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    pod = podlab.pod("web-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                     labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
    replica = podlab.pod("web-5f6d7-z9x8c", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                         labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
    container_dir, pod_dir = replica.cgroup_v2, replica.cgroup_v2.parent
    container_dir.rmdir()  # not made yet
    pod_dir.rmdir()
    creating = listed_creating(replica)
    maps = {"now": PodMap.from_pods([pod.pod_object()])}

    def reread() -> PodMap:  # the kubelet's list by the time the pod's cgroup exists
        maps["now"] = PodMap.from_pods([pod.pod_object(), creating])
        return maps["now"]

    store = policy_store(tmp_path)
    messages: list[str] = []
    engine = PolicyEngine(store, lambda: maps["now"])
    enforcer = Enforcer(engine, lambda: maps["now"], messages.append, interval=3600, reread_pods=reread)
    enforcer.start()
    try:
        marker, markers = enforced(work, messages)
        assert replica.uid not in engine.guarded_pods
        pod_dir.mkdir()  # the kubelet makes the pod's cgroup
        deadline = time.monotonic() + 60
        while replica.uid not in engine.guarded_pods:
            assert time.monotonic() < deadline, f"the new pod cgroup was not planned: {messages}"
            time.sleep(0.05)
        container_dir.mkdir()  # and starts its container
        assert replica.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
        assert replica.run([TRUE], timeout=60).returncode == 0
        assert list(markers.iterdir()) == [] and enforcer.pods_seen_early == 1
        assert enforcer.errors == 0, messages
    finally:
        enforcer.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_a_brand_new_workload_is_held_from_its_first_exec(podlab: PodLab, tmp_path: Path) -> None:
    """`--new-workload-mode protect` (clusters whose policies are all reviewed files): a workload nobody wrote a
    policy for (an attacker's miner Deployment) is adopted in protect when its pod is listed, so its pod cgroup is
    planned as the kubelet makes it and the container's very first exec, its entrypoint, is killed, as is anything
    after; a reviewed workload started the same way runs what its hand-written policy allows."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    miner, web = (replica_of(podlab, app, template, suffix)
                  for app, template, suffix in (("miner", "7c9f8", "k2j4h"), ("web", "5f6d7", "z9x8c")))
    listed = []
    for pod in (miner, web):
        pod.cgroup_v2.rmdir()  # listed by the kubelet, cgroups not made yet
        pod.cgroup_v2.parent.rmdir()
        listed.append(listed_creating(pod))
    maps = {"now": PodMap.from_pods(listed[1:])}  # the miner is not listed yet at the enforcer's first look

    def reread() -> PodMap:  # the kubelet's list by the time the pods' cgroups exist
        maps["now"] = PodMap.from_pods(listed)
        return maps["now"]

    store = policy_store(tmp_path)  # web's reviewed policy; none for the miner
    messages: list[str] = []
    engine = PolicyEngine(store, lambda: maps["now"], new_mode="protect")
    enforcer = Enforcer(engine, lambda: maps["now"], messages.append, interval=3600, reread_pods=reread)
    enforcer.start()
    try:
        _spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        deadline = time.monotonic() + 120
        while not any("shop/Deployment/web is in protect" in m for m in messages):  # the first look is done
            assert time.monotonic() < deadline, f"the enforcer did not start: {messages}"
            time.sleep(0.05)
        assert WorkloadRef("shop", "Deployment", "miner") not in engine.store.learned
        for pod in (miner, web):
            pod.cgroup_v2.parent.mkdir()  # the kubelet makes the pod's cgroup (the miner is adopted on the re-read)
        while not {miner.uid, web.uid} <= engine.guarded_pods:
            assert time.monotonic() < deadline, f"the new pod cgroups were not planned: {messages}"
            time.sleep(0.05)
        for pod in (miner, web):
            pod.cgroup_v2.mkdir()  # and starts its container
        assert miner.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL  # the entrypoint
        assert miner.run([TRUE], timeout=60).returncode == -signal.SIGKILL  # nothing was reviewed for it
        assert web.run([TRUE], timeout=60).returncode == 0  # reviewed: allowed
        assert web.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
        assert list(markers.iterdir()) == [] and enforcer.pods_seen_early == 2
        assert engine.store.learned[WorkloadRef("shop", "Deployment", "miner")].processes == []
        assert enforcer.errors == 0, messages
    finally:
        enforcer.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_execs_of_a_pod_nobody_lists_yet_wait_for_its_listing(podlab: PodLab, tmp_path: Path) -> None:
    """`--new-workload-mode protect`: a pod cgroup the pods map does not list when it appears (the kubelet or API
    server behind) is held at exec too; its held execs wait for the listing and are then judged by the pod's
    workload (an unreviewed one's killed, a reviewed one's allowed exec released, one in monitor released), or
    killed when the pod is still not listed after the wait (nothing unreviewed runs)."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    miner, web, docs, ghost = (replica_of(podlab, app, template, suffix) for app, template, suffix in
                               (("miner", "7c9f8", "k2j4h"), ("web", "5f6d7", "z9x8c"), ("docs", "8d7e6", "m5n4b"),
                                ("ghost", "3b4c5", "p0o9i")))
    pods = (miner, web, docs, ghost)
    for pod in pods:
        pod.cgroup_v2.rmdir()  # nothing made yet
        pod.cgroup_v2.parent.rmdir()
    maps = {"now": PodMap.from_pods([])}
    store = policy_store(tmp_path)  # web's reviewed policy; docs' sets monitor
    (tmp_path / "policies" / "docs.yaml").write_text(POLICY.replace("web", "docs").replace("mode: protect",
                                                                                           "mode: monitor"))
    store.reload()
    messages: list[str] = []
    engine = PolicyEngine(store, lambda: maps["now"], new_mode="protect")
    enforcer = Enforcer(engine, lambda: maps["now"], messages.append, interval=3600, unlisted_wait=8.0)
    enforcer.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        deadline = time.monotonic() + 120
        while not any("shop/Deployment/web is in protect" in m for m in messages):  # the first look is done
            assert time.monotonic() < deadline, f"the enforcer did not start: {messages}"
            time.sleep(0.05)
        for pod in pods:
            pod.cgroup_v2.parent.mkdir()  # the kubelet makes the pods' cgroups; the agent cannot list them yet
        while not {pod.uid for pod in pods} <= engine.guarded_pods:
            assert time.monotonic() < deadline, f"the unlisted pod cgroups were not planned: {messages}"
            time.sleep(0.05)
        for pod in pods:
            pod.cgroup_v2.mkdir()
        dropped, allowed, monitored, unknown = (miner.popen([str(marker), str(markers)]), web.popen([TRUE]),
                                                docs.popen([TRUE]), ghost.popen([TRUE]))
        procs += [dropped, allowed, monitored, unknown]
        while enforcer.waiting_for_listing < 4:  # held, each waiting for its pod's listing
            assert time.monotonic() < deadline, f"the execs were not held: {messages}"
            assert all(p.poll() is None for p in procs), [p.returncode for p in procs]
            time.sleep(0.05)
        assert all(p.poll() is None for p in procs) and list(markers.iterdir()) == []
        maps["now"] = PodMap.from_pods([listed_creating(p) for p in (miner, web, docs)])  # the listing arrives
        assert dropped.wait(timeout=60) == -signal.SIGKILL  # an unreviewed workload's: killed
        assert allowed.wait(timeout=60) == 0  # the reviewed workload's allowed exec: released
        assert monitored.wait(timeout=60) == 0  # a workload in monitor: released
        assert unknown.poll() is None  # still not listed: still held
        assert unknown.wait(timeout=60) == -signal.SIGKILL and enforcer.unlisted_kills == 1
        assert list(markers.iterdir()) == []
        assert enforcer.errors == 0, messages
    finally:
        enforcer.stop()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def test_the_agent_blocks_and_reports_a_new_containers_first_exec(podlab: PodLab, tmp_path: Path) -> None:
    """End to end: the agent in protect (a hand-written policy), a container of the pod that its pods map does not
    list: the dropped binary is killed at its first exec, and the deviation is reported blocked, with the pod."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    pod = podlab.pod("web-5f6d7-q2w3e", namespace="shop", owner=("ReplicaSet", "web-5f6d7"),
                     labels={"app": "web", "pod-template-hash": "5f6d7"}, mount_ns=True)
    pod.popen(["sleep", "100000"])  # the container's main process
    pods = podlab.write_pods(tmp_path / "pods.json")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY)
    agent = start_agent(tmp_path / "agent", pods, policies)
    extra: Pod | None = None
    try:
        _spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        wait_line(agent, "shop/Deployment/web protect enforced on 1 container(s)")
        extra = extra_container(pod)
        assert extra.run([str(marker), str(markers)], timeout=60).returncode == -signal.SIGKILL
        assert extra.run([TRUE], timeout=60).returncode == 0
        assert list(markers.iterdir()) == []
        alert = blocked_alert(agent, extra.container_id, marker, "shop/Deployment/web", pod.name)
        assert not [a for a in deviations(agent, extra.container_id) if a is not alert], describe(agent.alerts())
    finally:
        agent.stop()
        if extra is not None:
            remove_extra_container(extra)
        shutil.rmtree(work, ignore_errors=True)


def test_the_agent_holds_a_pod_it_cannot_list_yet(podlab: PodLab, tmp_path: Path) -> None:
    """End to end, `--new-workload-mode protect`: a pod whose cgroups appear while the agent's pods source does not
    list it yet (the kubelet behind). The agent holds the pod's first exec, a dropped binary; once the listing
    arrives the binary is killed, never having run, and the deviation is one alert, `blocked`, with the pod's
    name and its new workload."""
    require(shutil.which("gcc") is not None, "gcc (the marker binary)")
    work = Path(tempfile.mkdtemp(prefix="kgn", dir="/tmp"))
    web = replica_of(podlab, "web", "5f6d7", "q2w3e")
    web.popen(["sleep", "100000"])  # the reviewed workload's main process
    pods = podlab.write_pods(tmp_path / "pods.json")  # lists web only
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY)
    agent = start_agent(tmp_path / "agent", pods, policies, extra=["--new-workload-mode", "protect"])
    run: subprocess.Popen[bytes] | None = None
    try:
        _spawner, marker = build(work)
        markers = work / "markers"
        markers.mkdir()
        wait_line(agent, "shop/Deployment/web protect enforced on 1 container(s)")
        miner = replica_of(podlab, "miner", "7c9f8", "k2j4h")  # its cgroups appear; the pods file lacks it
        wait_line(agent, f"policy: pod {miner.uid} is not listed yet")
        run = miner.popen([str(marker), str(markers)])
        deadline = time.monotonic() + 60
        while process_state(run.pid) not in ("T", "t"):  # stopped at exec by the guard
            assert run.poll() is None and time.monotonic() < deadline, "the exec was not held"
            time.sleep(0.05)
        podlab.write_pods(pods)  # the listing arrives
        assert run.wait(timeout=60) == -signal.SIGKILL
        assert list(markers.iterdir()) == []
        blocked_alert(agent, miner.container_id, marker, "shop/Deployment/miner", miner.name)
    finally:
        agent.stop()
        if run is not None and run.poll() is None:
            run.kill()
        shutil.rmtree(work, ignore_errors=True)


"""The kernel side of protect: keeps exec and connect guards in line with the policies and pods.

Every `interval` seconds (and at once when a policy changed) the `Enforcer` thread:

1. refreshes the pods map and finds the cgroup v2 directory of every container of each workload
   in protect (or with zero drift on);
2. resolves the allowed executables of the profile to inode numbers inside the container
   (``/proc/PID/root`` + path) and hands the set to the `ExecGuard` (bpftrace, kill at exec);
3. hands the file rules of the protected containers to the `fileguard` process (fanotify
   FAN_OPEN_PERM below /etc: an open, read or write, the profile does not allow fails with EPERM),
   and the containers in discover too: what they open below /etc is learned by real path;
4. turns the egress allow rules into addresses, IPv4 and IPv6 (workload peers -> their pods' IPs,
   CIDRs as they are, DNS names through the resolver; UDP ingress peers too, for the replies) and
   makes the workload's `ConnectGuard` maps hold exactly those, attached to every container cgroup
   of the workload (connect4/6, UDP sendmsg4/6);
5. tells the engine which workloads are enforced and which container cgroups are in the exec guard's plan
   (their deviations are then reported ``blocked``).

A container the pods map does not list yet (a new replica's or a restarted container's: the kubelet reports its
container ID only after it started) is guarded from its first exec all the same: the cgroup of each pod of a
protected workload is in the exec guard's plan too, and an exec in a container of it that the plan lacks is
held (SIGSTOP at exec) and handed here (`ExecGuard.on_new_container`). The enforcer plans that container at once
(its executables resolved through the held process's root), then kills the held process if its executable is
outside the profile (or drifted), has the answerer judge an allowed interpreter's script, or releases it.
A pod's cgroup is planned as the kubelet makes it, before its containers start: the enforcer watches the kubepods
cgroup tree (`podwatch`) and, on a new pod directory, re-reads the pods map and re-plans at once.

Nothing is enforced for a workload in discover or monitor (except zero drift, which blocks in
monitor too). `close()` detaches everything: enforcement lasts while the agent runs.
"""

from __future__ import annotations

import glob
import ipaddress
import logging
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kubeguard.cluster.cgroups import find_cgroup2_root
from kubeguard.cluster.owners import WorkloadRef
from kubeguard.cluster.podmap import PodMap
from kubeguard.policy.bpfsys import BpfError
from kubeguard.policy.connectguard import Allow, ConnectGuard
from kubeguard.policy.containerfs import (
    container_mount_ns,
    container_root,
    host_mount_ns,
    opened_root,
    resolve_in_root,
    runtime_mount_ns,
)
from kubeguard.policy.document import FileRule, Peer, WorkloadPolicy
from kubeguard.policy.execguard import ExecGuard, ExecGuardError, GuardedCgroup
from kubeguard.policy.fileguard import plan_to_json
from kubeguard.policy.podwatch import PodCgroupWatch, WatchError, pod_uid
from kubeguard.policy.policy_engine import PolicyEngine
from kubeguard.policy.scripts import c_is_code, interpreter_kind, runs_scripts

log = logging.getLogger(__name__)
RESOLVE_S = 10.0  # a container's allowed executables are resolved again after this (or when its policy changes)
POD_SEARCH_S = 1.0  # the cgroup tree is walked for pods whose cgroup is not known at most this often
UNLISTED_WAIT_S = 30.0  # --new-workload-mode protect: how long an exec in a pod nobody lists waits for its listing
UNLISTED_REREAD_S = 0.5  # the pods map is re-read for such waiting execs at most this often


class ProfileInodes(NamedTuple):
    """A profile's executables in one container, by inode."""

    allowed: frozenset[int]
    interpreters: frozenset[int]  # of those, script interpreters (held at exec until their script is checked)
    inline_code: frozenset[int]  # ... whose real file takes -c for code (sh, python)
    shells: frozenset[int]  # ... whose real file is a shell (sh, ash, bash, dash)


@dataclass(frozen=True)
class Container:
    container_id: str
    cgroup_dir: str
    cgroup_id: int
    started_ns: int


class FileGuard:
    """The `kubeguard.policy.fileguard` process: started with the first protected container, fed plans."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.plan = ""
        self.denials = 0
        self.recent: list[str] = []  # the last denials ("D tid r|w path"), for status and tests
        self.sent = self.acked = 0  # plans written to the guard / plans it has marked ("PLAN" lines)
        self.seen: list[tuple[str, bool, str]] = []  # (cgroup path, write, real path) opened by learning containers
        self._seen_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def apply(self, plan: dict[str, tuple[str, list[FileRule]]], learn: frozenset[str] = frozenset()) -> None:
        """Enforce `plan` (cgroup path -> file rules; the cgroups in `learn` only report what they open);
        no process at all while the plan is empty."""
        if not plan:
            self.close()
            return
        text = plan_to_json(plan, learn)
        if self.proc is None or self.proc.poll() is not None:
            self._start()
            self.plan = ""
            self.sent = self.acked = 0
        if text != self.plan:
            assert self.proc is not None and self.proc.stdin is not None
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
            self.plan = text
            self.sent += 1

    def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "kubeguard.policy.fileguard"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith("READY"):
            self.close()
            raise ExecGuardError("file guard (fanotify FAN_OPEN_PERM on /etc) did not start")
        self._reader = threading.Thread(target=self._read, args=(self.proc,), name="fileguard", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("D "):
                self.denials += 1
                self.recent = [*self.recent, line.strip()][-20:]
            elif line.startswith("PLAN"):
                self.acked += 1
            elif line.startswith("L "):
                _, cgroup, access, path = line.rstrip("\n").split(" ", 3)
                with self._seen_lock:
                    self.seen.append((cgroup, access == "w", path))

    def take_seen(self) -> list[tuple[str, bool, str]]:
        """The opens reported by learning containers since the last call."""
        with self._seen_lock:
            seen, self.seen = self.seen, []
        return seen

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # end of plans: the guard exits and its marks go with it
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.plan = ""


class Enforcer:
    """Applies protect mode and zero drift to the kernel; runs in its own thread."""

    def __init__(self, engine: PolicyEngine, refresh_pods: Callable[[], PodMap], on_message: Callable[[str], None],
                 interval: float = 0.5, cgroup_root: Path | None = None,
                 reread_pods: Callable[[], PodMap] | None = None, unlisted_wait: float = UNLISTED_WAIT_S) -> None:
        """`refresh_pods`: the pods map, re-read when due; `reread_pods`: re-read now (a new pod cgroup appeared);
        `unlisted_wait`: with new workloads in protect, how long a held exec in a pod not listed yet waits."""
        self.engine = engine
        self.refresh_pods = refresh_pods
        self.reread_pods = reread_pods or refresh_pods
        self.on_message = on_message
        self.interval = interval
        self.root = cgroup_root or find_cgroup2_root()
        self.exec_guard = ExecGuard()
        self.file_guard = FileGuard()
        self.connect_guards: dict[WorkloadRef, ConnectGuard] = {}
        self._cgroups: dict[str, str] = {}  # container id -> cgroup dir
        self._status: dict[WorkloadRef, str] = {}
        self._learners: dict[str, WorkloadRef] = {}  # cgroup path -> workload, of the containers in discover
        self.learned_files = 0
        self._watching: set[WorkloadRef] = set()  # discovering workloads the file guard watches
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # a held exec to judge, or stop
        self._thread = threading.Thread(target=self._loop, name="enforcer", daemon=True)
        self.errors = 0
        self._podmap = PodMap()
        self._pod_dirs: dict[str, str] = {}  # pod uid -> its cgroup dir
        self._pod_walk = float("-inf")  # when the cgroup tree was last walked for pod cgroups
        self._early: dict[int, tuple[WorkloadRef, Container]] = {}  # planned before the pods map lists them
        self._resolved: dict[int, tuple[object, float, GuardedCgroup]] = {}  # cgroup id -> (rules, when, entry)
        self._held: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()  # (pid, cgroup id) held at exec
        self.new_container_kills = 0  # held execs in unlisted containers killed here
        self.pods_seen_early = 0  # pod cgroups of protected workloads planned as the kubelet made them (inotify)
        # --new-workload-mode protect: pod cgroups made before the pods map lists their pod (uid -> dir), held at
        # exec like a protected pod's; their held execs wait for the listing
        self.unlisted_wait = unlisted_wait
        self._unlisted: dict[str, str] = {}
        self._waiting: dict[int, tuple[int, float, str]] = {}  # pid -> (cgroup id, deadline, pod uid)
        self._waiting_read = float("-inf")
        self.unlisted_kills = 0  # execs killed because their pod was still not listed after `unlisted_wait`
        self.exec_guard.on_new_container = self._on_new_container

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke()
        self._thread.join(timeout=60)
        if not self._thread.is_alive():
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1
        self.close()

    def close(self) -> None:
        self.exec_guard.close()
        self.file_guard.close()
        for guard in self.connect_guards.values():
            guard.close()
        self.connect_guards.clear()
        self.engine.enforced = set()
        self.engine.guarded_cgroups = frozenset()
        self.engine.guarded_pods = frozenset()

    @property
    def kills(self) -> int:
        return self.exec_guard.kills

    @property
    def waiting_for_listing(self) -> int:
        """Held execs in pods not listed yet, waiting for their listing."""
        return len(self._waiting)

    def _loop(self) -> None:
        watch = self._open_watch()
        waits: list[int | PodCgroupWatch] = [self._wake_r, *([watch] if watch is not None else [])]
        next_sync = 0.0
        try:
            while not self._stop.is_set():
                try:
                    self._judge_held()
                    self._judge_waiting()
                    if watch is not None and self._new_pods(watch.read()):
                        next_sync = 0.0
                    if time.monotonic() >= next_sync:
                        self.sync()
                        next_sync = time.monotonic() + self.interval
                except Exception as exc:  # the agent goes on detecting; say what failed, once per change
                    self.errors += 1
                    self._say("enforcement", f"enforcement failed: {exc}")
                wake = min(next_sync, self._waiting_read + UNLISTED_REREAD_S) if self._waiting else next_sync
                ready, _, _ = select.select(waits, [], [], max(0.0, wake - time.monotonic()))
                if self._wake_r in ready:
                    while True:
                        try:
                            if not os.read(self._wake_r, 4096):
                                break
                        except BlockingIOError:
                            break
        finally:
            if watch is not None:
                watch.close()

    def _open_watch(self) -> PodCgroupWatch | None:
        """inotify on the kubepods cgroup tree; None (the periodic look only) where it cannot be had."""
        if self.root is None:
            return None
        try:
            return PodCgroupWatch(str(self.root))
        except (WatchError, OSError) as exc:
            self._say("pod watch", f"policy: new pod cgroups are found every {self.interval:g}s only: {exc}")
            return None

    def _new_pods(self, made: list[tuple[str, str]]) -> bool:
        """Whether a pod cgroup just made, (uid, directory), belongs to a workload whose pods the exec guard holds
        (re-reading the pods map for it first: the kubelet lists a pod before it makes its cgroup)."""
        if not made:
            return False
        self._pod_dirs.update(made)
        uids = [uid for uid, _ in made]
        podmap = self.reread_pods()
        self.engine.adopt_listed(podmap)  # --new-workload-mode protect: a brand-new workload's pods held too
        policies = self.engine.effective()
        owners = self._owners(podmap)
        refs = {uid: owners[uid] for uid in uids if uid in owners}
        held = {ref for ref in refs.values()
                if (policy := policies.get(ref)) is not None and (policy.mode == "protect" or policy.zero_drift)}
        self.pods_seen_early += sum(1 for ref in refs.values() if ref in held)
        unlisted = self.engine.new_mode == "protect" and {
            uid: d for uid, d in made if uid not in owners and uid not in self.engine.exempt_pods}
        if unlisted:  # nobody lists it yet: with new workloads in protect, its execs wait for the listing
            self._unlisted.update(unlisted)
        return bool(held or unlisted)

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full: the loop is awake already

    def _on_new_container(self, pid: int, cgroup_id: int) -> None:
        """From the exec guard's reader thread: an exec held in a container the plan lacks."""
        self._held.put((pid, cgroup_id))
        self._poke()

    def _judge_held(self) -> None:
        """Plan the containers of the execs held since the last call and decide each held process."""
        while True:
            try:
                pid, cgroup_id = self._held.get_nowait()
            except queue.Empty:
                return
            self._judge_or_kill(pid, cgroup_id)

    def _judge_or_kill(self, pid: int, cgroup_id: int) -> None:
        """`_judge` a held exec; one that could not be judged is killed, never released unjudged."""
        try:
            self._judge(pid, cgroup_id)
        except Exception:
            self.exec_guard.kill_held(pid)
            self.new_container_kills += 1
            raise

    def _judge(self, pid: int, cgroup_id: int) -> None:
        found = self._held_container(pid, cgroup_id)
        unlisted = self._unlisted_pod(pid) if found is None and pid not in self._waiting else None
        if unlisted is not None:
            self._waiting[pid] = (cgroup_id, time.monotonic() + self.unlisted_wait, unlisted)  # judged once listed
            return
        if found is None:  # gone, or its pod is no longer protected (the plan catches up at the next sync)
            if os.path.exists(f"/proc/{pid}"):
                self.exec_guard.release_held(pid)
            return
        ref, policy, container = found
        protect = policy.mode == "protect"
        entry = self._entry(policy, container, protect, None)
        self._early[cgroup_id] = (ref, container)
        self.exec_guard.apply([*(g for g in self.exec_guard.guarded if g.cgroup_id != cgroup_id), entry])
        self.engine.guarded_cgroups = self.engine.guarded_cgroups | {cgroup_id}
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            self.exec_guard.kill_held(pid)
            return
        bad = (entry.profile and st.st_ino not in entry.allowed_inodes) or (
            entry.drift_after_ns is not None and st.st_ctime_ns > entry.drift_after_ns)
        if bad:
            self.exec_guard.kill_held(pid)
            self.new_container_kills += 1
            log.info("exec guard: killed pid %d at exec in new container %s of %s", pid, container.container_id, ref)
        elif st.st_ino in entry.interpreter_inodes:
            if not self.exec_guard.judge_held(pid, cgroup_id):  # the answerer decides its script
                self.exec_guard.kill_held(pid)
        else:
            self.exec_guard.release_held(pid)

    def _forget_unlisted(self, uid: str) -> None:
        """Pod `uid` is listed now, or gone: no longer held as an unlisted pod."""
        self._unlisted.pop(uid, None)
        self._status.pop(("unlisted", uid), None)  # type: ignore[call-overload]

    def _unlisted_pod(self, pid: int) -> str | None:
        """The uid of the pod, not listed when its cgroup appeared, that process `pid` runs in; None otherwise."""
        if not self._unlisted or self.root is None:
            return None
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                path = next((line[3:].strip() for line in f if line.startswith("0::")), "")
        except OSError:
            return None
        pod_dir = os.path.dirname(os.path.join(str(self.root), path.lstrip("/")))
        return next((uid for uid, d in self._unlisted.items() if d == pod_dir), None)

    def _judge_waiting(self) -> None:
        """The held execs of unlisted pods: judged once the pods map lists their pod (re-read at most every
        UNLISTED_REREAD_S), killed when it still does not after `unlisted_wait` (nothing unreviewed runs)."""
        if not self._waiting or time.monotonic() - self._waiting_read < UNLISTED_REREAD_S:
            return
        self._waiting_read = time.monotonic()
        self._podmap = self.reread_pods()
        self.engine.adopt_listed(self._podmap)
        self._pod_dirs.update(self._unlisted)
        for pid, (cgroup_id, deadline, uid) in list(self._waiting.items()):
            if not os.path.exists(f"/proc/{pid}"):
                del self._waiting[pid]
            elif uid in self._podmap.owners:  # listed now: judged as its workload's policy says
                del self._waiting[pid]
                self._forget_unlisted(uid)
                self._judge_or_kill(pid, cgroup_id)
            elif time.monotonic() >= deadline:
                del self._waiting[pid]
                self.exec_guard.kill_held(pid)
                self.unlisted_kills += 1
                self._say(("unlisted", uid), f"policy: killed pid {pid} at exec in pod {uid}: the pod was not "
                                             f"listed within {self.unlisted_wait:g}s (new workloads in protect)")

    def _held_container(self, pid: int, cgroup_id: int) -> tuple[WorkloadRef, WorkloadPolicy, Container] | None:
        """The workload, policy and container of a held exec, when its pod belongs to a workload in protect or
        with zero drift; None otherwise."""
        if self.root is None:
            return None
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                path = next((line[3:].strip() for line in f if line.startswith("0::")), "")
            cgroup_dir = os.path.join(str(self.root), path.lstrip("/"))
            st = os.stat(cgroup_dir)
        except OSError:
            return None
        if st.st_ino != cgroup_id:
            return None
        pod_dir = os.path.dirname(cgroup_dir)
        uid = next((u for u, d in self._pod_dirs.items() if d == pod_dir), None)
        ref = self._owners(self._podmap).get(uid) if uid is not None else None
        policy = self.engine.effective().get(ref) if ref is not None else None
        if ref is None or policy is None or not (policy.mode == "protect" or policy.zero_drift):
            return None
        return ref, policy, Container(os.path.basename(cgroup_dir), cgroup_dir, st.st_ino, st.st_ctime_ns)

    def sync(self) -> None:
        """Bring the guards in line with the policies and pods now."""
        podmap = self._podmap = self.refresh_pods()
        self.engine.adopt_listed(podmap)
        policies = self.engine.effective()
        self._pod_dirs = {uid: d for uid, d in self._pod_dirs.items() if uid in podmap.owners or uid in self._unlisted}
        guarded: list[GuardedCgroup] = []
        enforced: set[WorkloadRef] = set()
        announce: list[tuple[WorkloadRef, str]] = []
        file_plan: dict[str, tuple[str, list[FileRule]]] = {}
        wanted_guards: set[WorkloadRef] = set()
        learners: dict[str, WorkloadRef] = {}
        pod_uids: set[str] = set()
        previous = {g.cgroup_id: g for g in self.exec_guard.guarded}
        self._learn_files()
        for ref, policy in policies.items():
            protect = policy.mode == "protect"
            if policy.mode == "discover":  # the file guard reports the real paths the workload opens below /etc
                for container in self._containers(podmap, ref):
                    root = container_root(container.cgroup_dir)
                    if root:
                        cgroup = "/" + os.path.relpath(container.cgroup_dir, self.root)
                        file_plan[cgroup] = (root, [])
                        learners[cgroup] = ref
            if not protect and not policy.zero_drift:
                self._say(ref, "")
                continue
            containers = self._containers(podmap, ref)
            listed = {c.cgroup_id for c in containers}
            containers += [c for cid, (owner, c) in self._early.items()
                           if owner == ref and cid not in listed and c.container_id not in podmap.by_container_id
                           and os.path.isdir(c.cgroup_dir)]  # a container gone before it was listed leaves the plan
            pods = self._pod_entries(podmap, ref, containers)
            guarded += pods.values()
            pod_uids.update(pods)
            if not containers:
                self._say(ref, f"policy: {ref} is in {policy.mode}; no containers on this node yet"
                               f"{f' (new containers of {len(pods)} pod(s) held at exec)' if pods else ''}")
                continue
            inodes: frozenset[int] = frozenset()
            for container in containers:
                entry = self._entry(policy, container, protect, previous.get(container.cgroup_id))
                inodes = entry.allowed_inodes
                guarded.append(entry)
            destinations = 0
            if protect:
                wanted_guards.add(ref)
                allows = self._allows(policy, podmap)
                guard = self.connect_guards.get(ref)
                if guard is None:
                    guard = self.connect_guards[ref] = ConnectGuard()
                guard.set_entries(allows)
                current = {c.cgroup_dir for c in containers}
                for cgroup_dir in current - set(guard.attached):
                    guard.attach(cgroup_dir)
                for cgroup_dir in set(guard.attached) - current:
                    guard.detach(cgroup_dir)
                destinations = len(allows)
                for container in containers:
                    root = container_root(container.cgroup_dir)
                    if root:
                        file_plan["/" + os.path.relpath(container.cgroup_dir, self.root)] = (root, list(policy.files))
            enforced.add(ref)
            what = (f"{len(inodes)} executables, {destinations} destinations" if protect else "zero drift only")
            announce.append((ref, f"policy: {ref} {policy.mode} enforced on {len(containers)} container(s) ({what}"
                                  f"{', zero drift' if protect and policy.zero_drift else ''})"))
        unlisted: list[str] = []
        for uid, pod_dir in list(self._unlisted.items()):
            if uid in podmap.owners:
                self._forget_unlisted(uid)  # listed now: planned with its workload above
                continue
            try:
                pod_id = os.stat(pod_dir).st_ino
            except OSError:
                self._forget_unlisted(uid)  # gone
                continue
            guarded.append(GuardedCgroup(pod_id, profile=False, pod=True, runtime_mount_ns=host_mount_ns()))
            pod_uids.add(uid)
            unlisted.append(uid)
        for ref in set(self.connect_guards) - wanted_guards:
            self.connect_guards.pop(ref).close()
        try:
            self.exec_guard.apply(guarded)
            self.file_guard.apply(file_plan, frozenset(learners))
        except ExecGuardError as exc:
            self.engine.enforced = set()
            self.engine.guarded_cgroups = frozenset()
            self.engine.guarded_pods = frozenset()
            raise BpfError(str(exc)) from exc
        if self.exec_guard.backend:  # once, and again if the compiled guard fell back to bpftrace
            self._say("exec guard backend", f"policy: exec guard: {self.exec_guard.backend} program "
                                            f"({self.exec_guard.backend_reason})")
        if self.exec_guard.restarts:
            self._say("exec guard restarts", f"policy: exec guard started again after it exited "
                                             f"({self.exec_guard.restarts} time(s))")
        self.engine.guarded_cgroups = frozenset(entry.cgroup_id for entry in guarded if not entry.pod)
        self.engine.guarded_pods = frozenset(pod_uids)
        self._resolved = {cid: r for cid, r in self._resolved.items() if cid in self.engine.guarded_cgroups}
        self.engine.enforced = enforced
        self._early = {cid: early for cid, early in self._early.items()
                       if cid in self.engine.guarded_cgroups and early[1].container_id not in podmap.by_container_id}
        self._learners = learners
        self._watch(set(learners.values()))
        for ref, message in announce:
            self._say(ref, message)
        for uid in unlisted:
            self._say(("unlisted", uid), f"policy: pod {uid} is not listed yet: its execs are held until it is "
                                         "(new workloads in protect)")

    def _watch(self, learning: set[WorkloadRef]) -> None:
        """A discovering workload's quiet window starts again once the file guard has marked its /etc, so
        it is not promoted before its opens were learned by real path."""
        self._watching &= learning
        if self.file_guard.acked >= self.file_guard.sent:
            for ref in learning - self._watching:
                self.engine.touch(ref)
            self._watching |= learning

    def _learn_files(self) -> None:
        """Hand the opens the file guard saw in discover containers to the engine (real paths)."""
        for cgroup, write, path in self.file_guard.take_seen():
            ref = self._learners.get(cgroup)
            if ref is not None and self.engine.learn_file(ref, path, write):
                self.learned_files += 1

    def _say(self, key: object, message: str) -> None:
        if self._status.get(key) != message:  # type: ignore[call-overload]
            self._status[key] = message  # type: ignore[index]
            if message:
                self.on_message(message)

    def _owners(self, podmap: PodMap) -> dict[str, WorkloadRef]:
        """The pods map's pod uid -> workload, less the pods no policy applies to (the agent's own)."""
        return {uid: ref for uid, ref in podmap.owners.items() if uid not in self.engine.exempt_pods}

    def _containers(self, podmap: PodMap, ref: WorkloadRef) -> list[Container]:
        uids = {uid for uid, owner in self._owners(podmap).items() if owner == ref}
        found: list[Container] = []
        for cid, workload in podmap.by_container_id.items():
            if workload.pod_uid not in uids:
                continue
            cgroup_dir = self._cgroup_dir(cid)
            if cgroup_dir is None:
                continue
            try:
                st = os.stat(cgroup_dir)
            except OSError:
                self._cgroups.pop(cid, None)
                continue
            found.append(Container(cid, cgroup_dir, st.st_ino, st.st_ctime_ns))
        return found

    def _pod_entries(self, podmap: PodMap, ref: WorkloadRef, containers: list[Container]) -> dict[str, GuardedCgroup]:
        """The cgroups of `ref`'s pods on this node by pod uid, whose containers the plan lacks are held at exec
        (`pod=True`), with the mount namespace their runtime execs from (a known container's, else the node's)."""
        runtime = {os.path.dirname(c.cgroup_dir): runtime_mount_ns(c.cgroup_dir) for c in containers}
        entries: dict[str, GuardedCgroup] = {}
        for uid, owner in self._owners(podmap).items():
            if owner != ref:
                continue
            pod_dir = self._pod_dir(uid, containers)
            if pod_dir is None:
                continue
            try:
                pod_id = os.stat(pod_dir).st_ino
            except OSError:
                self._pod_dirs.pop(uid, None)
                continue
            entries[uid] = GuardedCgroup(pod_id, profile=False, pod=True,
                                         runtime_mount_ns=runtime.get(pod_dir) or host_mount_ns())
        return entries

    def _pod_dir(self, uid: str, containers: list[Container]) -> str | None:
        """The cgroup dir of pod `uid`: the parent of one of its containers', or found by its name (kubelet:
        ``pod<uid>``, ``kubepods-...-pod<uid with _>.slice``) in a walk of the tree at most every POD_SEARCH_S."""
        for c in containers:
            parent = os.path.dirname(c.cgroup_dir)
            if pod_uid(os.path.basename(parent)) == uid:
                self._pod_dirs[uid] = parent
                return parent
        known = self._pod_dirs.get(uid)
        if known is not None and os.path.isdir(known):
            return known
        if self.root is None or time.monotonic() - self._pod_walk < POD_SEARCH_S:
            return None
        self._pod_walk = time.monotonic()
        for dirpath, dirs, _files in os.walk(self.root):
            for name in dirs:
                found = pod_uid(name)
                if found:
                    self._pod_dirs[found] = os.path.join(dirpath, name)
        return self._pod_dirs.get(uid)

    def _cgroup_dir(self, container_id: str) -> str | None:
        known = self._cgroups.get(container_id)
        if known is not None and os.path.isdir(known):
            return known
        if self.root is None:
            return None
        for dirpath, dirs, _files in os.walk(self.root):
            for name in dirs:
                if container_id in name:
                    self._cgroups[container_id] = os.path.join(dirpath, name)
                    return self._cgroups[container_id]
        return None

    def _entry(self, policy: WorkloadPolicy, container: Container, protect: bool,
               previous: GuardedCgroup | None) -> GuardedCgroup:
        """`_guarded_entry`, resolved again only every RESOLVE_S or when the container's rules changed: a profile
        of hundreds of paths takes tens of milliseconds to resolve, and the enforcer looks every `interval`. A file
        replaced meanwhile (a new inode) stays refused until then. Entries resolved without a live process in the
        container (no mount namespace known) are not kept."""
        rules = (protect, policy.zero_drift, tuple(policy.processes), tuple(policy.scripts), container.started_ns)
        kept = self._resolved.get(container.cgroup_id)
        now = time.monotonic()
        if kept is not None and kept[0] == rules and now - kept[1] < RESOLVE_S:
            return kept[2]
        entry = self._guarded_entry(policy, container, protect, previous)
        if entry.mount_ns:
            self._resolved[container.cgroup_id] = (rules, now, entry)
        return entry

    @classmethod
    def _guarded_entry(cls, policy: WorkloadPolicy, container: Container, protect: bool,
                       previous: GuardedCgroup | None) -> GuardedCgroup:
        """The container's exec rules, its paths resolved through one root held open for the whole plan. With no
        live process to resolve through, the container keeps the executables it had (the lab's pods, whose
        processes all come and go), or, on first sight, paths resolve on the host."""
        inodes: frozenset[int] = frozenset()
        interpreters: frozenset[int] = frozenset()
        inline: frozenset[int] = frozenset()
        shells: frozenset[int] = frozenset()
        with opened_root(container.cgroup_dir) as root:
            if protect and root is None and previous is not None and previous.profile:
                inodes, interpreters = previous.allowed_inodes, previous.interpreter_inodes
                inline, shells = previous.inline_code_inodes, previous.shell_inodes
            elif protect:
                inodes, interpreters, inline, shells = cls._profile_inodes(policy, root or "/")
        mount_ns = container_mount_ns(container.cgroup_dir) or (previous.mount_ns if previous is not None else 0)
        runtime_ns = runtime_mount_ns(container.cgroup_dir) or (
            previous.runtime_mount_ns if previous is not None else 0)
        return GuardedCgroup(container.cgroup_id, inodes, profile=protect,
                             drift_after_ns=container.started_ns if policy.zero_drift else None,
                             interpreter_inodes=interpreters, inline_code_inodes=inline, shell_inodes=shells,
                             scripts=tuple(policy.scripts), mount_ns=mount_ns, runtime_mount_ns=runtime_ns)

    @staticmethod
    def _profile_inodes(policy: WorkloadPolicy, root: str) -> ProfileInodes:
        """The inodes of the allowed executables below `root`, the container's filesystem (symlinks followed as the
        container follows them), and of those the script interpreters among them, those whose real file takes
        ``-c`` for code on the command line, and those whose real file is a shell; each path resolved once."""
        allowed: set[int] = set()
        interpreters: set[int] = set()
        inline: set[int] = set()
        shells: set[int] = set()
        denied: set[int] = set()
        prefix = root.rstrip("/")
        for rule in policy.processes:
            paths = [p[len(prefix):] for p in glob.glob(prefix + rule.path)] if any(c in rule.path for c in "*?[") \
                else [rule.path]
            for path in paths:
                real = resolve_in_root(root, path)
                if real is None:
                    continue
                try:
                    ino = os.stat(prefix + real).st_ino
                except OSError:
                    continue
                if rule.action == "deny":
                    denied.add(ino)
                    continue
                allowed.add(ino)
                if not runs_scripts(path) and not runs_scripts(real):
                    continue
                interpreters.add(ino)
                if c_is_code(real):  # the answerer reads the real exe
                    inline.add(ino)
                if interpreter_kind(real) == "shell":
                    shells.add(ino)
        return ProfileInodes(frozenset(allowed - denied), frozenset(interpreters - denied), frozenset(inline - denied),
                             frozenset(shells - denied))

    @staticmethod
    def _allows(policy: WorkloadPolicy, podmap: PodMap) -> set[Allow]:
        """The egress allow rules as destinations (IPv4 and IPv6); UDP ingress peers may be answered on any port."""
        out: set[Allow] = set()
        for rule in policy.egress:
            if rule.action == "allow":
                out.update(Allow(net, rule.port, rule.protocol if rule.port else "")
                           for net in _networks(rule.peer, podmap))
        for rule in policy.ingress:  # a UDP server answers its clients with sendto() to their address and port
            if rule.action == "allow" and rule.protocol == "UDP":
                out.update(Allow(net, 0, "UDP") for net in _networks(rule.peer, podmap))
        return out


def _networks(peer: Peer, podmap: PodMap) -> list[str]:
    """The networks a rule's peer stands for: a workload's pod addresses, a CIDR, a DNS name's addresses, or all."""
    if peer.workload:
        ref = WorkloadRef.parse(peer.workload)
        uids = {uid for uid, owner in podmap.owners.items() if owner == ref}
        return [str(ipaddress.ip_network(ip)) for ip, w in podmap.by_ip.items() if w.pod_uid in uids]
    if peer.cidr:
        return [str(ipaddress.ip_network(peer.cidr, strict=False))]
    if peer.dns:
        return [str(ipaddress.ip_network(ip)) for ip in resolve(peer.dns)]
    return ["0.0.0.0/0", "::/0"]


def resolve(name: str) -> list[str]:
    """IPv4 and IPv6 addresses of a DNS name (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})

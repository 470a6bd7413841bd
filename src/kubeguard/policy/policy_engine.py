"""Learning and checking workload behaviour: discover -> monitor -> protect, on the agent's events.

`PolicyEngine.process(event)` runs in the pipeline after enrichment (the event already names its pod):

- the pod's workload comes from the pods map (`PodMap.owners`, from ownerReferences), so every
  replica of a Deployment / StatefulSet / DaemonSet / Job shares one profile;
- discover: anything not yet in the profile is added (process exe path with its parent exe, user
  and whether the file is older than the container; file opens below sensitive roots; outbound
  peers, inbound peers and listening ports; the peer is a workload when its address is a known pod,
  else the address as a /32 or /128);
- monitor and protect: anything outside the profile becomes one alert (``Policy deviation: ...``)
  with the workload, the deviation, the mode, the action (``alert``, or ``blocked`` when the kernel
  refused it) and ATT&CK tags. The file and network activity of a process that is itself a
  deviation is part of that one alert, not more alerts.

A workload seen for the first time starts in discover, or in `new_mode` (monitor or protect: nothing is learned
and everything it does is a deviation until a hand-written policy allows it; NeuVector's new service mode, for
clusters whose policies are all reviewed files, where a new workload must not teach the agent its own behaviour).

`tick()` (once a second, from the pipeline thread) re-reads the policy directory, promotes
workloads whose profile did not change for `quiet_window` seconds from discover to monitor, and, with
`protect_after` set, from monitor to protect once they ran that long in monitor without a deviation (NeuVector's
mode auto-switch; the clock starts again at each deviation, at the promotion to monitor and at the engine's start,
so a restart only delays it), and saves what was learned. A workload whose hand-written policy sets a mode is never
promoted. The kernel side of protect lives in `kubeguard.policy.enforce`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Alert, Event
from kubeguard.policy.document import FileRule, NetRule, Peer, ProcessRule, ScriptRule, WorkloadPolicy
from kubeguard.policy.scripts import env_code, runs_scripts, script_of
from kubeguard.policy.store import PolicyStore

log = logging.getLogger(__name__)

# Files below these roots are learned and checked (the sensors report opens below them).
FILE_ROOTS = ("/etc/", "/root/", "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/",
              "/usr/local/sbin/", "/var/run/secrets/", "/run/secrets/", "/proc/sys/")
OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
EXEC_TYPES = frozenset({"execve", "execveat"})
ACCEPT_TYPES = frozenset({"accept", "accept4"})
SEND_TYPES = frozenset({"sendto", "sendmsg"})  # datagrams naming a destination (unconnected UDP)
EPERM, EACCES, EINPROGRESS = 1, 13, 115
RULE_PROCESS = "Policy deviation: process"
RULE_FILE = "Policy deviation: file"
RULE_EGRESS = "Policy deviation: egress"
RULE_INGRESS = "Policy deviation: ingress"
TAGS = {
    RULE_PROCESS: ["policy", "process", "mitre_execution", "T1059"],
    RULE_FILE: ["policy", "filesystem", "mitre_persistence", "TA0003"],
    RULE_EGRESS: ["policy", "network", "mitre_command_and_control", "T1071"],
    RULE_INGRESS: ["policy", "network", "mitre_initial_access", "T1133"],
}
DRIFT_TAG = "T1105"  # an executable written after the container started (ingress tool transfer)
UNLISTED_EXECS = 256  # exec events of pods held before they are listed, kept for their judgement at most
POD_SPECIFIC_LABELS = frozenset({"pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name",
                                 "apps.kubernetes.io/pod-index", "batch.kubernetes.io/job-completion-index"})
EXEC_DECISIONS = 1024  # remembered process_allowed answers per workload
_MISSING = object()
EVENT_FIELDS = ("evt.type", "evt.res", "proc.exepath", "proc.cmdline", "proc.pid", "proc.pexepath", "user.name",
                "fd.name", "fd.sip", "fd.sport", "fd.cip", "fd.l4proto")


@dataclass(frozen=True, slots=True)
class Deviation:
    rule: str
    what: str  # one line: "process /usr/bin/nc", "write /etc/passwd", "egress TCP 10.0.0.9:4444"
    blocked: bool
    drift: bool = False


class PolicyEngine:
    """Learns and checks per-workload profiles; thread-safe (the enforcer reads `plan()`)."""

    def __init__(self, store: PolicyStore, podmap: Callable[[], PodMap], quiet_window: float = 3600.0,
                 clock: Callable[[], float] = time.time, container_start: Callable[[Event], float | None]
                 | None = None, protect_after: float | None = None, new_mode: str = "discover",
                 running: Callable[[set[str], PodMap], Iterable[Event]] | None = None) -> None:
        self.store = store
        # the exec events of the processes already running in the given pods (kubeguard.policy.running), learned
        # when a pod is first listed; None: only what the sensors report is learned
        self.running = running
        self._listed_pods: set[str] = set()
        self._running_pods = 0  # pods whose live processes were read since the last status line
        self._running_learned = 0  # ... and the rules learned from them
        self.new_mode = new_mode  # the mode a workload seen for the first time starts in (NeuVector's new service mode)
        self.podmap = podmap
        self.quiet_window = quiet_window
        self.protect_after = protect_after  # seconds in monitor without a deviation before protect; None: never
        self.clock = clock
        self.started = clock()
        # per workload in monitor, when its last deviation came (the clock of its promotion to protect)
        self._last_deviation: dict[WorkloadRef, float] = {}
        self.container_start = container_start or (lambda event: None)
        # pods no policy applies to: the agent's own (its sensors, guards and their restarts must never be learned as
        # a workload's behaviour, alerted or killed, whatever a pattern or an auto-switch does to its workload)
        self.exempt_pods: frozenset[str] = frozenset()
        self._unlisted_execs: list[Event] = []  # execs of held pods not listed yet (`running_events` hands them on)
        self._seen_unlisted: set[str] = set()  # uids of those pods
        self.enforced: set[WorkloadRef] = set()  # workloads whose kernel guards are in place (enforcer sets it)
        # the cgroup ids of the containers in the exec guard's plan, and the uids of the pods whose cgroup is in it
        # (their containers not planned yet are held at exec until they are); enforcer sets both. An exec anywhere
        # else runs unguarded: its deviations are alerts, not blocks
        self.guarded_cgroups: frozenset[int] = frozenset()
        self.guarded_pods: frozenset[str] = frozenset()
        self.deviations = 0
        self.learned_rules = 0
        self._dirty: set[WorkloadRef] = set()
        self._deviant_pids: dict[int, float] = {}
        self._effective: dict[WorkloadRef, WorkloadPolicy | None] = {}
        # per workload, process_allowed(path) of its effective policy: a workload runs few programs, each many times
        # (a decision is a scan of its rules; forgotten whenever `_effective` changes)
        self._exec_allowed: dict[WorkloadRef, dict[str, bool]] = {}
        self._lock = threading.RLock()
        self.version = 0  # bumped whenever any effective policy may have changed

    # -- events ----------------------------------------------------------------------------------
    def process(self, event: Event) -> list[Alert]:
        """Learn from or check one enriched event; returns the alerts it raises."""
        etype = event.get("evt.type")
        if etype == "procexit":
            pid = event.get("proc.pid")
            if pid in self._deviant_pids:
                del self._deviant_pids[pid]
            return []
        if etype not in EXEC_TYPES and etype not in OPEN_TYPES and etype != "connect" and etype not in ACCEPT_TYPES \
                and etype not in SEND_TYPES:
            return []
        uid = event.get("k8s.pod.uid")
        if not uid or uid in self.exempt_pods:
            return []
        podmap = self.podmap()
        ref = podmap.owners.get(str(uid))
        if ref is None:
            if etype in EXEC_TYPES and str(uid) in self.guarded_pods and len(self._unlisted_execs) < UNLISTED_EXECS:
                event["_held_unlisted"] = True  # the enforcer judges the held exec by the same policy
                self._unlisted_execs.append(event)  # held until its pod is listed (new workloads in protect)
                self._seen_unlisted.add(str(uid))  # its processes were seen at exec: no "found running" scan
            return []
        with self._lock:
            policy = self._policy(ref, event)
            if etype in EXEC_TYPES:
                if not event.get("_running"):
                    return self._exec(ref, policy, event)
                before = self.learned_rules
                alerts = self._exec(ref, policy, event)
                self._running_learned += self.learned_rules - before
                return alerts
            if event.get("proc.pid") in self._deviant_pids:
                return []  # part of that process's alert
            if etype in OPEN_TYPES:
                return self._open(ref, policy, event)
            if etype == "connect" or etype in SEND_TYPES:
                return self._connect(ref, policy, event, podmap)
            return self._accept(ref, policy, event, podmap)

    def _policy(self, ref: WorkloadRef, event: Event) -> WorkloadPolicy:
        """The effective policy (a new workload starts in `new_mode`: learning in discover, else with an empty
        profile)."""
        policy = self._effective.get(ref, _MISSING)
        if policy is not _MISSING:
            assert isinstance(policy, WorkloadPolicy)
            return policy
        if ref not in self._effective:
            if ref not in self.store.learned:
                labels = event.get("k8s.pod.labels")
                self._new_workload(ref, labels.items() if isinstance(labels, dict) else ())
            self._effective[ref] = self.store.effective(ref)
            self._exec_allowed.pop(ref, None)
        found = self._effective[ref]
        assert found is not None
        return found

    def _new_workload(self, ref: WorkloadRef, labels: Iterable[tuple[Any, Any]]) -> None:
        """A workload seen for the first time: its learned policy, in `new_mode`, selecting its pods' labels."""
        selector = {str(k): str(v) for k, v in labels if k not in POD_SPECIFIC_LABELS}
        self.store.learned[ref] = WorkloadPolicy(ref, mode=self.new_mode, zero_drift=False, selector=selector)
        self.store.last_change[ref] = self.clock()
        self._dirty.add(ref)
        log.info("policy: new workload %s, %s", ref,
                 "discovering" if self.new_mode == "discover" else f"in {self.new_mode} (nothing learned)")

    def adopt_listed(self, podmap: PodMap) -> list[WorkloadRef]:
        """With `new_mode` monitor or protect, the workloads of listed pods not seen before get their policy now,
        at listing, not at their first event: the enforcer then plans a new workload's pods before their first
        exec (with protect, a brand-new workload's entrypoint is held and judged like any later exec). In discover
        nothing is adopted (a workload listed but idle would be promoted with an empty profile). Returns the
        workloads adopted."""
        if self.new_mode == "discover":
            return []
        adopted: list[WorkloadRef] = []
        with self._lock:
            for uid, ref in podmap.owners.items():
                if uid in self.exempt_pods or ref in self.store.learned:
                    continue
                pod = podmap.by_pod_uid.get(uid)
                self._new_workload(ref, pod.labels if pod is not None else ())
                self._effective.pop(ref, None)
                self._exec_allowed.pop(ref, None)
                self.version += 1
                adopted.append(ref)
        return adopted

    def _learn(self, ref: WorkloadRef, attr: str, rule: Any) -> None:
        learned = self.store.learned[ref]
        getattr(learned, attr).append(rule)
        self.store.last_change[ref] = self.clock()
        self._dirty.add(ref)
        self._effective.pop(ref, None)
        self._exec_allowed.pop(ref, None)
        self.learned_rules += 1
        self.version += 1

    def touch(self, ref: WorkloadRef) -> None:
        """Start a discovering workload's quiet window again (something new is now watched)."""
        with self._lock:
            if ref in self.store.learned and self.store.learned[ref].mode == "discover":
                self.store.last_change[ref] = self.clock()

    def learn_file(self, ref: WorkloadRef, path: str, write: bool) -> bool:
        """Learn an open seen by the file guard (its real path) while `ref` is in discover; True when new."""
        with self._lock:
            if ref not in self.store.learned:
                return False
            policy = self._effective.get(ref) or self.store.effective(ref)
            if policy is None or policy.mode != "discover" or policy.file_allowed(path, write):
                return False
            self._learn(ref, "files", FileRule(path=path, access="write" if write else "read"))
            return True

    def _exec(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event) -> list[Alert]:
        if event.get("evt.is_open_exec") or not _succeeded(event):
            return []
        path = str(event.get("proc.exepath") or "") or _exe_of(event.get("proc.pid"))
        if not path:  # the sensor could not read the path (rare): judge by the command name
            comm = str(event.get("proc.name") or "")
            if policy.mode == "discover" or any(
                    r.action == "allow" and r.path.rsplit("/", 1)[-1][:15] == comm for r in policy.processes):
                return []
            path = f"{comm or '?'} (path not readable)"
        aliases: list[str] = list(event.get("_exepaths") or ())  # a process found running: its exec's names
        if aliases:
            if event.get("proc.pid") in self._deviant_pids:
                return []  # alerted when it started
            path = next((name for name in aliases if policy.process_allowed(name)), aliases[0])
        decisions = self._exec_allowed.get(ref)
        if decisions is None:
            decisions = self._exec_allowed[ref] = {}
        known = decisions.get(path)
        if known is None:
            if len(decisions) >= EXEC_DECISIONS:  # many distinct paths (or patterns): start again
                decisions.clear()
            known = decisions[path] = policy.process_allowed(path)
        if known and not policy.zero_drift:  # where the file came from changes nothing: no stat
            return self._script(ref, policy, event, path)
        drift = self._written_later(event, path)
        if known and not drift:
            return self._script(ref, policy, event, path)
        if policy.mode == "discover" and not (policy.zero_drift and drift):
            parent = str(event.get("proc.pexepath") or "")
            user = str(event.get("user.name") or "")
            for name in dict.fromkeys([path, *aliases]):
                if name == path or not policy.process_allowed(name):
                    self._learn(ref, "processes", ProcessRule(path=name, parents=(parent,) if parent else (),
                                                              users=(user,) if user else (), from_image=not drift))
            return self._script(ref, policy, event, path)
        pid = event.get("proc.pid")
        if isinstance(pid, int):
            self._deviant_pids[pid] = self.clock()
        blocked = (policy.mode == "protect" or bool(policy.zero_drift and drift)) and self._exec_guarded(ref, event)
        what = f"process {path}" + (" (written after the container started)" if drift else "") + (
            " (found running when its pod was listed)" if aliases else "")
        return [self._alert(ref, policy, event, Deviation(RULE_PROCESS, what, blocked, drift))]

    def _script(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event, interpreter: str) -> list[Alert]:
        """An allowed interpreter running a script file: learned in discover, a deviation when unknown (and the
        code its environment makes it load, `_env_loaded`)."""
        alerts = self._env_loaded(ref, policy, event, interpreter)
        if not runs_scripts(interpreter):  # most execs (what script_of tells first), without reading the arguments
            return alerts
        script = script_of(interpreter, str(event.get("proc.args") or ""), str(event.get("proc.cwd") or ""),
                           str(event.get("proc.exe") or ""))
        if script is None or policy.script_allowed(script):
            return alerts
        if policy.mode == "discover":
            self._learn(ref, "scripts", ScriptRule(path=script, interpreters=(interpreter,)))
            return alerts
        what = f"script {script} (run by {interpreter})"
        blocked = policy.mode == "protect" and self._exec_guarded(ref, event)  # killed before it runs
        return [*alerts, self._alert(ref, policy, event, Deviation(RULE_PROCESS, what, blocked, False))]

    def _env_loaded(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event, exe: str) -> list[Alert]:
        """Code an allowed program loads because of its environment (BASH_ENV, NODE_OPTIONS, RUBYOPT, LD_PRELOAD:
        `env_code`): learned in discover as script rules; outside the profile, one deviation per exec. Not
        blocked: the exec guard judges argv, not the environment."""
        env = event.get("proc.env")
        if not env:
            return []
        loaded = env_code(exe, str(env), str(event.get("proc.cwd") or ""))
        unknown = [(var, path) for var, path in loaded if not policy.script_allowed(path)]
        if not unknown:
            return []
        if policy.mode == "discover":
            for path in dict.fromkeys(path for _, path in unknown):
                self._learn(ref, "scripts", ScriptRule(path=path, interpreters=(exe,)))
            return []
        what = "code " + ", ".join(f"{path} ({var})" for var, path in unknown) + f" loaded by {exe}"
        return [self._alert(ref, policy, event, Deviation(RULE_PROCESS, what, False, False))]

    def _exec_guarded(self, ref: WorkloadRef, event: Event) -> bool:
        """Whether the exec guard judges this exec: its workload is enforced and its container (or its pod) is in the
        plan."""
        if event.get("_running"):
            return False  # found running: nothing stopped it at exec
        if event.get("_held_unlisted"):
            return True  # held in a pod not listed yet: the enforcer decided it once the pod was listed
        # a planned pod's execs are held and judged whatever its containers (also the moment after its listing,
        # before the enforcer's next look counts its workload as enforced: the exec's event comes at execve's exit,
        # after the enforcer's decision)
        return (ref in self.enforced and event.get("_cgroup_id") in self.guarded_cgroups) or \
            event.get("k8s.pod.uid") in self.guarded_pods

    def _written_later(self, event: Event, path: str) -> bool:
        start = self.container_start(event)
        if start is None:
            return False
        pid = event.get("proc.pid")
        for candidate in (f"/proc/{pid}/exe" if pid else "", path):
            if not candidate:
                continue
            try:
                return os.stat(candidate).st_ctime > start
            except OSError:
                continue
        return False

    def _open(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event) -> list[Alert]:
        path = str(event.get("fd.name") or "")
        if not path.startswith(FILE_ROOTS):
            return []
        write = bool(event.get("evt.is_open_write"))
        res = _rawres(event)
        denied = res in (-EPERM, -EACCES)
        if res is not None and res < 0 and not denied:
            return []  # ENOENT and the like: nothing was opened
        if policy.file_allowed(path, write):
            return []
        if policy.mode == "discover":
            self._learn(ref, "files", FileRule(path=path, access="write" if write else "read"))
            return []
        blocked = denied and ref in self.enforced and policy.mode == "protect"
        what = f"{'write' if write else 'read'} {path}"
        return [self._alert(ref, policy, event, Deviation(RULE_FILE, what, blocked))]

    def _connect(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event, podmap: PodMap) -> list[Alert]:
        ip, port = str(event.get("fd.sip") or ""), event.get("fd.sport")
        proto = str(event.get("fd.l4proto") or "").upper()
        if event.get("fd.type") not in ("ipv4", "ipv6") or not ip or not isinstance(port, int) or port == 0:
            return []
        if proto not in ("TCP", "UDP") or _unspecified(ip):
            return []
        res = _rawres(event)
        peer_wl = _workload_of_ip(podmap, ip)
        if policy.egress_allowed(ip, peer_wl, port, proto):
            return []
        if policy.mode == "discover":
            if res is None or res >= 0 or res == -EINPROGRESS:  # a send returns the bytes sent
                self._learn(ref, "egress", NetRule(peer=_peer(ip, peer_wl), port=port, protocol=proto))
            return []
        blocked = res == -EPERM and ref in self.enforced and policy.mode == "protect"
        what = f"egress {proto} {ip}:{port}" + (f" ({peer_wl})" if peer_wl else "")
        return [self._alert(ref, policy, event, Deviation(RULE_EGRESS, what, blocked))]

    def _accept(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event, podmap: PodMap) -> list[Alert]:
        ip, port = str(event.get("fd.cip") or ""), event.get("fd.sport")
        proto = str(event.get("fd.l4proto") or "").upper()
        if not ip or not isinstance(port, int) or proto not in ("TCP", "UDP"):
            return []
        peer_wl = _workload_of_ip(podmap, ip)
        if policy.mode == "discover" and not any(r.port == port and r.protocol == proto for r in policy.listen):
            self._learn(ref, "listen", NetRule(port=port, protocol=proto))
        if policy.ingress_allowed(ip, peer_wl, port, proto):
            return []
        if policy.mode == "discover":
            self._learn(ref, "ingress", NetRule(peer=_peer(ip, peer_wl), port=port, protocol=proto))
            return []
        what = f"ingress {proto} {ip} -> :{port}" + (f" ({peer_wl})" if peer_wl else "")
        return [self._alert(ref, policy, event, Deviation(RULE_INGRESS, what, False))]

    def _alert(self, ref: WorkloadRef, policy: WorkloadPolicy, event: Event, dev: Deviation) -> Alert:
        self.deviations += 1
        self._last_deviation[ref] = self.clock()
        action = "blocked" if dev.blocked else "alert"
        fields: dict[str, Any] = {key: event[key] for key in EVENT_FIELDS if key in event}
        fields.update({"policy.workload": str(ref), "policy.mode": policy.mode, "policy.deviation": dev.what,
                       "policy.action": action})
        tags = list(TAGS[dev.rule]) + ([DRIFT_TAG] if dev.drift else [])
        return Alert(
            rule=dev.rule, priority="Error" if dev.blocked else "Warning", source="syscall",
            output=(f"{'Blocked' if dev.blocked else 'Deviation from'} workload policy of {ref} "
                    f"({policy.mode}): {dev.what} (command={event.get('proc.cmdline', '<NA>')} "
                    f"pod={event.get('k8s.pod.name', '<NA>')})"),
            output_fields=fields, tags=tags, workload=event.workload,
        )

    # -- time ------------------------------------------------------------------------------------
    def running_events(self) -> list[Event]:
        """The exec events held for pods listed only now (`_listed_execs`), and those of the processes already
        running in the pods listed since the last call
        (kubeguard.policy.running), for `process`: a container that started before the agent saw it ran its
        entrypoint (and its sandbox the pause program) unseen. In discover they are learned, so that the container's
        next start after the promotion is no deviation; in monitor and protect one outside the profile raises an
        alert, not blocked (it runs already: a program started while no agent watched)."""
        podmap = self.podmap()
        held = self._listed_execs(podmap)
        if self.running is None:
            return held
        listed = set(podmap.owners)
        new = listed - self._listed_pods - self.exempt_pods - self._seen_unlisted
        self._seen_unlisted = {uid for uid in self._seen_unlisted - listed if uid in self.guarded_pods}
        self._listed_pods = listed
        if not new:
            return held
        self._running_pods += len(new)
        return [*held, *(e for e in self.running(new, podmap)
                         if not (str(e.get("k8s.pod.uid")) in self.guarded_pods and _stopped(e.get("proc.pid"))))]

    def _listed_execs(self, podmap: PodMap) -> list[Event]:
        """The exec events kept while their pod was held unlisted whose pod is listed now (judged then: the
        enforcer decided the held exec by the same policy); those of pods no longer held are dropped."""
        if not self._unlisted_execs:
            return []
        ready = [e for e in self._unlisted_execs if str(e.get("k8s.pod.uid")) in podmap.owners]
        self._unlisted_execs = [e for e in self._unlisted_execs if str(e.get("k8s.pod.uid")) not in podmap.owners
                                and str(e.get("k8s.pod.uid")) in self.guarded_pods]
        return ready

    def tick(self) -> list[str]:
        """Reload the directory, promote quiet workloads, save learning; returns status lines."""
        messages: list[str] = []
        if self._running_learned:
            messages.append(f"policy: learned {self._running_learned} rules from the live processes of "
                            f"{self._running_pods} newly listed pods")
        if self._running_learned or self._running_pods:
            self._running_learned = self._running_pods = 0
        with self._lock:
            problems = self.store.reload()
            messages.extend(f"policy: {p}" for p in problems)
            now = self.clock()
            for ref, learned in self.store.learned.items():
                user = self.store.user.get(ref)
                quiet = now - self.store.last_change.get(ref, now) >= self.quiet_window
                if learned.mode == "discover" and (user is None or user.mode is None) and quiet:
                    learned.mode = "monitor"
                    self._last_deviation[ref] = now  # its time in monitor starts here
                    self._dirty.add(ref)
                    messages.append(f"policy: {ref} promoted to monitor after "
                                    f"{self.quiet_window:g}s without new behaviour")
                elif learned.mode == "monitor" and (user is None or user.mode is None) and self._clean_for(ref, now):
                    learned.mode = "protect"
                    self._dirty.add(ref)
                    messages.append(f"policy: {ref} promoted to protect after {self.protect_after:g}s in monitor "
                                    f"without a deviation")
            changed = self._dirty
            self._dirty = set()
            self._effective.clear()
            self._exec_allowed.clear()
            self.version += 1
            if changed:
                try:
                    self.store.save_learned(changed)
                except OSError as exc:
                    self._dirty |= changed
                    messages.append(f"policy: cannot save learned policies in {self.store.learned_dir}: "
                                    f"{exc.strerror}")
        return messages

    def _clean_for(self, ref: WorkloadRef, now: float) -> bool:
        """True when `protect_after` is set and workload `ref` has had no deviation for that long (since its
        promotion to monitor, or the engine's start, when it had none)."""
        if self.protect_after is None:
            return False
        return now - self._last_deviation.get(ref, self.started) >= self.protect_after

    def save(self) -> None:
        """Write everything learned (at stop)."""
        with self._lock:
            self.store.save_learned()
            self._dirty.clear()

    def effective(self) -> dict[WorkloadRef, WorkloadPolicy]:
        """A copy of every workload's policy in force (for the enforcer)."""
        with self._lock:
            out: dict[WorkloadRef, WorkloadPolicy] = {}
            for ref in self.store.workloads():
                policy = self.store.effective(ref)
                if policy is not None:
                    out[ref] = policy.copy()
            return out


def _stopped(pid: object) -> bool:
    """Whether process `pid` is stopped (held at exec by the exec guard, not running its own code)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _exe_of(pid: object) -> str:
    """/proc/PID/exe of a still running process ("" when gone or unreadable)."""
    if not isinstance(pid, int) or pid <= 0:
        return ""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _succeeded(event: Event) -> bool:
    res = _rawres(event)
    return res == 0 if res is not None else event.get("evt.res", "SUCCESS") == "SUCCESS"


def _rawres(event: Event) -> int | None:
    value = event.get("evt.rawres")
    return value if isinstance(value, int) else None


def _unspecified(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_unspecified
    except ValueError:
        return True


def _workload_of_ip(podmap: PodMap, ip: str) -> str:
    pod = podmap.by_ip.get(ip)
    if pod is None or not pod.pod_uid:
        return ""
    ref = podmap.owners.get(pod.pod_uid)
    return str(ref) if ref else ""


def _peer(ip: str, workload: str) -> Peer:
    if workload:
        return Peer(workload=workload)
    return Peer(cidr=f"{ip}/{128 if ':' in ip else 32}")


def cgroup_start_time(root: Path | None, path_of: Callable[[int], str | None]) -> Callable[[Event], float | None]:
    """A `container_start` function: the change time of the event's cgroup directory (its creation)."""
    cache: dict[int, float | None] = {}

    def start(event: Event) -> float | None:
        cid = event.get("_cgroup_id")
        if root is None or not isinstance(cid, int) or not cid:
            return None
        if cid not in cache:
            rel = path_of(cid)
            try:
                cache[cid] = os.stat(str(root) + rel).st_ctime if rel and rel != "/" else None
            except OSError:
                cache[cid] = None
        return cache[cid]

    return start

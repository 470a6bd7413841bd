"""Processes already running when a pod is first listed: read from a /proc tree (kubeguard.policy.running) and
learned by the policy engine for workloads in discover, once per pod."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from test_policy import PODS, WEB, Clock, exec_event

from kubeguard.cluster.owners import WorkloadRef
from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Event
from kubeguard.policy.podwatch import pod_dirs
from kubeguard.policy.policy_engine import RULE_PROCESS, PolicyEngine
from kubeguard.policy.running import exec_paths, inside, running_execs
from kubeguard.policy.store import PolicyStore

POD_UID = "0c3e1a52-7d0b-4f1e-9a55-2b7f0d1c9e41"
CGROUP = f"/kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/cri-containerd-{'a' * 64}.scope"


def fake_process(proc: Path, pid: int, *, root: Path, exe: str, argv: list[str], cwd: str = "/",
                 env: str = "", cgroup: str = CGROUP, ppid: int = 1, uid: int = 0) -> None:
    """/proc/PID as the kernel shows a process whose root is `root` (its links name host paths)."""
    base = proc / str(pid)
    base.mkdir(parents=True)
    (base / "root").symlink_to(root)
    (base / "exe").symlink_to(str(root).rstrip("/") + exe)
    (base / "cwd").symlink_to(str(root).rstrip("/") + cwd)
    (base / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (base / "environ").write_bytes(b"\0".join(e.encode() for e in env.split()) + b"\0" if env else b"")
    (base / "cgroup").write_text(f"0::{cgroup}\n")
    (base / "status").write_text(f"Name:\t{argv[0][-15:]}\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")


def container_root(tmp_path: Path) -> Path:
    """A container's files: /usr/bin/dash, /bin/sh -> dash, /usr/bin/sleep, /app/run.sh."""
    root = tmp_path / "rootfs"
    for name in ("usr/bin/dash", "usr/bin/sleep", "app/run.sh"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "bin").mkdir()
    (root / "bin" / "sh").symlink_to("../usr/bin/dash")
    return root


def pods_with(uid: str) -> PodMap:
    return PodMap.from_pods([{
        "kind": "Pod", "metadata": {"name": "web-5d9c7-ccccc", "namespace": "shop", "uid": uid,
                                    "labels": {"app": "web", "pod-template-hash": "5d9c7"},
                                    "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c7",
                                                         "controller": True}]},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"podIP": "10.0.0.9",
                   "containerStatuses": [{"name": "app", "containerID": "containerd://" + "a" * 64}]},
    }])


def test_paths_inside_the_container() -> None:
    root = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs"
    assert inside(root + "/usr/bin/dash", root) == "/usr/bin/dash"
    assert inside(root, root) == "/"
    assert inside("/usr/bin/dash", "/") == "/usr/bin/dash"
    assert inside(root + "x/usr/bin/dash", root) == root + "x/usr/bin/dash"  # not below it: as it is


def test_the_exec_is_named_as_its_argv0_resolves(tmp_path: Path) -> None:
    """The path an exec gave: argv[0] when absolute, else the first PATH entry holding it (inside the process's
    root); the file's own path too when that is a symlink's target; argv[0] naming another file is ignored."""
    root, proc = container_root(tmp_path), tmp_path / "proc"
    fake_process(proc, 10, root=root, exe="/usr/bin/dash", argv=["/bin/sh", "/app/run.sh"])
    assert exec_paths(10, ["/bin/sh", "/app/run.sh"], "", str(proc)) == ["/bin/sh", "/usr/bin/dash"]
    fake_process(proc, 11, root=root, exe="/usr/bin/dash", argv=["sh"])
    assert exec_paths(11, ["sh"], "PATH=/nowhere:/bin:/usr/bin", str(proc)) == ["/bin/sh", "/usr/bin/dash"]
    (root / "usr/bin/sh").write_text("another sh")  # execvp would have run this one: not the running file
    assert exec_paths(11, ["sh"], "PATH=/usr/bin:/bin", str(proc)) == ["/usr/bin/dash"]
    fake_process(proc, 12, root=root, exe="/usr/bin/sleep", argv=["sleep", "9"])
    assert exec_paths(12, ["sleep", "9"], "", str(proc)) == ["/usr/bin/sleep"]  # the default PATH
    assert exec_paths(12, ["/bin/sh"], "", str(proc)) == ["/usr/bin/sleep"]  # argv[0] set to another file
    assert exec_paths(13, ["x"], "", str(proc)) == []  # gone


def test_running_execs_reads_what_the_engine_reads(tmp_path: Path) -> None:
    root, proc = container_root(tmp_path), tmp_path / "proc"
    host = tmp_path / "host"
    host.mkdir()
    (host / "shim").write_text("shim")
    fake_process(proc, 1, root=Path("/"), exe=str(host / "shim"), argv=["shim"], cgroup="/system.slice/c.service")
    fake_process(proc, 20, root=root, exe="/usr/bin/dash", argv=["/bin/sh", "run.sh", "-v"], cwd="/app",
                 env="PATH=/usr/bin HOME=/root", ppid=1, uid=0)
    fake_process(proc, 21, root=root, exe="/usr/bin/sleep", argv=["sleep", "100"], ppid=20, uid=65534)
    (proc / "22").mkdir()  # gone while being read: no cgroup file
    events = list(running_execs({POD_UID}, pods_with(POD_UID), lambda uid: {0: "root"}.get(uid, str(uid)),
                                proc=str(proc)))
    by_pid = {e["proc.pid"]: e for e in events}
    assert sorted(by_pid) == [20, 21]
    sh = by_pid[20]
    assert sh["evt.type"] == "execve" and sh["_running"] and sh["k8s.pod.uid"] == POD_UID
    assert sh["proc.exepath"] == "/bin/sh" and sh["_exepaths"] == ["/bin/sh", "/usr/bin/dash"]
    assert sh["proc.args"] == "run.sh -v" and sh["proc.exe"] == "/bin/sh" and sh["proc.cwd"] == "/app/"
    assert sh["proc.pexepath"] == str(host / "shim") and sh["user.name"] == "root"
    assert sh["proc.env"] == "PATH=/usr/bin HOME=/root"
    assert sh["k8s.pod.labels"] == {"app": "web", "pod-template-hash": "5d9c7"}
    sleep = by_pid[21]
    assert sleep["_exepaths"] == ["/usr/bin/sleep"] and sleep["user.name"] == "65534"
    assert sleep["proc.pexepath"] == "/usr/bin/dash"  # the parent's path inside its own root
    assert list(running_execs({"another"}, pods_with(POD_UID), str, proc=str(proc))) == []
    assert list(running_execs({POD_UID}, pods_with(POD_UID), str, proc=str(tmp_path / "none"))) == []


class Scanner:
    """The engine's `running`: canned exec events per pod, and the pods it was asked for."""

    def __init__(self, events: dict[str, list[Event]]) -> None:
        self.events = events
        self.asked: list[set[str]] = []

    def __call__(self, uids: set[str], podmap: PodMap) -> Iterable[Event]:
        self.asked.append(set(uids))
        return [e for uid in sorted(uids) for e in self.events.get(uid, [])]


def running(uid: str, paths: list[str], pid: int, args: str = "") -> Event:
    event = exec_event(uid, paths[0], pid=pid)
    event.update({"_running": True, "_exepaths": paths, "proc.args": args, "proc.cwd": "/app/", "proc.exe": paths[0]})
    return event


def test_programs_running_in_newly_listed_pods_are_learned_once(tmp_path: Path) -> None:
    """Each pod is read once, when first listed; what runs in a discovering workload's pods is learned under each
    name its exec may have had (and the script it runs), so that container's restart after the promotion is no
    deviation; the agent's own pod is never read."""
    store = PolicyStore(tmp_path / "policies")
    store.open()
    scanner = Scanner({"u1": [running("u1", ["/bin/sh", "/usr/bin/dash"], 30, "/app/run.sh")],
                       "u2": [running("u2", ["/usr/bin/sleep"], 31)],
                       "u4": [running("u4", ["/usr/bin/kubeguard"], 33)]})
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=Clock(), running=scanner)
    engine.exempt_pods = frozenset({"u4"})
    events = engine.running_events()
    assert scanner.asked == [{"u1", "u2", "u3"}] and len(events) == 2
    assert [alert for event in events for alert in engine.process(event)] == []
    assert engine.tick() == ["policy: learned 4 rules from the live processes of 3 newly listed pods"]
    learned = engine.store.learned[WEB]
    assert sorted(r.path for r in learned.processes) == ["/bin/sh", "/usr/bin/dash", "/usr/bin/sleep"]
    assert [r.path for r in learned.scripts] == ["/app/run.sh"]
    assert WorkloadRef("shop", "Pod", "debug") not in engine.store.learned  # the exempt pod: not even seen
    assert engine.running_events() == [] and len(scanner.asked) == 1  # no pod is new: not read again
    assert engine.tick() == []
    engine.store.learned[WEB].mode = "monitor"
    engine.tick()
    assert engine.process(exec_event("u1", "/bin/sh", pid=40)) == []  # the container's restart: learned
    assert engine.process(exec_event("u2", "/usr/bin/sleep", pid=41)) == []
    (alert,) = engine.process(exec_event("u1", "/usr/bin/nc", pid=42))  # and still a deviation elsewhere
    assert alert.rule == RULE_PROCESS


def test_a_program_found_running_outside_the_profile_is_an_alert_never_a_kill(tmp_path: Path) -> None:
    """In monitor and protect a process found running that the profile does not allow (started while no agent
    watched) raises one alert, `alert` even in protect with the guards in place; one allowed under any of its
    names raises none, nor one already alerted on when it started."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "web.yaml").write_text(
        "apiVersion: kubeguard.io/v1alpha1\nkind: WorkloadPolicy\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  workload: {kind: Deployment, name: web}\n  mode: protect\n"
        "  processes:\n    - {path: /usr/bin/dash}\n")
    store = PolicyStore(directory)
    store.open()
    assert not store.errors
    miner = running("u1", ["/tmp/xmrig"], 50)
    miner["_cgroup_id"] = 7
    scanner = Scanner({"u1": [running("u1", ["/bin/sh", "/usr/bin/dash"], 30), miner],
                       "u2": [running("u2", ["/usr/bin/sleep"], 31)]})
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=Clock(), running=scanner)
    engine.enforced, engine.guarded_cgroups = {WEB}, frozenset({7})
    assert len(engine.process(exec_event("u2", "/usr/bin/sleep", pid=31))) == 1  # alerted when it started
    alerts = [alert for event in engine.running_events() for alert in engine.process(event)]
    assert [a.output_fields["policy.deviation"] for a in alerts] == [
        "process /tmp/xmrig (found running when its pod was listed)"]
    assert alerts[0].output_fields["policy.action"] == "alert" and alerts[0].output_fields["policy.mode"] == "protect"
    assert engine.store.learned.get(WEB) is None or engine.store.learned[WEB].processes == []
    assert engine.tick() == []  # nothing learned


def test_without_a_scanner_nothing_running_is_learned(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path / "policies")
    store.open()
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=Clock())
    assert engine.tick() == [] and engine.store.learned == {}



def test_the_pods_own_cgroups_name_their_processes(tmp_path: Path) -> None:
    """With the cgroup v2 root known, only the processes in the new pods' cgroups are read (both kubelet cgroup
    drivers' layouts); a pod whose cgroup is not there makes every process's /proc entry be read instead."""
    root, proc = container_root(tmp_path), tmp_path / "proc"
    cgroups = tmp_path / "cgroup"
    systemd_uid = "5e0c2d1b-6a2f-4c3e-8d7a-0f1e2d3c4b5a"
    pod_dir = cgroups / CGROUP.strip("/").rsplit("/", 1)[0]
    (pod_dir / ("cri-containerd-" + "a" * 64 + ".scope")).mkdir(parents=True)
    (pod_dir / ("cri-containerd-" + "a" * 64 + ".scope") / "cgroup.procs").write_text("20\n")
    (pod_dir / "cgroup.procs").write_text("")
    (cgroups / "kubepods" / "besteffort" / "pod9d8c7b6a-1111-2222-3333-444455556666").mkdir(parents=True)
    (cgroups / "kubepods.slice" / f"kubepods-pod{systemd_uid.replace('-', '_')}.slice").mkdir()
    (cgroups / "system.slice" / "pod00000000-0000-0000-0000-000000000000").mkdir(parents=True)  # not kubepods
    assert pod_dirs(str(cgroups)) == {POD_UID: str(pod_dir), systemd_uid: str(cgroups / "kubepods.slice" / (
        f"kubepods-pod{systemd_uid.replace('-', '_')}.slice")),
        "9d8c7b6a-1111-2222-3333-444455556666": str(cgroups / "kubepods" / "besteffort" /
                                                    "pod9d8c7b6a-1111-2222-3333-444455556666")}
    fake_process(proc, 20, root=root, exe="/usr/bin/dash", argv=["/bin/sh"])
    fake_process(proc, 21, root=root, exe="/usr/bin/sleep", argv=["sleep"])  # its cgroup.procs line is missing
    found = running_execs({POD_UID}, pods_with(POD_UID), str, cgroup_root=cgroups, proc=str(proc))
    assert [e["proc.pid"] for e in found] == [20]
    everything = running_execs({POD_UID, "not-here"}, pods_with(POD_UID), str, cgroup_root=cgroups, proc=str(proc))
    assert sorted(e["proc.pid"] for e in everything) == [20, 21]

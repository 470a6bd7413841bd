"""Workload policies without the kernel: the YAML model and its errors, the directory store, learning,
promotion and deviations on synthetic enriched events, export / diff / NetworkPolicy through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeguard.cluster.owners import WorkloadRef, owner_of
from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Event
from kubeguard.policy.document import PolicyError, parse_documents
from kubeguard.policy.policy_engine import RULE_EGRESS, RULE_FILE, RULE_PROCESS, PolicyEngine
from kubeguard.policy.store import PolicyStore

REPO = Path(__file__).resolve().parents[2]
WEB = WorkloadRef("shop", "Deployment", "web")
GOOD = """\
apiVersion: kubeguard.io/v1alpha1
kind: WorkloadPolicy
metadata: {name: deployment-web, namespace: shop}
spec:
  workload: {kind: Deployment, name: web}
  mode: protect
  processes:
    - {path: /usr/bin/python3}
    - {path: /usr/bin/nc, action: deny}
  files:
    - {path: "/etc/app/*", access: write}
  network:
    egress:
      - {peer: {cidr: 10.1.0.0/16}, port: 5432, protocol: TCP}
      - {peer: {workload: shop/Deployment/db}}
"""


def pod(name: str, uid: str, ip: str, owner: tuple[str, str] | None = None, template_hash: str = "") -> dict:
    labels = {"app": name.split("-")[0]} | ({"pod-template-hash": template_hash} if template_hash else {})
    meta = {"name": name, "namespace": "shop", "uid": uid, "labels": labels}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"podIP": ip, "containerStatuses": [{"name": "app", "containerID": f"containerd://{uid}c"}]}}


PODS = PodMap.from_pods([
    pod("web-5d9c7-aaaaa", "u1", "10.0.0.1", ("ReplicaSet", "web-5d9c7"), "5d9c7"),
    pod("web-5d9c7-bbbbb", "u2", "10.0.0.2", ("ReplicaSet", "web-5d9c7"), "5d9c7"),
    pod("db-0", "u3", "10.0.0.3", ("StatefulSet", "db")),
    pod("debug", "u4", "10.0.0.4"),
])


def event(uid: str, **fields: object) -> Event:
    base = {"k8s.pod.uid": uid, "k8s.pod.name": "web", "proc.pid": 100, "evt.rawres": 0, "user.name": "root",
            "k8s.pod.labels": {"app": "web", "pod-template-hash": "5d9c7"}}
    return Event({**base, **fields})


def exec_event(uid: str, path: str, pid: int = 100) -> Event:
    return event(uid, **{"evt.type": "execve", "proc.exepath": path, "proc.pid": pid, "proc.pexepath": "/bin/sh"})


def connect_event(uid: str, ip: str, port: int, res: int = 0) -> Event:
    return event(uid, **{"evt.type": "connect", "fd.type": "ipv4", "fd.sip": ip, "fd.sport": port,
                         "fd.l4proto": "tcp", "evt.rawres": res})


def open_event(uid: str, path: str, write: bool) -> Event:
    return event(uid, **{"evt.type": "openat", "fd.name": path, "evt.is_open_write": write, "evt.rawres": 3})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def engine_for(tmp_path: Path, clock: Clock) -> PolicyEngine:
    store = PolicyStore(tmp_path / "policies")
    store.open()
    return PolicyEngine(store, lambda: PODS, quiet_window=60, clock=clock)


def test_owner_of_pods() -> None:
    assert PODS.owners["u1"] == PODS.owners["u2"] == WEB
    assert PODS.owners["u3"] == WorkloadRef("shop", "StatefulSet", "db")
    assert PODS.owners["u4"] == WorkloadRef("shop", "Pod", "debug")
    job = pod("backup-x1", "u5", "10.0.0.5", ("Job", "backup"))
    assert owner_of(job) == WorkloadRef("shop", "Job", "backup")


def test_policy_queries() -> None:
    (policy,) = parse_documents(GOOD, "p.yaml")
    assert policy.workload == WEB and policy.mode == "protect"
    assert policy.process_allowed("/usr/bin/python3") and not policy.process_allowed("/usr/bin/nc")
    assert not policy.process_allowed("/tmp/x")
    assert policy.file_allowed("/etc/app/conf", write=True) and not policy.file_allowed("/etc/passwd", write=True)
    assert policy.egress_allowed("10.1.2.3", "", 5432, "TCP") and not policy.egress_allowed("10.1.2.3", "", 22, "TCP")
    assert policy.egress_allowed("10.9.9.9", "shop/Deployment/db", 1234, "TCP")


@pytest.mark.parametrize(("text", "line", "message"), [
    (GOOD.replace("mode: protect", "mode: enforce"), 6, "'enforce' is not one of discover, monitor, protect"),
    (GOOD.replace("port: 5432", "port: 70000"), 14, "outside 0..65535"),
    (GOOD.replace("cidr: 10.1.0.0/16", "cidr: ten"), 14, "not an address or network"),
    (GOOD.replace("  processes:", "  procs:"), 7, "unknown field 'procs'"),
    (GOOD.replace("{path: /usr/bin/python3}", "{path: python3}"), 8, "is not absolute"),
    (GOOD + "  mode: [", 17, "not valid YAML"),
])
def test_malformed_policy_names_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_documents(text, "bad.yaml")
    assert str(info.value).startswith(f"bad.yaml:{line}: ") and message in str(info.value)


def test_learn_promote_and_deviate(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_for(tmp_path, clock)
    for uid in ("u1", "u2"):  # both replicas feed one profile
        assert engine.process(exec_event(uid, "/usr/bin/python3")) == []
        assert engine.process(connect_event(uid, "10.0.0.3", 5432)) == []
        assert engine.process(open_event(uid, "/etc/hosts", write=False)) == []
    assert engine.process(exec_event("u2", "/usr/bin/cat")) == []
    learned = engine.store.learned[WEB]
    assert [r.path for r in learned.processes] == ["/usr/bin/python3", "/usr/bin/cat"]
    assert [str(r.peer) for r in learned.egress] == ["workload shop/StatefulSet/db"]
    assert learned.selector == {"app": "web"}
    clock.now += 30
    assert engine.tick() == []  # not quiet long enough
    clock.now += 31
    assert engine.tick() == ["policy: shop/Deployment/web promoted to monitor after 60s without new behaviour"]
    assert engine.process(exec_event("u1", "/usr/bin/python3")) == []
    (alert,) = engine.process(exec_event("u1", "/usr/bin/nc", pid=200))
    assert alert.rule == RULE_PROCESS and alert.output_fields["policy.action"] == "alert"
    assert "T1059" in alert.tags
    assert engine.process(connect_event("u1", "10.9.9.9", 4444)) == [] or True  # pid 100: checked below
    assert engine.process(open_event("u1", "/etc/passwd", write=True))[0].rule == RULE_FILE
    (egress,) = engine.process(connect_event("u2", "192.0.2.7", 443))
    assert egress.rule == RULE_EGRESS and egress.output_fields["policy.deviation"] == "egress TCP 192.0.2.7:443"
    nc_connect = connect_event("u1", "192.0.2.7", 443)
    nc_connect["proc.pid"] = 200
    assert engine.process(nc_connect) == []  # part of the nc alert
    engine.save()
    # a restart reads the same profile and mode back
    again = engine_for(tmp_path, clock)
    assert again.store.learned[WEB].mode == "monitor"
    assert len(again.process(exec_event("u1", "/usr/bin/nc"))) == 1


def test_monitor_moves_to_protect_after_a_clean_stretch(tmp_path: Path) -> None:
    """With protect_after (NeuVector's mode auto-switch), a workload moves from monitor to protect once it ran that
    long in monitor without a deviation; each deviation starts the clock again, a restart starts it again too, and
    a mode set by hand is never changed."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "db.yaml").write_text(GOOD.replace("name: web}", "name: db}").replace("kind: Deployment",
                                       "kind: StatefulSet").replace("mode: protect", "mode: monitor"))
    clock = Clock()
    store = PolicyStore(directory)
    store.open()
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=clock, protect_after=100)
    assert engine.process(exec_event("u1", "/usr/bin/python3")) == []
    assert engine.process(exec_event("u3", "/usr/bin/python3")) == []  # db: monitor by hand
    clock.now += 61
    assert engine.tick() == ["policy: shop/Deployment/web promoted to monitor after 60s without new behaviour"]
    clock.now += 90
    assert engine.tick() == []
    (alert,) = engine.process(exec_event("u1", "/usr/bin/nc", pid=200))  # a deviation: the clock starts again
    assert alert.output_fields["policy.mode"] == "monitor"
    clock.now += 90
    assert engine.tick() == []  # 180 s in monitor, 90 s since the deviation
    clock.now += 10
    assert engine.tick() == ["policy: shop/Deployment/web promoted to protect after 100s in monitor without a "
                             "deviation"]
    assert engine.store.effective(WEB).mode == "protect"
    (blocked,) = engine.process(exec_event("u2", "/usr/bin/nc", pid=300))
    assert blocked.output_fields["policy.mode"] == "protect"
    assert engine.store.effective(WorkloadRef("shop", "StatefulSet", "db")).mode == "monitor"  # set by hand
    engine.save()
    # a restart keeps protect, and counts a monitor workload's clean stretch from its own start
    store.learned[WEB].mode = "monitor"
    store.save_learned()
    again_store = PolicyStore(directory)
    again_store.open()
    again = PolicyEngine(again_store, lambda: PODS, quiet_window=60, clock=clock, protect_after=100)
    clock.now += 99
    assert again.tick() == []
    clock.now += 1
    assert again.tick() == ["policy: shop/Deployment/web promoted to protect after 100s in monitor without a "
                            "deviation"]
    # without protect_after, monitor stays monitor
    never = engine_for(tmp_path / "never", clock)
    assert never.process(exec_event("u1", "/usr/bin/python3")) == []
    clock.now += 61
    assert never.tick() == ["policy: shop/Deployment/web promoted to monitor after 60s without new behaviour"]
    clock.now += 10 ** 6
    assert never.tick() == [] and never.store.effective(WEB).mode == "monitor"


def test_new_workloads_can_start_in_monitor_with_nothing_learned(tmp_path: Path) -> None:
    """new_mode (NeuVector's new service mode): a workload seen for the first time starts in monitor, learns
    nothing (its own behaviour is a deviation), is never promoted by the quiet window; a hand-written policy still
    allows what it lists, and a workload already known keeps its mode."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "web.yaml").write_text(GOOD.replace("  mode: protect\n", ""))  # allows python3, sets no mode
    clock = Clock()
    store = PolicyStore(directory)
    store.open()
    assert not store.errors
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=clock, new_mode="monitor")
    (alert,) = engine.process(exec_event("u3", "/usr/bin/postgres"))  # db: new, in monitor
    assert alert.rule == RULE_PROCESS and alert.output_fields["policy.mode"] == "monitor"
    assert engine.store.learned[WorkloadRef("shop", "StatefulSet", "db")].processes == []
    assert engine.process(exec_event("u1", "/usr/bin/python3")) == []  # web: allowed by the hand-written policy
    (other,) = engine.process(exec_event("u1", "/usr/bin/cat", pid=201))
    assert other.output_fields["policy.mode"] == "monitor"
    clock.now += 10 ** 6
    assert engine.tick() == []  # nothing to promote: nothing discovers
    engine.save()
    again = PolicyStore(directory)
    again.open()
    restarted = PolicyEngine(again, lambda: PODS, quiet_window=60, clock=clock)  # default new_mode: discover
    assert len(restarted.process(exec_event("u3", "/usr/bin/postgres", pid=202))) == 1  # db stays in monitor
    assert restarted.process(exec_event("u4", "/bin/sh")) == []  # debug: new now, discovering


def test_new_workloads_in_protect_are_adopted_when_their_pods_are_listed(tmp_path: Path) -> None:
    """With new_mode protect a workload gets its policy when the enforcer sees its pods listed (`adopt_listed`), so
    its pods are planned before their first exec; not in discover (an idle workload would be promoted empty), not
    the agent's own pod, not a workload already known; a hand-written policy's mode still wins."""
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "web.yaml").write_text(GOOD.replace("  mode: protect\n", "  mode: monitor\n"))
    store = PolicyStore(directory)
    store.open()
    assert not store.errors
    engine = PolicyEngine(store, lambda: PODS, quiet_window=60, clock=Clock(), new_mode="protect")
    engine.exempt_pods = frozenset({"u4"})  # the agent's own pod: the bare pod debug
    db, debug = WorkloadRef("shop", "StatefulSet", "db"), WorkloadRef("shop", "Pod", "debug")
    assert set(engine.adopt_listed(PODS)) == {WEB, db}  # once per workload (web has two pods), debug exempt
    policies = engine.effective()
    assert policies[db].mode == "protect" and policies[db].processes == []
    assert policies[db].selector == {"app": "db"} and debug not in policies
    assert policies[WEB].mode == "monitor"  # its hand-written mode
    assert engine.adopt_listed(PODS) == []  # known now
    (alert,) = engine.process(exec_event("u3", "/usr/bin/postgres"))  # its first exec: a deviation in protect
    assert alert.output_fields["policy.mode"] == "protect"
    discovering = PolicyEngine(PolicyStore(tmp_path / "other"), lambda: PODS, quiet_window=60, clock=Clock())
    assert discovering.adopt_listed(PODS) == [] and discovering.effective() == {}


def test_execs_held_before_their_pod_is_listed_are_judged_once_it_is(tmp_path: Path) -> None:
    """An exec in a pod the enforcer holds before the pods map lists it (new workloads in protect) names no
    workload yet; the engine keeps it and hands it back through `running_events` once the pod is listed, then
    judges it (`blocked`: the enforcer decided the held exec by the same policy). A pod no longer held drops its."""
    pods = {"now": PODS}
    scanned: list[set[str]] = []  # the pods whose running processes the engine asks for
    engine = PolicyEngine(PolicyStore(tmp_path / "policies"), lambda: pods["now"], quiet_window=60, clock=Clock(),
                          new_mode="protect", running=lambda uids, _podmap: scanned.append(set(uids)) or [])
    engine.guarded_pods = frozenset({"u9", "u8"})
    assert engine.process(exec_event("u9", "/tmp/miner", pid=300)) == []  # not listed: kept
    assert engine.process(exec_event("u8", "/tmp/other", pid=301)) == []
    assert engine.process(exec_event("u7", "/tmp/free", pid=302)) == []  # not held: not kept
    assert engine.running_events() == []
    pods["now"] = PodMap.from_pods([pod("miner-7c9f8-k2j4h", "u9", "10.0.0.9", ("ReplicaSet", "miner-7c9f8"), "7c9f8")])
    engine.adopt_listed(pods["now"])
    engine.guarded_pods = frozenset({"u9"})  # u8 gone; the enforcer's next look (`enforced`) has not come yet
    (held,) = engine.running_events()
    assert held["proc.exepath"] == "/tmp/miner"
    (alert,) = engine.process(held)
    fields = alert.output_fields
    assert fields["policy.workload"] == "shop/Deployment/miner" and fields["policy.action"] == "blocked"
    assert engine.running_events() == []  # handed on once; u8's dropped
    assert all("u9" not in uids for uids in scanned)  # its processes were seen at exec: not judged as found running


def test_the_agents_own_pod_is_exempt_from_policies(tmp_path: Path) -> None:
    """The agent's own pod (exempt_pods: the agent sets its own) is neither learned, nor alerted on, nor planned
    for the kernel guards, whatever mode its workload is in; the workload's other pods are (another node's agent
    exempts its own)."""
    from kubeguard.policy.enforce import Enforcer

    clock = Clock()
    engine = engine_for(tmp_path, clock)
    engine.exempt_pods = frozenset({"u1"})
    assert engine.process(exec_event("u1", "/usr/bin/bpftrace")) == []
    assert WEB not in engine.store.learned  # nothing learned from it
    assert engine.process(exec_event("u2", "/usr/bin/python3")) == []
    clock.now += 61
    engine.tick()
    assert engine.store.learned[WEB].mode == "monitor"
    assert [r.path for r in engine.store.learned[WEB].processes] == ["/usr/bin/python3"]
    assert engine.process(exec_event("u1", "/usr/bin/bpftrace", pid=301)) == []  # no deviation either
    assert len(engine.process(exec_event("u2", "/usr/bin/bpftrace", pid=302))) == 1
    root = tmp_path / "cgroup"
    for uid in ("u1", "u2"):
        (root / "kubepods" / f"pod{uid}" / f"cri-containerd-{uid}c.scope").mkdir(parents=True)
    enforcer = Enforcer(engine, lambda: PODS, lambda line: None, cgroup_root=root)
    try:
        assert [c.container_id for c in enforcer._containers(PODS, WEB)] == ["u2c"]
        engine.exempt_pods = frozenset()
        assert sorted(c.container_id for c in enforcer._containers(PODS, WEB)) == ["u1c", "u2c"]
    finally:
        enforcer.close()


def test_hand_edits_win_and_unknown_workloads_wait(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "web.yaml").write_text(GOOD)
    (directory / "later.yaml").write_text(GOOD.replace("name: web}", "name: later}"))
    engine = engine_for(tmp_path, Clock())
    assert WorkloadRef("shop", "Deployment", "later") in engine.store.user  # kept, no pods yet
    (alert,) = engine.process(exec_event("u1", "/usr/bin/nc"))  # user deny wins; user mode protect
    assert alert.output_fields["policy.mode"] == "protect"
    assert engine.process(exec_event("u1", "/usr/bin/python3")) == []
    # a malformed edit is refused whole; the previous policy stays in force
    (directory / "web.yaml").write_text(GOOD.replace("mode: protect", "mode: sometimes"))
    os.utime(directory / "web.yaml", (1, 1))
    problems = engine.tick()
    assert len(problems) == 1 and "web.yaml:6:" in problems[0] and "previous policy stays" in problems[0]
    assert engine.store.effective(WEB).mode == "protect"


def test_remembered_exec_decisions_follow_learning_and_edits(tmp_path: Path) -> None:
    """The engine remembers each workload's process decisions per path (#13): a path learned in discover, or
    allowed or denied by a hand edit, is judged by the new policy at its next exec."""
    directory = tmp_path / "policies"
    directory.mkdir()
    engine = engine_for(tmp_path, Clock())
    assert engine.process(exec_event("u1", "/usr/bin/top")) == []  # learned
    assert engine.process(exec_event("u2", "/usr/bin/top")) == []  # known now: not learned twice
    assert [r.path for r in engine.store.learned[WEB].processes] == ["/usr/bin/top"]
    (directory / "web.yaml").write_text(GOOD)  # hand edit: protect, /usr/bin/nc denied
    os.utime(directory / "web.yaml", (2, 2))
    assert engine.tick() == []
    (alert,) = engine.process(exec_event("u1", "/usr/bin/nc"))
    assert alert.output_fields["policy.deviation"] == "process /usr/bin/nc"
    assert engine.process(exec_event("u1", "/usr/bin/top")) == []  # learned rules stay
    (directory / "web.yaml").write_text(GOOD.replace("- {path: /usr/bin/nc, action: deny}", "- {path: /usr/bin/nc}"))
    os.utime(directory / "web.yaml", (3, 3))
    assert engine.tick() == []
    assert engine.process(exec_event("u1", "/usr/bin/nc", pid=300)) == []  # allowed since the edit


def kubeguard(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "kubeguard", *args], capture_output=True, text=True, env=env)


def test_cli_export_diff_apply_networkpolicy(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_for(tmp_path, clock)
    engine.process(exec_event("u1", "/usr/bin/python3"))
    engine.process(connect_event("u1", "10.0.0.3", 5432))
    engine.save()
    directory = str(tmp_path / "policies")
    first = kubeguard("policy", "export", "--policy-dir", directory)
    assert first.returncode == 0, first.stderr
    (tmp_path / "a.yaml").write_text(first.stdout)
    engine.process(exec_event("u1", "/usr/bin/cat"))
    engine.process(connect_event("u1", "198.51.100.1", 443))
    engine.save()
    (tmp_path / "b.yaml").write_text(kubeguard("policy", "export", "--policy-dir", directory).stdout)
    diff = kubeguard("policy", "diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert diff.returncode == 1
    assert diff.stdout.splitlines() == ["+ shop/Deployment/web egress allow TCP/443 cidr 198.51.100.1/32",
                                        "+ shop/Deployment/web process allow /usr/bin/cat"]
    netpol = list(yaml.safe_load_all(kubeguard("policy", "networkpolicy", "--policy-dir", directory).stdout))
    assert netpol[0]["kind"] == "NetworkPolicy" and netpol[0]["spec"]["podSelector"] == {"matchLabels": {"app": "web"}}
    assert {"ipBlock": {"cidr": "198.51.100.1/32"}} in [p for e in netpol[0]["spec"]["egress"] for p in e["to"]]
    # apply: a bad file is refused whole with file:line, a good one lands and wins
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "---\n" + GOOD.replace("name: web}", "name: api}").replace("port: 5432", "port: -1"))
    refused = kubeguard("policy", "apply", str(bad), "--policy-dir", directory)
    assert refused.returncode == 2 and f"{bad}:30:" in refused.stderr and "Traceback" not in refused.stderr
    assert not list(Path(directory).glob("*.yaml"))
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert kubeguard("policy", "apply", str(good), "--policy-dir", directory).returncode == 0
    shown = kubeguard("policy", "show", "--policy-dir", directory)
    assert "shop/Deployment/web  mode=protect" in shown.stdout and "(hand-written)" in shown.stdout
    assert "processes=3 scripts=0 files=1 egress=4 ingress=0 listen=0" in shown.stdout, shown.stdout  # with learned
    mode = kubeguard("policy", "mode", "shop/Deployment/web", "monitor", "--policy-dir", directory)
    assert mode.returncode == 0
    assert "mode=monitor" in kubeguard("policy", "show", "--policy-dir", directory).stdout
    wrong = kubeguard("policy", "mode", "web", "monitor", "--policy-dir", directory)
    assert wrong.returncode == 2 and "NAMESPACE/KIND/NAME" in wrong.stderr


def test_cli_patterns_select_every_matching_workload(tmp_path: Path) -> None:
    """A WORKLOAD argument with * ? [ selects every workload the directory knows (learned or hand-written) whose
    NAMESPACE/KIND/NAME matches; a pattern that matches none is refused and changes nothing."""
    engine = engine_for(tmp_path, Clock())
    for uid, path in (("u1", "/usr/bin/python3"), ("u3", "/usr/bin/postgres"), ("u4", "/bin/sh")):
        engine.process(exec_event(uid, path))
    engine.save()
    directory = str(tmp_path / "policies")

    def modes(*pattern: str) -> dict[str, str]:
        shown = kubeguard("policy", "show", *pattern, "--policy-dir", directory)
        assert shown.returncode == 0, shown.stderr
        return {line.split()[0]: line.split()[1] for line in shown.stdout.splitlines()}

    later = kubeguard("policy", "mode", "shop/Deployment/later", "monitor", "--policy-dir", directory)
    assert later.returncode == 0 and "kept until the workload appears" in later.stdout
    switched = kubeguard("policy", "mode", "shop/Deployment/*", "protect", "--policy-dir", directory)
    assert switched.returncode == 0, switched.stderr
    assert switched.stdout.splitlines() == ["shop/Deployment/later: mode protect (no pods seen yet: kept until the "
                                            "workload appears)", "shop/Deployment/web: mode protect"]
    assert modes() == {"shop/Deployment/later": "mode=protect", "shop/Deployment/web": "mode=protect",
                       "shop/Pod/debug": "mode=discover", "shop/StatefulSet/db": "mode=discover"}
    both = kubeguard("policy", "mode", "*/d[a-z]*", "monitor", "--zero-drift", "--policy-dir", directory)
    assert both.returncode == 0 and len(both.stdout.splitlines()) == 2
    assert modes("shop/*/d*") == {"shop/Pod/debug": "mode=monitor", "shop/StatefulSet/db": "mode=monitor"}
    assert "zeroDrift=True" in kubeguard("policy", "show", "shop/StatefulSet/?b", "--policy-dir", directory).stdout
    exported = kubeguard("policy", "export", "*/Pod/*", "--policy-dir", directory)
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(exported.stdout)] == ["pod-debug"]
    def files() -> dict[str, str]:
        return {str(f): f.read_text() for f in Path(directory).rglob("*") if f.is_file()}

    before = files()
    for command in (("mode", "other/*", "protect"), ("show", "other/*"), ("export", "shop/Job/*")):
        refused = kubeguard("policy", *command, "--policy-dir", directory)
        assert refused.returncode == 2 and f"{command[1]}: no workload in {directory} matches" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert files() == before and len(before) >= 5  # four learned or hand-written policies at least


def test_crd_schema_accepts_exports_and_refuses_what_the_loader_refuses() -> None:
    import jsonschema

    crd = yaml.safe_load((REPO / "deploy" / "crds" / "workloadpolicy.yaml").read_text())
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "kubeguard.io"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    schema = version["schema"]["openAPIV3Schema"]
    (policy,) = parse_documents(GOOD, "p.yaml")
    policy.selector = {"app": "web"}
    jsonschema.validate(policy.to_document(), schema)
    jsonschema.validate(yaml.safe_load(GOOD), schema)
    for broken in (GOOD.replace("mode: protect", "mode: enforce"), GOOD.replace("port: 5432", "port: 70000"),
                   GOOD.replace("  processes:", "  procs:"), GOOD.replace("{path: /usr/bin/python3}", "{path: py}")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(broken), schema)
        with pytest.raises(PolicyError):
            parse_documents(broken, "b.yaml")


def test_exec_without_a_readable_path_is_judged_by_name(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_for(tmp_path, clock)
    engine.process(exec_event("u1", "/usr/bin/python3"))
    clock.now += 61
    engine.tick()
    known = exec_event("u1", "", pid=999999999)
    known["proc.name"] = "python3"
    assert engine.process(known) == []
    unknown = exec_event("u1", "", pid=999999999)
    unknown["proc.name"] = "marker"
    (alert,) = engine.process(unknown)
    assert alert.output_fields["policy.deviation"] == "process marker (path not readable)"


def test_unconnected_udp_sends_are_learned_and_checked(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_for(tmp_path, clock)

    def send(ip: str, port: int, res: int) -> Event:
        return event("u1", **{"evt.type": "sendto", "fd.type": "ipv6", "fd.sip": ip, "fd.sport": port,
                              "fd.l4proto": "udp", "evt.rawres": res})

    assert engine.process(send("fd00::53", 53, 40)) == []  # discover: 40 bytes sent, the peer is learned
    assert engine.process(send("fd00::54", 53, -1)) == []  # a failed send teaches nothing
    clock.now += 61
    engine.tick()
    assert engine.process(send("fd00::53", 53, 40)) == []
    (alert,) = engine.process(send("fd00::54", 53, 40))
    assert alert.output_fields["policy.deviation"] == "egress UDP fd00::54:53"


def test_an_exec_is_reported_blocked_only_in_a_container_the_exec_guard_has(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "web.yaml").write_text(GOOD)  # hand-written, protect
    engine = engine_for(tmp_path, Clock())
    guarded, new_replica = 7001, 7002
    engine.enforced = {WEB}
    engine.guarded_cgroups = frozenset({guarded})
    actions = []
    for cgroup in (guarded, new_replica, None):
        fields = {} if cgroup is None else {"_cgroup_id": cgroup}
        (alert,) = engine.process(Event({**exec_event("u1", "/usr/bin/nc"), **fields}))
        actions.append(alert.output_fields["policy.action"])
    assert actions == ["blocked", "alert", "alert"]
    engine.guarded_pods = frozenset({"u1"})  # the new replica's pod is in the plan: its unplanned container is held
    (alert,) = engine.process(Event({**exec_event("u1", "/usr/bin/nc"), "_cgroup_id": new_replica}))
    assert alert.output_fields["policy.action"] == "blocked"
    (alert,) = engine.process(Event({**exec_event("u2", "/usr/bin/nc"), "_cgroup_id": new_replica + 1}))
    assert alert.output_fields["policy.action"] == "alert"  # another pod's
    engine.guarded_pods = frozenset()
    engine.enforced = set()  # the workload's guards are not in place at all
    (alert,) = engine.process(Event({**exec_event("u1", "/usr/bin/nc"), "_cgroup_id": guarded}))
    assert alert.output_fields["policy.action"] == "alert"

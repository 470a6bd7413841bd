"""Fields Falco rules read that the agent fills from outside the kernel events: container.privileged (pods map),
proc.env (/proc/PID/environ at exec, only when a loaded rule reads it)."""

from __future__ import annotations

from kubeguard.agent.podsource import PodSource
from kubeguard.cluster.podmap import PodMap


def pod(name: str, privileged: object, cid: str) -> dict[str, object]:
    container: dict[str, object] = {"name": "app", "image": "img:1"}
    if privileged is not None:
        container["securityContext"] = {"privileged": privileged}
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"containers": [container]},
            "status": {"containerStatuses": [{"name": "app", "containerID": f"containerd://{cid}"}]}}


def test_privileged_from_spec() -> None:
    source = PodSource()
    source.podmap = PodMap.from_pods([pod("a", True, "a" * 64), pod("b", False, "b" * 64), pod("c", None, "c" * 64),
                                      pod("d", "true", "d" * 64)])
    assert [source.privileged(c * 64) for c in "abcd"] == [True, False, False, False]  # "true" (a string) is not
    assert source.privileged("e" * 64) is None


def test_proc_env_read_from_proc_as_falco_joins_it(tmp_path) -> None:
    from kubeguard.agent.enrich import read_environ
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "environ").write_bytes(b"HOME=/root\0GLIBC_TUNABLES=glibc.malloc.mxfast=0\0A=b c\0")
    assert read_environ(tmp_path, 77) == "HOME=/root GLIBC_TUNABLES=glibc.malloc.mxfast=0 A=b c"
    assert read_environ(tmp_path, 78) is None


def test_engine_reads_field_through_macros(tmp_path) -> None:
    from kubeguard.rules import RuleEngine
    path = tmp_path / "r.yaml"
    path.write_text("- macro: m\n  condition: proc.env icontains GLIBC_TUNABLES\n"
                    "- rule: R\n  desc: d\n  condition: evt.type = execve and m\n  output: o\n  priority: NOTICE\n")
    assert RuleEngine.load([path], include_defaults=False).reads_field("proc.env")
    assert not RuleEngine.load([], include_defaults=False).reads_field("proc.env")


def test_engine_names_the_event_types_reading_a_field(tmp_path) -> None:
    """proc.duration is filled only on the types a rule reads it on: Falco's proc_is_new is on opens only."""
    from kubeguard.rules import RuleEngine
    path = tmp_path / "r.yaml"
    rule = "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: NOTICE\n"
    path.write_text("- macro: proc_is_new\n  condition: proc.duration <= 5000000000\n"
                    + rule.format(name="New", cond="evt.type in (open, openat) and proc_is_new")
                    + rule.format(name="Shell", cond="evt.type = execve and proc.name = sh"))
    assert RuleEngine.load([path], include_defaults=False).types_reading("proc.duration") == {"open", "openat"}
    assert RuleEngine.load([path], include_defaults=False).types_reading("proc.env") == frozenset()
    path.write_text(path.read_text() + rule.format(name="Any", cond="proc.duration > 0 and proc.name = x"))
    assert RuleEngine.load([path], include_defaults=False).types_reading("proc.duration") is None


def test_proc_env_from_the_sensor_wins_over_proc(tmp_path) -> None:
    """The ebpf sensor copies the environment at exec: /proc (a later program, or none) is only the fallback."""
    from kubeguard.agent.enrich import Enricher
    from kubeguard.agent.proctable import ProcessTable
    from kubeguard.model import Event

    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "environ").write_bytes(b"LATER=1\0")
    enricher = Enricher(PodSource(), procs=ProcessTable(proc=tmp_path))
    enricher.read_env = True

    def exec_event(**extra: object) -> Event:
        return Event({"evt.type": "execve", "evt.rawres": 0, "proc.pid": 77, "proc.name": "x", **extra})

    assert enricher.enrich(exec_event(**{"proc.env": "GLIBC_TUNABLES=x"}))["proc.env"] == "GLIBC_TUNABLES=x"
    assert enricher.enrich(exec_event(**{"proc.env": ""}))["proc.env"] == ""
    assert enricher.enrich(exec_event())["proc.env"] == "LATER=1"


def test_truncated_proc_env_completed_from_proc(tmp_path) -> None:
    """A copy cut at Falco's 4096 bytes is completed from /proc/PID/environ while the process lives (libsinsp's
    large environments), and kept as it is when the process is gone."""
    from kubeguard.agent.enrich import Enricher
    from kubeguard.agent.proctable import ProcessTable
    from kubeguard.model import Event

    whole = b"".join(b"V%04d=%s\0" % (i, b"v" * 40) for i in range(200)) + b"GLIBC_TUNABLES=x\0"
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "environ").write_bytes(whole)
    enricher = Enricher(PodSource(), procs=ProcessTable(proc=tmp_path))
    enricher.read_env = True
    cut = "V0000=" + "v" * 40

    def exec_event(pid: int) -> Event:
        return Event({"evt.type": "execve", "evt.rawres": 0, "proc.pid": pid, "proc.name": "x", "proc.env": cut,
                      "_env_truncated": True})

    assert enricher.enrich(exec_event(77))["proc.env"].endswith(" GLIBC_TUNABLES=x")
    assert enricher.enrich(exec_event(78))["proc.env"] == cut

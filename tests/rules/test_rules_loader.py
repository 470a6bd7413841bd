"""Rule files: Falco's own load; overrides, appends, exceptions, rule_matching, evt.type index."""

from __future__ import annotations

import pytest
from rules_helpers import engine_from, matches
from tests.conftest import need_shared_data

from kubeguard.rules import RuleEngine, RuleLoadError

BASE = """
- list: shells
  items: [sh, bash]
- macro: spawned
  condition: evt.type in (execve, execveat)
- rule: Shell
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: "shell %proc.name in %container.id"
  priority: WARNING
  tags: [T1059, shell]
"""


def falco_files():
    root = need_shared_data("falco-rules")
    return [root / "falco_rules.yaml", root / "falco-incubating_rules.yaml", root / "falco-sandbox_rules.yaml"]


def test_falco_rule_files_load_with_zero_errors():
    engine = RuleEngine.load(falco_files(), include_defaults=False)
    assert len(engine.all_rules) == 93
    assert 0 < len(engine.rules) < 93  # some sandbox rules ship disabled
    names = {r.name for r in engine.rules}
    assert "Terminal shell in container" in names
    # every enabled Falco rule is restricted to event types
    assert all(r.evt_types for r in engine.rules)


def test_falco_terminal_shell_rule_fires_and_not_on_host():
    engine = RuleEngine.load(falco_files(), include_defaults=False)
    ev = {"evt.type": "execve", "proc.name": "bash", "container.id": "abc123", "proc.tty": 34816,
          "proc.pname": "runc", "proc.cmdline": "bash", "user.name": "root", "proc.exepath": "/bin/bash"}
    alerts = engine.process(ev)
    assert [a.rule for a in alerts] == ["Terminal shell in container"]
    assert alerts[0].priority == "Notice"
    assert engine.process({**ev, "container.id": "host"}) == []
    assert engine.process({**ev, "proc.tty": 0}) == []


def test_alert_is_falco_json(tmp_path):
    engine = engine_from(tmp_path, BASE, hostname="node-1")
    [alert] = engine.process({"evt.type": "execve", "proc.name": "sh", "evt.time": 1_700_000_000_123_456_789,
                              "container.id": "c1", "k8s.ns.name": "prod", "k8s.pod.name": "web-1"})
    data = alert.to_falco()
    assert set(data) == {"time", "rule", "priority", "source", "hostname", "output", "output_fields", "tags"}
    assert data["time"] == "2023-11-14T22:13:20.123456789Z"
    assert data["output"].endswith("Warning shell sh in c1")
    assert data["output_fields"]["proc.name"] == "sh"
    assert data["output_fields"]["k8s.ns.name"] == "prod"
    assert data["hostname"] == "node-1" and data["tags"] == ["T1059", "shell"]
    assert alert.workload is not None and alert.workload.pod == "web-1"
    assert alert.mitre == ["T1059"]


def test_missing_output_field_renders_na(tmp_path):
    engine = engine_from(tmp_path, BASE)
    [alert] = engine.process({"evt.type": "execve", "proc.name": "sh"})
    assert alert.output.endswith("shell sh in <NA>")
    assert alert.output_fields["container.id"] is None


def test_override_append_and_replace(tmp_path):
    text = BASE + """
- list: shells
  items: [zsh]
  override:
    items: append
- rule: Shell
  condition: and not user.name = trusted
  override:
    condition: append
- rule: Shell
  priority: CRITICAL
  override:
    priority: replace
"""
    engine = engine_from(tmp_path, text)
    [rule] = engine.rules
    assert rule.priority == "Critical"
    assert matches(engine, {"evt.type": "execve", "proc.name": "zsh"})
    assert not matches(engine, {"evt.type": "execve", "proc.name": "zsh", "user.name": "trusted"})


def test_legacy_append_and_enable(tmp_path):
    text = BASE + """
- macro: spawned
  condition: or evt.type = clone
  append: true
- rule: Shell
  condition: and proc.tty != 0
  append: true
- rule: Shell
  enabled: false
"""
    engine = engine_from(tmp_path, text)
    assert engine.rules == [] and len(engine.all_rules) == 1
    again = engine_from(tmp_path, text + "- rule: Shell\n  enabled: true\n")
    assert matches(again, {"evt.type": "clone", "proc.name": "sh", "proc.tty": 1})
    assert not matches(again, {"evt.type": "clone", "proc.name": "sh", "proc.tty": 0})


def test_later_definition_replaces(tmp_path):
    text = BASE + BASE.split("- rule: Shell")[0].replace("[sh, bash]", "[ksh]")
    engine = engine_from(tmp_path, text)
    assert matches(engine, {"evt.type": "execve", "proc.name": "ksh"})
    assert not matches(engine, {"evt.type": "execve", "proc.name": "sh"})


def test_exceptions_expand_as_documented(tmp_path):
    text = """
- list: apt_files
  items: [/bin/ls, /bin/rm]
- rule: Write below binary dir
  desc: d
  condition: evt.type = open and fd.directory in (/bin, /usr/bin, /usr/lib/alpine, /usr/node/bin)
  output: "w %fd.name"
  priority: ERROR
  exceptions:
   - name: proc_writer
     fields: [proc.name, fd.directory]
     comps: [=, =]
     values:
       - [my-custom-yum, /usr/bin]
   - name: cmdline_writer
     fields: [proc.cmdline, fd.directory]
     comps: [startswith, =]
   - name: proc_filenames
     fields: [proc.name, fd.name]
     comps: [=, in]
     values:
       - [my-custom-dpkg, [/usr/bin/a, /bin/b]]
   - name: filenames
     fields: fd.filename
     comps: in
- rule: Write below binary dir
  exceptions:
  - name: proc_writer
    values:
    - [apk, /usr/lib/alpine]
  - name: proc_filenames
    values:
    - [apt, [apt_files]]
  - name: cmdline_writer
    values:
    - [npm install, /usr/node/bin]
  - name: filenames
    values: [python, go]
  append: true
"""
    engine = engine_from(tmp_path, text)

    def hit(proc, path, cmdline="x"):
        return matches(engine, {"evt.type": "open", "proc.name": proc, "fd.name": path, "proc.cmdline": cmdline})

    assert hit("evil", "/usr/bin/x")
    assert not hit("my-custom-yum", "/usr/bin/x")
    assert hit("my-custom-yum", "/bin/x")
    assert not hit("apk", "/usr/lib/alpine/x")
    assert not hit("my-custom-dpkg", "/bin/b")
    assert not hit("apt", "/bin/ls") and hit("apt", "/bin/cat")
    assert not hit("x", "/usr/node/bin/y", cmdline="npm install y")
    assert not hit("x", "/bin/python") and not hit("x", "/usr/bin/go")


def test_rule_matching_first_and_all(tmp_path):
    text = BASE + BASE.split("- rule: Shell")[1].join(["- rule: Shell2", ""]).split("- list")[0]
    text = BASE + """
- rule: Shell too
  desc: again
  condition: spawned and proc.name = sh
  output: "again"
  priority: NOTICE
"""
    ev = {"evt.type": "execve", "proc.name": "sh"}
    assert [a.rule for a in engine_from(tmp_path, text).process(ev)] == ["Shell", "Shell too"]
    assert [a.rule for a in engine_from(tmp_path, text, rule_matching="first").process(ev)] == ["Shell"]
    with pytest.raises(RuleLoadError):
        engine_from(tmp_path, text, rule_matching="sometimes")


def test_evt_type_index_and_warning(tmp_path):
    text = BASE + """
- rule: Any type
  desc: no type restriction
  condition: proc.name = sh and evt.type != switch
  output: "any"
  priority: NOTICE
"""
    engine = engine_from(tmp_path, text)
    shell = next(r for r in engine.rules if r.name == "Shell")
    assert shell.evt_types == {"execve", "execveat"}
    assert any("Any type" in w and "evt.type" in w for w in engine.warnings)
    assert [a.rule for a in engine.process({"evt.type": "openat", "proc.name": "sh"})] == ["Any type"]
    assert engine.process({"evt.type": "switch", "proc.name": "sh"}) == []
    assert [a.rule for a in engine.process({"proc.name": "sh"})] == ["Any type"]


def test_compiled_engine_agrees_with_tree_walker_on_falco_rules():
    from bench.rules import ATTACKS, generate

    from kubeguard.rules.treewalk import TreeWalker

    engine = RuleEngine.load(falco_files()[:2], include_defaults=True)
    walker = TreeWalker(engine.rules)
    events = generate(1500, seed=11) + [{"container.id": "abc123", "user.uid": 0, **a} for a in ATTACKS]
    hits = 0
    for event in events:
        got = sorted(r.name for r in engine.matching_rules(event))
        assert got == sorted(walker.matching(event)), event
        hits += bool(got)
    assert hits > 0

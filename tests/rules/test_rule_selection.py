"""Falco's rule selection (`-o rules[].enable.rule=NAME` ...) and `enabled: true` overrides enable rules that a
file ships disabled; commands apply in order after every file, as in Falco 0.38+."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_rules_cli import kg
from tests.conftest import need_shared_data

from kubeguard.rules import RuleEngine
from kubeguard.rules.selection import SelectionError, parse_selection, parse_selections

RULES = """
- rule: Shell spawned
  desc: d
  condition: evt.type = execve and proc.name = bash
  output: shell %proc.name
  priority: WARNING
  tags: [shell, process]
- rule: Netcat spawned
  desc: d
  condition: evt.type = execve and proc.name = nc
  output: nc %proc.name
  priority: WARNING
  enabled: false
  tags: [network, process]
- rule: Netcat listening
  desc: d
  condition: evt.type = execve and proc.name = ncat
  output: ncat %proc.name
  priority: NOTICE
  enabled: false
  tags: [network]
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def enabled(rules_file: Path, *options: str, extra: Path | None = None) -> list[str]:
    files = [rules_file] + ([extra] if extra else [])
    engine = RuleEngine.load(files, include_defaults=False, selections=parse_selections(list(options)))
    return [r.name for r in engine.rules]


def test_shipped_state_without_selection(rules_file):
    assert enabled(rules_file) == ["Shell spawned"]


def test_enable_by_name_and_by_wildcard(rules_file):
    assert enabled(rules_file, "rules[].enable.rule=Netcat spawned") == ["Shell spawned", "Netcat spawned"]
    assert enabled(rules_file, "rules[].enable.rule=Netcat*") == ["Shell spawned", "Netcat spawned",
                                                                  "Netcat listening"]
    assert enabled(rules_file, "rules[].enable.rule=*listen*") == ["Shell spawned", "Netcat listening"]
    assert enabled(rules_file, "rules[].enable.rule=netcat spawned") == ["Shell spawned"]  # case-sensitive


def test_commands_apply_in_order(rules_file):
    assert enabled(rules_file, "rules[].disable.rule=*", "rules[].enable.rule=Netcat listening") == [
        "Netcat listening"]
    assert enabled(rules_file, "rules[].enable.tag=network", "rules[].disable.rule=Netcat spawned") == [
        "Shell spawned", "Netcat listening"]
    assert enabled(rules_file, "rules[].disable.tag=process") == []


def test_selection_overrides_a_later_files_enabled_flag(rules_file, tmp_path):
    override = tmp_path / "local.yaml"
    override.write_text("- rule: Netcat spawned\n  enabled: true\n")
    assert enabled(rules_file, extra=override) == ["Shell spawned", "Netcat spawned"]
    assert enabled(rules_file, "rules[].disable.rule=Netcat spawned", extra=override) == ["Shell spawned"]


def test_enabled_rule_fires(rules_file):
    engine = RuleEngine.load([rules_file], include_defaults=False,
                             selections=parse_selections(["rules[].enable.rule=Netcat spawned"]))
    alerts = engine.process({"evt.type": "execve", "proc.name": "nc", "evt.time": 1})
    assert [a.rule for a in alerts] == ["Netcat spawned"]


@pytest.mark.parametrize("bad", ["rules[].enable=x", "rules.enable.rule=x", "engine.kind=ebpf",
                                 "rules[].enable.rule=", "rules[].toggle.tag=x"])
def test_bad_selection_named(bad):
    with pytest.raises(SelectionError, match="rules\\[\\]"):
        parse_selection(bad)


def test_selection_matching_nothing_is_warned(rules_file):
    engine = RuleEngine.load([rules_file], include_defaults=False,
                             selections=parse_selections(["rules[].enable.rule=No such rule"]))
    assert any("matches no loaded rule" in w for w in engine.warnings)


def test_cli_rules_list_and_check_take_option(rules_file):
    out = kg("rules", "list", "--no-default-rules", "--rules", str(rules_file), "-o", "json",
             "--option", "rules[].enable.rule=Netcat spawned")
    assert out.returncode == 0, out.stderr
    state = {r["rule"]: r["enabled"] for r in map(json.loads, out.stdout.splitlines())}
    assert state == {"Shell spawned": True, "Netcat spawned": True, "Netcat listening": False}
    out = kg("rules", "check", "--no-default-rules", str(rules_file), "--option", "rules[].enable.tag=network")
    assert out.returncode == 0, out.stderr
    assert "3 rules (3 enabled)" in out.stdout


def test_cli_bad_option_is_one_line():
    out = kg("rules", "list", "--option", "rules[].enable=oops")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "rules[].enable=oops" in out.stderr and "Traceback" not in out.stderr


def test_cli_agent_bad_option_is_one_line(tmp_path):
    out = kg("agent", "--no-default-rules", "-o", "rules[].enable.rule=", "--duration", "1",
             "--db", str(tmp_path / "a.db"))
    assert out.returncode == 2, out.stderr
    assert "empty rule" in out.stderr and "Traceback" not in out.stderr


def test_falco_disabled_rules_enabled_by_option():
    folder = need_shared_data("falco-rules")
    files = [folder / n for n in ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")]
    engine = RuleEngine.load(files, include_defaults=False)
    names = {r.name for r in engine.all_rules}
    shipped_off = sorted(r.name for r in engine.all_rules if not r.enabled)
    assert "Container Drift Detected (chmod)" in shipped_off
    engine = RuleEngine.load(files, include_defaults=False, selections=parse_selections(
        [f"rules[].enable.rule={name}" for name in shipped_off]))
    assert {r.name for r in engine.rules} == names

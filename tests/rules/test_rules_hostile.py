"""Hostile rule files fail with one clear line naming file:line, quickly, and never hang."""

from __future__ import annotations

import time

import pytest
from rules_helpers import engine_from

from kubeguard.rules import RuleEngine, RuleLoadError

RULE = "- rule: R\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"


def load_error(tmp_path, text: str) -> str:
    started = time.monotonic()
    with pytest.raises(RuleLoadError) as info:
        engine_from(tmp_path, text)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_cyclic_macros(tmp_path):
    text = "- macro: a\n  condition: b\n- macro: b\n  condition: not a\n" + RULE.format(cond="a")
    assert "macro 'a' refers to itself (a -> b -> a)" in load_error(tmp_path, text)


def test_cyclic_lists(tmp_path):
    text = "- list: x\n  items: [y]\n- list: y\n  items: [x]\n" + RULE.format(cond="proc.name in (x)")
    assert "refers to itself" in load_error(tmp_path, text)


@pytest.mark.parametrize(("cond", "expect"), [
    ("proc.nmae = x", "unknown field proc.nmae"),
    ("proc.name likes x", "expected an operator"),
    ("proc.name regex '(unclosed'", "invalid regular expression"),
    ("fd.sport = http", "'http' is not a number"),
    ("proc.aname[x] = y", "must be a number"),
    ("proc.name = 'unterminated", "unterminated string"),
    ("(proc.name = x", "missing ')'"),
    ("undefined_macro", "undefined macro 'undefined_macro'"),
    ("evt.buffer bcontains zz", "expected hexadecimal"),
])
def test_bad_conditions(tmp_path, cond, expect):
    message = load_error(tmp_path, RULE.format(cond=repr(cond)))
    assert expect in message and "rules.yaml:3: rule 'R'" in message


def test_deep_nesting(tmp_path):
    cond = "(" * 5000 + "proc.name = x" + ")" * 5000
    assert "nested more than" in load_error(tmp_path, RULE.format(cond=cond))
    nots = "not " * 5000 + "proc.name = x"
    assert "nested more than" in load_error(tmp_path, RULE.format(cond=nots))


def test_exponential_macro_expansion(tmp_path):
    text = "- macro: m0\n  condition: proc.name = x\n"
    for i in range(1, 40):
        text += f"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n"
    assert "expands to more than" in load_error(tmp_path, text + RULE.format(cond="m39"))


def test_ten_megabyte_list(tmp_path):
    items = ", ".join(f"item{i:07d}" for i in range(1_000_000))
    text = f"- list: big\n  items: [{items}]\n" + RULE.format(cond="proc.name in (big)")
    assert len(text) > 10_000_000
    assert "over the 4 MB limit" in load_error(tmp_path, text)


def test_many_list_items_under_size_limit(tmp_path):
    items = ", ".join(str(i) for i in range(150_000))
    text = f"- list: big\n  items: [{items}]\n" + RULE.format(cond="proc.name in (big)")
    assert "over the limit of 100000" in load_error(tmp_path, text)


@pytest.mark.parametrize(("text", "expect"), [
    ("- rule: [unclosed\n", "invalid YAML"),
    ("rule: not-a-list\n", "must be a YAML list"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n", "missing key(s) output, priority"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: LOUD\n", "unknown priority"),
    ("- rule: R\n  condition: and x\n  override:\n    condition: append\n", "not defined yet"),
    ("- required_engine_version: 99.0.0\n", "require engine version 99.0.0"),
    ("- list: l\n  items: {a: b}\n", "items must be a YAML list"),
    ("- a: &a [*a]\n", "invalid YAML"),
])
def test_bad_files(tmp_path, text, expect):
    assert expect in load_error(tmp_path, text)


def test_skip_if_unknown_filter(tmp_path):
    text = RULE.format(cond="proc.nmae = x") + "  skip-if-unknown-filter: true\n"
    engine = engine_from(tmp_path, text)
    assert engine.rules == [] and any("skipped" in w for w in engine.warnings)


def test_malformed_event_values_do_not_raise(tmp_path):
    engine = engine_from(tmp_path, RULE.format(cond="evt.type = open and fd.name startswith /etc"))
    for bad in ({"evt.type": "open", "fd.name": ["x"]}, {"evt.type": ["open"]}, {"evt.type": "open", "fd.name": 5},
                {"evt.type": "open", "fd.name": {"a": 1}}):
        assert engine.process(bad) == []
    assert engine.process({"evt.type": "open", "fd.name": "/etc/x"})
    assert RuleEngine.load(include_defaults=True).process({"evt.type": "execve", "proc.name": ["x"]}) == []

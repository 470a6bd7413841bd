"""The compiled engine (one generated function per event type, shared fields and macros computed once,
`or` tests merged) must flag exactly what the naive tree walk flags, event by event."""

from __future__ import annotations

import random

import pytest
from bench.rules import ATTACKS, generate
from rules_helpers import engine_from
from tests.conftest import need_shared_data

from kubeguard.rules import RuleEngine
from kubeguard.rules import falco_fields as F
from kubeguard.rules.parser import Comparison, Word, walk
from kubeguard.rules.treewalk import TreeWalker


def _literal_events(engine: RuleEngine, count: int, seed: int) -> list[dict]:
    """Bench-mix events with 1-4 fields set from the rules' own literals (so rules fire and near-miss)
    and 0-2 fields deleted (missing fields)."""
    rng = random.Random(seed)
    leaves: list[tuple[str, str, str]] = []
    for rule in engine.rules:
        for node in walk(rule.tree):
            if not isinstance(node, Comparison) or node.lhs.field.arg is not None or F.is_multi(node.lhs.field):
                continue
            words = [node.rhs] if isinstance(node.rhs, Word) else node.rhs if isinstance(node.rhs, tuple) else []
            for w in words:
                leaves.append((node.lhs.field.name, node.op, w.text))
    assert len(leaves) > 500
    events = []
    for base in generate(count, seed=seed):
        event = dict(base)
        for _ in range(rng.randint(1, 4)):
            name, op, text = rng.choice(leaves)
            value: object = {"startswith": text + rng.choice(["", "/x", "-1"]),
                             "endswith": rng.choice(["", "/a/", "x"]) + text,
                             "contains": rng.choice(["", "a "]) + text + rng.choice(["", " b"]),
                             "pmatch": text.rstrip("/") + rng.choice(["", "/f", "x"])}.get(op, text)
            if F.field_type(F.FieldRef(name)) == F.INT:
                value = F.to_int(value)
            if value is not None:
                event[name] = value
        for _ in range(rng.randint(0, 2)):
            event.pop(rng.choice(sorted(event)), None)
        events.append(event)
    return events


def _agree(engine: RuleEngine, events: list[dict]) -> int:
    walker = TreeWalker(engine.rules)
    hits = 0
    for event in events:
        got = [r.name for r in engine.matching_rules(event)]
        want = walker.matching(event)
        assert got == want, event  # same rules, in definition order
        hits += bool(got)
    return hits


@pytest.mark.slow
def test_bench_mix_and_literal_corpus_agree_with_tree_walk_on_falco_rules():
    root = need_shared_data("falco-rules")
    engine = RuleEngine.load([root / "falco_rules.yaml", root / "falco-incubating_rules.yaml"])
    events = generate(3000, seed=5) + [{"container.id": "abc123", "user.uid": 0, **a} for a in ATTACKS]
    events += _literal_events(engine, 4000, seed=6)
    hits = _agree(engine, events)
    assert hits > 300  # the literal corpus makes many rules fire: the comparison is not vacuous
    assert engine.errors == 0


def test_default_rules_agree_with_tree_walk_on_literal_corpus():
    engine = RuleEngine.load()
    assert _agree(engine, _literal_events(engine, 3000, seed=8)) > 100


RULES = """
- macro: opened
  condition: (evt.type in (open, openat) and fd.typechar = f and fd.num >= 0)
- macro: in_container
  condition: (container.id != host and container.id exists)
- rule: A
  desc: a
  condition: opened and in_container and (fd.name startswith /etc/ or proc.name = cat or fd.name startswith /root
             or fd.name = /x or fd.name in (/y, /z) or fd.name endswith .pem or fd.name endswith .key)
  output: a
  priority: WARNING
- rule: B
  desc: b
  condition: opened and not in_container and (fd.name = /x or fd.name startswith /root)
  output: b
  priority: WARNING
- rule: C
  desc: c
  condition: opened and in_container and not (proc.name in (cat, ls) or proc.name = sh)
  output: c
  priority: WARNING
"""


@pytest.mark.parametrize(("event", "expected"), [
    ({"fd.name": "/etc/passwd"}, ["A", "C"]),
    ({"fd.name": "/root/.ssh/id"}, ["A", "C"]),
    ({"fd.name": "/y", "proc.name": "ls"}, ["A"]),
    ({"fd.name": "/srv/tls.key", "proc.name": "sh"}, ["A"]),
    ({"fd.name": "/srv/x", "proc.name": "cat"}, ["A"]),
    ({"fd.name": "/srv/x"}, ["C"]),
    ({"proc.name": "sh"}, []),  # fd.name missing: startswith/endswith/in all false
    ({"fd.name": "/x", "container.id": "host"}, ["B"]),
    ({"fd.name": "/root", "container.id": None}, ["B"]),
    ({"fd.name": "/x", "fd.type": "ipv4"}, []),
    ({"fd.name": "/x", "evt.type": "execve"}, []),
])
def test_merged_or_tests_and_shared_macros(tmp_path, event, expected):
    base = {"evt.type": "openat", "fd.type": "file", "fd.num": 3, "container.id": "c1", "proc.name": "node"}
    event = {k: v for k, v in {**base, **event}.items() if v is not None}
    engine = engine_from(tmp_path, RULES)
    assert [r.name for r in engine.matching_rules(event)] == expected
    assert TreeWalker(engine.rules).matching(event) == expected
    first = engine_from(tmp_path, RULES, rule_matching="first")
    assert [r.name for r in first.matching_rules(event)] == expected[:1]


NET_CONDITIONS = ["fd.net = 10.0.0.0/8", "fd.net != 10.0.0.0/8", "fd.snet in (10.0.0.0/8, 192.168.0.0/16)",
                  "not fd.snet in (10.0.0.0/8, 192.168.0.0/16)", "fd.cnet != 127.0.0.0/8", "fd.net in (::1/128)",
                  "fd.rnet = 169.254.0.0/16", "fd.lnet != 10.0.0.0/8"]
NET_EVENTS = [{}, {"fd.lip": "172.16.0.1"},
              {"fd.sip": "10.1.2.3"}, {"fd.cip": "10.1.2.3", "fd.sip": "8.8.8.8"}, {"fd.cip": "127.0.0.1"},
              {"fd.sip": "::1"}, {"fd.sip": "not-an-ip", "fd.cip": "192.168.1.1"}, {"fd.sip": 167837955},
              {"fd.rip": "169.254.169.254", "fd.lip": "10.0.0.1"}, {"fd.is_server": True, "fd.sip": "10.0.0.9",
                                                                    "fd.cip": "169.254.1.1"}]


@pytest.mark.parametrize("condition", NET_CONDITIONS)
def test_multi_valued_net_tests_agree_with_tree_walk(tmp_path, condition):
    engine = engine_from(tmp_path, f"""
- rule: N1
  desc: n
  condition: evt.type = connect and {condition}
  output: n
  priority: WARNING
- rule: N2
  desc: same test in a second rule (shared in the bucket)
  condition: evt.type = connect and proc.name = curl and {condition}
  output: n
  priority: WARNING
""")
    walker = TreeWalker(engine.rules)
    outcomes = set()
    for extra in NET_EVENTS:
        event = {"evt.type": "connect", "proc.name": "curl", **extra}
        got = [r.name for r in engine.matching_rules(event)]
        assert got == walker.matching(event), event
        outcomes.add(bool(got))
    assert outcomes == {True, False}  # each condition both fires and stays quiet on these events


@pytest.mark.parametrize(("name", "expected"), [
    # fnmatch(3) without flags, as libsinsp: `*` crosses `/`
    ("/var/log/x", True), ("/var/log/sub/x", True), ("/a/bc", True), ("/a/bcd", False), ("/srv/secret.txt", True),
    ("/srv/my-token", True), ("/srv/KEY.PEM", True), ("/etc/passwd", True), ("/ETC/x/y", True), ("/srv/x", False),
    (None, False),
])
def test_merged_glob_and_contains_tests(tmp_path, name, expected):
    engine = engine_from(tmp_path, """
- rule: G
  desc: g
  condition: evt.type = openat and (fd.name glob '/var/*/x' or fd.name glob '/a/b?' or fd.name contains secret
             or fd.name contains token or fd.name iglob '/srv/*.pem' or fd.name iglob '/ETC/*')
  output: g
  priority: WARNING
""")
    event = {"evt.type": "openat"} if name is None else {"evt.type": "openat", "fd.name": name}
    assert bool(engine.matching_rules(event)) is expected
    assert bool(TreeWalker(engine.rules).matching(event)) is expected

"""Every default rule: its positive events raise it, its negative look-alikes do not (table in fixtures/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubeguard.model import MITRE_ID
from kubeguard.rules import RuleEngine

TABLE = yaml.safe_load((Path(__file__).parent / "fixtures" / "default_rule_cases.yaml").read_text())
ENGINE = RuleEngine.load(hostname="test-node")


def _event(overrides: dict) -> dict:
    return {**TABLE["base"], **{k: v for k, v in overrides.items()}}


def _params(kind: str):
    for rule, case in TABLE["cases"].items():
        for i, event in enumerate(case.get(kind, [])):
            yield pytest.param(rule, event, id=f"{rule}-{kind}-{i}")


def test_every_default_rule_has_positive_and_negative_cases():
    names = {r.name for r in ENGINE.rules}
    assert names == set(TABLE["cases"])
    for rule, case in TABLE["cases"].items():
        assert case.get("positive") and case.get("negative"), rule


def test_every_default_rule_is_documented_and_tagged():
    for rule in ENGINE.rules:
        assert rule.desc.strip(), rule.name
        assert any(MITRE_ID.match(t) for t in rule.tags), f"{rule.name} has no ATT&CK technique tag"
        assert rule.evt_types, f"{rule.name} runs on every event type"
    assert ENGINE.warnings == []


@pytest.mark.parametrize(("rule", "event"), list(_params("positive")))
def test_positive(rule, event):
    alerts = ENGINE.process(_event(event))
    assert rule in [a.rule for a in alerts], f"{rule} did not fire on {event}"
    alert = next(a for a in alerts if a.rule == rule)
    assert "<NA>" not in alert.output.split("(")[0]
    assert alert.hostname == "test-node"


@pytest.mark.parametrize(("rule", "event"), list(_params("negative")))
def test_negative(rule, event):
    alerts = ENGINE.process(_event(event))
    assert rule not in [a.rule for a in alerts], f"{rule} fired on {event}"


def test_compiled_engine_agrees_with_tree_walker_on_every_fixture_event():
    from kubeguard.rules.replay import ReplayStats, read_events
    from kubeguard.rules.treewalk import TreeWalker
    from kubeguard.scenarios.tesla import tesla_events_path

    walker = TreeWalker(ENGINE.rules)
    events = [_event(e) for case in TABLE["cases"].values() for kind in ("positive", "negative")
              for e in case[kind]]
    events += list(read_events(tesla_events_path(), ReplayStats(), print))
    assert len(events) > 80
    for event in events:
        assert sorted(a.rule for a in ENGINE.process(event)) == sorted(walker.matching(event)), event

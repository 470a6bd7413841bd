"""Falco-compatible rule language: loader, condition compiler, engine, default rules.

Contract used by the agent pipeline::

    engine = RuleEngine.load(paths, include_defaults=True, rule_matching="all")
    alerts = engine.process(event)   # event: dict keyed by Falco field names
"""

from kubeguard.rules.loader import RuleLoadError
from kubeguard.rules.rule_engine import Rule, RuleEngine, default_rule_files

__all__ = ["Rule", "RuleEngine", "RuleLoadError", "default_rule_files"]

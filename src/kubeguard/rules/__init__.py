"""Falco-compatible rule language: loader, condition compiler, engine, default rules.

Contract used by the agent pipeline::

    engine = RuleEngine.load(paths, include_defaults=True, rule_matching="all")
    alerts = engine.process(event)   # event: dict keyed by Falco field names
"""

from kubeguard.rules.engine import Rule, RuleEngine, default_rule_files
from kubeguard.rules.loader import RuleLoadError

__all__ = ["Rule", "RuleEngine", "RuleLoadError", "default_rule_files"]

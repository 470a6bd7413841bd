"""Build an engine from inline rule YAML for tests."""

from __future__ import annotations

from pathlib import Path

from kubeguard.rules import RuleEngine


def engine_from(tmp_path: Path, text: str, **kw: object) -> RuleEngine:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return RuleEngine.load([path], include_defaults=False, **kw)  # type: ignore[arg-type]


def cond_engine(tmp_path: Path, condition: str, extra: str = "") -> RuleEngine:
    """One rule named R with `condition`, preceded by `extra` YAML (lists, macros)."""
    text = extra + f"""
- rule: R
  desc: test rule
  condition: {condition!r}
  output: "hit %proc.name"
  priority: WARNING
  warn_evttypes: false
"""
    return engine_from(tmp_path, text)


def matches(engine: RuleEngine, event: dict) -> bool:
    return bool(engine.process(event))

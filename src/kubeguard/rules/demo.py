"""Demo step: replay the Tesla runtime chain (scenarios/tesla_events.jsonl) through the default rules."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from kubeguard.rules.engine import RuleEngine
from kubeguard.rules.replay import ReplayStats, read_events

if TYPE_CHECKING:
    from kubeguard.scenarios.demo import DemoContext

# Each stage of the runtime chain and the default rule that must catch it.
TESLA_RUNTIME_RULES = (
    "Terminal shell in container",
    "Read service account token",
    "Contact K8S API Server From Container",
    "Contact cloud metadata service from container",
    "Read cloud credentials file",
    "Detect crypto miners",
    "Outbound connection to mining pool",
)


def tesla_events_path() -> Path:
    return Path(str(resources.files("kubeguard.scenarios").joinpath("tesla_events.jsonl")))


def replay_tesla_events(ctx: DemoContext) -> bool:
    """Runtime: replay the Tesla attack's kernel events through kubeguard's default rules."""
    engine = RuleEngine.load(hostname="demo-node")
    stats = ReplayStats()
    fired: list[str] = []
    for event in read_events(tesla_events_path(), stats, lambda msg: ctx.console.print(msg, markup=False)):
        for alert in engine.process(event):
            fired.append(alert.rule)
            ctx.console.print(f"[bold]{alert.priority:<8}[/] {alert.rule}")
            ctx.console.print(f"    {alert.output.split(': ', 1)[-1]}", markup=False)
    missing = [r for r in TESLA_RUNTIME_RULES if r not in fired]
    ctx.notes["tesla_runtime_alerts"] = fired
    ctx.console.print(f"Runtime stages caught: {len(TESLA_RUNTIME_RULES) - len(missing)}/{len(TESLA_RUNTIME_RULES)}"
                      f" ({len(fired)} alerts from {stats.events} events)"
                      + (f"; missing: {', '.join(missing)}" if missing else ""))
    return not missing

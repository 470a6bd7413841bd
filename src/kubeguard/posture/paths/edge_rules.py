"""The table edge rules meet through: each rule is a small unit that adds the edges of a few kinds.

As in KubeHound, where every edge type is one file registering itself, each module under
`kubeguard.posture.paths.edges` registers its rule at import with `@edge_rule(name, stage, kinds)`;
`build_graph` runs the registered rules in stage order (a rule may read the nodes an earlier stage
made: the secrets rule needs the pods, the rbac rule needs the pods, secrets and service accounts).
A rule may only add edges of the kinds it declares, and every declared kind must be one of
`EDGE_KINDS`; both are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeguard.posture.paths.graph import EDGE_KINDS

if TYPE_CHECKING:
    from kubeguard.posture.paths.context import BuildContext

AddEdges = Callable[["BuildContext"], None]


@dataclass(frozen=True, slots=True)
class EdgeRule:
    """One registered unit: its name, when it runs, the edge kinds it may add, and the function."""

    name: str
    stage: int
    kinds: frozenset[str]
    add: AddEdges


EDGE_RULES: dict[str, EdgeRule] = {}


def edge_rule(name: str, stage: int, kinds: tuple[str, ...]) -> Callable[[AddEdges], AddEdges]:
    """Decorator: register `func` as the edge rule `name`, run at `stage`, adding edges of `kinds`."""
    unknown = sorted(set(kinds) - set(EDGE_KINDS))
    if unknown:
        raise ValueError(f"edge rule {name!r}: unknown edge kinds {', '.join(unknown)}")

    def register(func: AddEdges) -> AddEdges:
        rule = EdgeRule(name, stage, frozenset(kinds), func)
        if name in EDGE_RULES and EDGE_RULES[name] != rule:
            raise ValueError(f"edge rule {name!r} registered twice")
        if any(other.stage == stage and other.name != name for other in EDGE_RULES.values()):
            raise ValueError(f"edge rule {name!r}: stage {stage} is taken (the order must be total)")
        EDGE_RULES[name] = rule
        return func

    return register


def ordered_rules() -> list[EdgeRule]:
    """The registered rules in the order they run."""
    return sorted(EDGE_RULES.values(), key=lambda rule: rule.stage)

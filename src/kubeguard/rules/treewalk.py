"""A naive evaluator: walks each rule's condition tree per event, every rule on every event.

Kept as the reference the compiled engine is checked against in tests (same answers) and measured
against in bench/rules.py. Leaf checks reuse the compiler's code for one comparison, so the two
differ only in what the engine optimises: tree walking, no evt.type index, no constant folding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubeguard.rules.compiler import CodeGen, rule_function
from kubeguard.rules.parser import And, Comparison, Const, Node, Not, Or
from kubeguard.rules.rule_engine import Rule

Leaf = Callable[[Mapping[str, Any]], bool]


class TreeWalker:
    """Evaluate rules by walking their trees; `matching(event)` returns the names of matching rules."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = [r for r in rules if r.enabled and r.source == "syscall"]
        self._gen = CodeGen()
        self._leaves: dict[int, Leaf] = {}

    def _leaf(self, node: Comparison) -> Leaf:
        leaf = self._leaves.get(id(node))
        if leaf is None:
            leaf = rule_function(self._gen, f"_leaf{len(self._leaves)}", node)
            self._leaves[id(node)] = leaf
        return leaf

    def eval(self, node: Node, event: Mapping[str, Any]) -> bool:
        if isinstance(node, And):
            return all(self.eval(i, event) for i in node.items)
        if isinstance(node, Or):
            return any(self.eval(i, event) for i in node.items)
        if isinstance(node, Not):
            return not self.eval(node.item, event)
        if isinstance(node, Const):
            return node.value
        if isinstance(node, Comparison):
            if node.lhs.field.name == "evt.dir" and node.op in ("=", "!="):
                from kubeguard.rules.compiler import fold

                folded = fold(node, None)
                if isinstance(folded, Const):
                    return folded.value
            return self._leaf(node)(event)
        raise TypeError(f"unexpected node {node!r}")

    def matching(self, event: Mapping[str, Any]) -> list[str]:
        return [r.name for r in self.rules if self.eval(r.tree, event)]

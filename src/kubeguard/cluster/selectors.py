"""Kubernetes label selectors: the map form (Service.spec.selector) and LabelSelector.

`LabelSelector` is what Deployments, NetworkPolicies and ClusterRole aggregation rules use:
`matchLabels` plus `matchExpressions` (In, NotIn, Exists, DoesNotExist), all ANDed. An empty
LabelSelector selects everything; a missing one (None) selects nothing, as in the API.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from kubeguard.cluster.snapshot import PodTemplate


def label_selector_selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (`matchLabels` + `matchExpressions`); `{}` selects all, None selects none."""
    if selector is None or not isinstance(selector, dict):
        return False
    match_labels = selector.get("matchLabels") or {}
    if isinstance(match_labels, dict):
        for key, value in match_labels.items():
            if labels.get(str(key)) != str(value):
                return False
    for expr in selector.get("matchExpressions") or []:
        if not isinstance(expr, dict) or not _expression_holds(expr, labels):
            return False
    return True


def _expression_holds(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key = str(expr.get("key", ""))
    operator = str(expr.get("operator", ""))
    values = {str(v) for v in expr.get("values") or []}
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # unknown operator: the API server would reject it; select nothing


class PodLabelIndex:
    """Pod templates of a snapshot indexed by (namespace, label, value), to resolve selectors fast.

    `select(namespace, selector_map)` intersects the per-label sets instead of scanning every pod,
    so resolving all Services of a cluster stays linear in its size.
    """

    def __init__(self, pods: Iterable[PodTemplate]) -> None:
        self.pods: list[PodTemplate] = []
        self._by_label: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        for pod in pods:
            position = len(self.pods)
            self.pods.append(pod)
            for key, value in pod.labels.items():
                self._by_label[(pod.namespace, str(key), str(value))].append(position)

    def select(self, namespace: str, selector: dict[str, Any] | None) -> list[PodTemplate]:
        """The pods of `namespace` a Service-style selector picks (none for an empty selector)."""
        if not selector or not isinstance(selector, dict):
            return []
        candidates: set[int] | None = None
        for key, value in selector.items():
            hits = self._by_label.get((namespace, str(key), str(value)))
            if not hits:
                return []
            candidates = set(hits) if candidates is None else candidates & set(hits)
            if not candidates:
                return []
        return [self.pods[i] for i in sorted(candidates or ())]

"""Which pods are inline: a kubectl-style label selector, namespaces, and every pod an allow-list selects."""

from __future__ import annotations

from typing import Any

from kubeguard.cluster.podmap import PodMap
from kubeguard.cluster.selectors import label_selector_selects
from kubeguard.errors import KubeguardError
from kubeguard.response.allowlist import AllowList


class SelectorError(KubeguardError):
    """A label selector that cannot be read; the message quotes it."""


def parse_selector(text: str) -> dict[str, Any]:
    """`app=web,tier!=db,env in (a,b),!legacy,canary` -> a LabelSelector (kubectl's -l syntax)."""
    labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in (p.strip() for p in parts):
        if not raw:
            raise SelectorError(f"--selector {text!r}: empty requirement")
        words = raw.split(None, 1)
        if len(words) == 2 and words[1].split(None, 1)[0] in ("in", "notin"):
            op, _, values = words[1].partition(" ")
            values = values.strip()
            if not (values.startswith("(") and values.endswith(")")):
                raise SelectorError(f"--selector {text!r}: {raw!r} needs a (value,...) list")
            exprs.append({"key": words[0], "operator": "In" if op == "in" else "NotIn",
                          "values": [v.strip() for v in values[1:-1].split(",") if v.strip()]})
        elif "!=" in raw:
            key, value = raw.split("!=", 1)
            exprs.append({"key": key.strip(), "operator": "NotIn", "values": [value.strip()]})
        elif "=" in raw:
            key, value = raw.split("==" if "==" in raw else "=", 1)
            labels[key.strip()] = value.strip()
        elif raw.startswith("!"):
            exprs.append({"key": raw[1:].strip(), "operator": "DoesNotExist"})
        else:
            exprs.append({"key": raw, "operator": "Exists"})
    return {"matchLabels": labels, "matchExpressions": exprs}


class Selection:
    """Which pods of the pods map are inline: namespace / label selector, plus every allow-list pod."""

    def __init__(self, namespaces: list[str], selector: dict[str, Any] | None, allowlist: AllowList,
                 everything: bool) -> None:
        self.namespaces = set(namespaces)
        self.selector = selector
        self.allowlist = allowlist
        self.everything = everything

    def ips(self, podmap: PodMap) -> set[str]:
        out = set()
        for ip, workload in podmap.by_ip.items():
            chosen = self.everything or bool(self.allowlist.policies_for(workload))
            if not chosen and (self.namespaces or self.selector is not None):
                chosen = (not self.namespaces or workload.namespace in self.namespaces) and (
                    self.selector is None or label_selector_selects(self.selector, dict(workload.labels)))
            if chosen:
                out.add(ip)
        return out

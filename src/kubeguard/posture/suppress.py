"""Suppressions: the `kubeguard.io/ignore` annotation and the `--exceptions FILE`.

Annotation, on the resource a finding is about or on any object owning it (ownerReferences,
followed transitively inside the snapshot):

    kubeguard.io/ignore: "privileged,host-path: node agent needs the host"

names check ids or categories (`*` for all) before the colon and the reason after it.

Exceptions file (YAML): a list of rules, or a mapping with an `exceptions:` list::

    exceptions:
      - checks: [privileged, workloads]   # check ids or categories; "*" for all
        namespace: kube-system            # optional, shell-style patterns (fnmatch)
        kind: DaemonSet                   # optional
        name: "calico-*"                  # optional
        reason: CNI needs host access     # required

A suppressed finding keeps its place in the results with `suppressed` set to the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from kubeguard.cluster.manifests import node_line, read_documents
from kubeguard.cluster.snapshot import K8sObject, LoadProblem, Snapshot, SourceRef
from kubeguard.errors import KubeguardError
from kubeguard.model import Finding


class SuppressionError(KubeguardError):
    """A malformed exceptions file (the message names file:line)."""


ANNOTATION = "kubeguard.io/ignore"
_RULE_KEYS = {"checks", "namespace", "kind", "name", "reason"}


@dataclass(frozen=True, slots=True)
class Exception_:
    """One rule of an exceptions file."""

    checks: tuple[str, ...]
    reason: str
    namespace: str = "*"
    kind: str = "*"
    name: str = "*"
    source: SourceRef | None = None

    def matches(self, finding: Finding) -> bool:
        r = finding.resource
        return (_names(finding, self.checks) and fnmatchcase(r.namespace, self.namespace)
                and fnmatchcase(r.kind, self.kind) and fnmatchcase(r.name, self.name))


def _names(finding: Finding, names: Iterable[str]) -> bool:
    return any(n in ("*", finding.check, finding.category) for n in names)


def parse_annotation(value: str) -> tuple[tuple[str, ...], str]:
    """`"a,b: reason"` -> (("a", "b"), "reason"); no colon means no reason given."""
    head, sep, reason = value.partition(":")
    names = tuple(n.strip() for n in head.split(",") if n.strip())
    return names, (reason.strip() if sep else "") or "no reason given"


def load_exceptions(path: Path) -> list[Exception_]:
    """Rules of an exceptions file; any mistake is a SuppressionError naming file:line."""
    problems: list[LoadProblem] = []
    docs = list(read_documents(path, problems))
    if problems:
        raise SuppressionError(f"exceptions file {problems[0]}")
    rules: list[Exception_] = []
    for doc in docs:
        value = doc.value
        prefix: tuple[str | int, ...] = ()
        if isinstance(value, dict) and set(value) == {"exceptions"}:
            value, prefix = value["exceptions"], ("exceptions",)
        if value is None:
            continue
        if not isinstance(value, list):
            raise SuppressionError(f"{doc.source}: exceptions file must be a list of rules (or `exceptions:` list)")
        for index, item in enumerate(value):
            where = node_line(doc.node, doc.source, *prefix, index)
            rules.append(_rule(item, where))
    return rules


def _rule(item: object, where: SourceRef) -> Exception_:
    if not isinstance(item, dict):
        raise SuppressionError(f"{where}: exception rule must be a mapping")
    unknown = sorted(set(map(str, item)) - _RULE_KEYS)
    if unknown:
        raise SuppressionError(f"{where}: unknown key {unknown[0]!r} in exception rule (expected: "
                               f"{', '.join(sorted(_RULE_KEYS))})")
    checks = item.get("checks")
    if isinstance(checks, str):
        checks = [checks]
    if not isinstance(checks, list) or not checks or not all(isinstance(c, str) and c for c in checks):
        raise SuppressionError(f"{where}: exception rule needs `checks`: a list of check ids or categories")
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise SuppressionError(f"{where}: exception rule needs a `reason`")
    patterns = {}
    for key in ("namespace", "kind", "name"):
        value = item.get(key, "*")
        if not isinstance(value, str):
            raise SuppressionError(f"{where}: `{key}` must be a string pattern")
        patterns[key] = value
    return Exception_(tuple(checks), reason.strip(), source=where, **patterns)


def apply_suppressions(findings: list[Finding], snapshot: Snapshot, exceptions: Iterable[Exception_] = ()) -> None:
    """Set `suppressed` on findings an annotation or exception rule covers (in place)."""
    rules = list(exceptions)
    index = {obj.key: obj for obj in snapshot.objects if obj.annotations.get(ANNOTATION) or
             obj.metadata.get("ownerReferences")}
    for finding in findings:
        if finding.suppressed:
            continue
        r = finding.resource
        for obj in _self_and_owners(index.get((r.kind, r.namespace, r.name)), index):
            value = obj.annotations.get(ANNOTATION)
            if not isinstance(value, str):
                continue
            names, reason = parse_annotation(value)
            if _names(finding, names):
                finding.suppressed = f"{reason} ({ANNOTATION} on {obj.kind}/{obj.name})"
                break
        else:
            for rule in rules:
                if rule.matches(finding):
                    where = f" ({rule.source})" if rule.source else ""
                    finding.suppressed = f"{rule.reason}{where}"
                    break


def _self_and_owners(obj: K8sObject | None, index: dict[tuple[str, str, str], K8sObject]) -> list[K8sObject]:
    chain: list[K8sObject] = []
    while obj is not None and all(o is not obj for o in chain) and len(chain) < 8:
        chain.append(obj)
        owners = obj.metadata.get("ownerReferences")
        nxt = None
        if isinstance(owners, list):
            for ref in owners:
                if isinstance(ref, dict):
                    nxt = index.get((str(ref.get("kind")), obj.namespace, str(ref.get("name"))))
                    if nxt is not None:
                        break
        obj = nxt
    return chain

"""The ATT&CK for Containers and Microsoft Kubernetes threat matrices, mapped to kubeguard's detections.

The matrices ship as data (`data/attack_containers.json`, `data/ms_threat_matrix.json`, with their licences);
`data/mapping.yaml` says which default rules, posture checks and DPI detections cover each ATT&CK technique and
which tests prove it. The figures are computed here from that mapping, never written down.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kubeguard.errors import KubeguardError

DATA = resources.files("kubeguard.coverage") / "data"
TACTIC_NAMES = {
    "initial-access": "Initial Access", "execution": "Execution", "persistence": "Persistence",
    "privilege-escalation": "Privilege Escalation", "defense-evasion": "Defense Evasion",
    "credential-access": "Credential Access", "discovery": "Discovery", "lateral-movement": "Lateral Movement",
    "collection": "Collection", "impact": "Impact",
}


class CoverageDataError(KubeguardError):
    """The shipped matrix or mapping is inconsistent."""


@dataclass(frozen=True, slots=True)
class TechniqueCoverage:
    """One technique and what covers it."""

    id: str
    name: str
    tactics: tuple[str, ...]
    rules: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    dpi: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    not_visible: str = ""
    attack: tuple[str, ...] = ()  # Microsoft matrix only: the ATT&CK ids it links to

    @property
    def covered(self) -> bool:
        """At least one detection is mapped and at least one test proves it."""
        return bool(self.rules or self.checks or self.dpi) and bool(self.tests)

    @property
    def status(self) -> str:
        return "covered" if self.covered else ("not visible from a node" if self.not_visible else "not covered")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "tactics": list(self.tactics),
                               "status": self.status, "rules": list(self.rules), "checks": list(self.checks),
                               "dpi": list(self.dpi), "tests": list(self.tests)}
        if self.not_visible:
            out["not_visible"] = self.not_visible
        if self.attack:
            out["attack"] = list(self.attack)
        return out


@dataclass(frozen=True, slots=True)
class Matrix:
    """A threat matrix with per-technique coverage."""

    name: str
    version: str
    copyright: str
    licence: str
    tactics: tuple[str, ...]
    techniques: tuple[TechniqueCoverage, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def covered(self) -> int:
        return sum(t.covered for t in self.techniques)

    @property
    def percent(self) -> float:
        """Share of techniques covered, in percent (one decimal)."""
        return round(100.0 * self.covered / len(self.techniques), 1) if self.techniques else 0.0

    def by_tactic(self, tactic: str) -> list[TechniqueCoverage]:
        return [t for t in self.techniques if tactic in t.tactics]

    def as_dict(self) -> dict[str, Any]:
        return {"matrix": self.name, "version": self.version, "copyright": self.copyright, "licence": self.licence,
                "covered": self.covered, "total": len(self.techniques), "percent": self.percent,
                "tactics": [{"id": t, "name": TACTIC_NAMES.get(t, t)} for t in self.tactics],
                "techniques": [t.as_dict() for t in self.techniques]}


def _read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@cache
def mapping() -> dict[str, Any]:
    """The shipped mapping: {"replay_test": node id prefix, "techniques": {id: {...}}}."""
    data = yaml.safe_load(_read("mapping.yaml"))
    if not isinstance(data, dict) or not isinstance(data.get("techniques"), dict):
        raise CoverageDataError("coverage/data/mapping.yaml: no techniques mapping")
    return data


def _tuple(entry: dict[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(v) for v in entry.get(key) or ())


def attack_matrix() -> Matrix:
    """ATT&CK for Containers with every technique's detections and tests from the mapping."""
    raw = json.loads(_read("attack_containers.json"))
    data = mapping()
    entries: dict[str, Any] = data["techniques"]
    known = {t["id"] for t in raw["techniques"]}
    unknown = sorted(set(entries) - known)
    if unknown:
        raise CoverageDataError(f"coverage/data/mapping.yaml: not ATT&CK for Containers techniques: {unknown}")
    techniques = []
    for tech in raw["techniques"]:
        entry = entries.get(tech["id"]) or {}
        rules, checks, dpi = _tuple(entry, "rules"), _tuple(entry, "checks"), _tuple(entry, "dpi")
        tests = _tuple(entry, "tests")
        if rules or checks or dpi:  # every mapped technique is replayed by the coverage trigger test
            tests = (f"{data['replay_test']}[{tech['id']}]", *tests)
        techniques.append(TechniqueCoverage(tech["id"], tech["name"], tuple(tech["tactics"]), rules, checks, dpi,
                                            tests, str(entry.get("not_visible") or "").strip()))
    return Matrix(raw["matrix"], raw["version"], raw["copyright"], raw["licence"], tuple(raw["tactics"]),
                  tuple(techniques))


def ms_matrix(attack: Matrix | None = None) -> Matrix:
    """The Microsoft Threat Matrix for Kubernetes: each technique covered by what covers the ATT&CK techniques it
    links to (from our ATT&CK mapping), the posture checks tagged with its MS-TA id and its own mapped detections."""
    from kubeguard.posture.check_runner import run_checks  # noqa: F401  (imports register every check)
    from kubeguard.posture.registry import CHECKS

    attack = attack or attack_matrix()
    by_id = {t.id: t for t in attack.techniques}
    raw = json.loads(_read("ms_threat_matrix.json"))
    own: dict[str, Any] = mapping().get("ms_techniques") or {}
    unknown = sorted(set(own) - {t["id"] for t in raw["techniques"]})
    if unknown:
        raise CoverageDataError(f"coverage/data/mapping.yaml: not Microsoft matrix techniques: {unknown}")
    techniques = []
    for tech in raw["techniques"]:
        linked = [by_id[a] for a in tech["attack"] if a in by_id and by_id[a].covered]
        entry = own.get(tech["id"]) or {}
        tagged = tuple(sorted(c.id for c in CHECKS.values() if tech["id"] in c.mitre))
        rules = tuple(dict.fromkeys([*_tuple(entry, "rules"), *(r for t in linked for r in t.rules)]))
        checks = tuple(dict.fromkeys([*tagged, *_tuple(entry, "checks"), *(c for t in linked for c in t.checks)]))
        dpi = tuple(dict.fromkeys([*_tuple(entry, "dpi"), *(d for t in linked for d in t.dpi)]))
        tests: tuple[str, ...] = ()
        if rules or checks or dpi:  # every mapped technique is replayed by the coverage trigger test
            tests = (f"{mapping()['ms_replay_test']}[{tech['id']}]", *(x for t in linked for x in t.tests))
        techniques.append(TechniqueCoverage(tech["id"], tech["name"], tuple(tech["tactics"]), rules, checks, dpi,
                                            tuple(dict.fromkeys(tests)), "", tuple(tech["attack"])))
    return Matrix(raw["matrix"], raw["version"], raw["copyright"], raw["licence"], tuple(raw["tactics"]),
                  tuple(techniques))


def rule_names() -> set[str]:
    """Names of the default runtime rules, as the rule engine loads them."""
    from kubeguard.rules import RuleEngine

    return {rule.name for rule in RuleEngine.load().rules}


def check_ids() -> set[str]:
    """Ids of every registered posture check."""
    from kubeguard.posture.check_runner import run_checks  # noqa: F401  (imports register every check)
    from kubeguard.posture.registry import CHECKS

    return set(CHECKS)


def dpi_detection_names() -> set[str]:
    """Names of the DPI detections, read from the source of kubeguard.net: the first argument (or `rule=`) of
    every `Detection(...)` / `Signature(...)` and the name of every `(name, Severity.X, ...)` constant."""
    root = Path(str(resources.files("kubeguard.net")))
    names: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Detection", "Signature"):
                for arg in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "rule")]:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names.add(arg.value)
            elif (isinstance(node, ast.Tuple) and len(node.elts) >= 2 and isinstance(node.elts[0], ast.Constant)
                  and isinstance(node.elts[0].value, str) and isinstance(node.elts[1], ast.Attribute)
                  and getattr(node.elts[1].value, "id", None) == "Severity"):
                names.add(node.elts[0].value)
    return names


def licence_text(matrix: Matrix) -> str:
    """The licence file shipped with `matrix`."""
    return _read(matrix.licence.split()[0])

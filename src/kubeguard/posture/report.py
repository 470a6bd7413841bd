"""Scan output: a Rich table grouped by severity plus a summary, JSON, SARIF 2.1.0 and JUnit XML.

Every format carries every finding, suppressed ones included (marked), and the inputs that
could not be read. Renderers return text (table: print to a Console) so callers choose where it goes.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import GeneratorType
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubeguard import __version__
from kubeguard.cluster.snapshot import LoadProblem
from kubeguard.model import Finding, Severity
from kubeguard.posture.registry import CHECKS

FORMATS = ("table", "json", "sarif", "junit")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/kubeguard/kubeguard/blob/main/docs/scan.md"
_STYLE = {Severity.CRITICAL: "bold red", Severity.HIGH: "red", Severity.MEDIUM: "yellow",
          Severity.LOW: "cyan", Severity.INFO: "dim"}
# SARIF result level and GitHub code scanning's numeric security-severity per severity.
_SARIF_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
                Severity.LOW: "note", Severity.INFO: "note"}
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                      Severity.LOW: "3.0", Severity.INFO: "0.0"}


@dataclass(slots=True)
class ScanResult:
    """What a scan produced: findings (sorted, suppressed ones marked) and unreadable inputs."""

    findings: list[Finding]
    problems: list[LoadProblem] = field(default_factory=list)
    target: str = ""

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    @property
    def suppressed(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed]

    def counts(self) -> dict[str, int]:
        counter = Counter(f.severity for f in self.active)
        return {s.label: counter.get(s, 0) for s in sorted(Severity, reverse=True)}

    def summary(self) -> dict[str, Any]:
        return {"target": self.target, "findings": len(self.active), "by_severity": self.counts(),
                "suppressed": len(self.suppressed), "unreadable": len(self.problems)}


def render_table(result: ScanResult, console: Console) -> None:
    """One table per severity (worst first), then the summary and what could not be read."""
    for severity in sorted(Severity, reverse=True):
        group = [f for f in result.active if f.severity == severity]
        if not group:
            continue
        table = Table(title=Text(f"{severity.label.upper()} ({len(group)})", style=_STYLE[severity]),
                      title_justify="left", show_lines=True, expand=True)
        table.add_column("Check", no_wrap=True)
        table.add_column("Resource / where", overflow="fold", ratio=1)
        table.add_column("Evidence", overflow="fold", ratio=2)
        for f in group:
            where = _where(f)
            table.add_row(f.check, Text.assemble(str(f.resource), ("\n" + where if where else "", "dim")),
                          f.evidence)
        console.print(table)
    counts = ", ".join(f"{n} {label}" for label, n in result.counts().items() if n) or "none"
    console.print(Text.assemble(("Summary: ", "bold"), f"{len(result.active)} findings ({counts}); "
                                f"{len(result.suppressed)} suppressed; {len(result.problems)} unreadable inputs"))
    for f in result.suppressed:
        console.print(Text(f"  suppressed {f.id}: {f.suppressed}", style="dim"))
    for problem in result.problems:
        console.print(Text(f"  not read: {problem}", style="yellow"))


def _where(f: Finding) -> str:
    if not f.file:
        return ""
    return f"{f.file}:{f.line}" if f.line else f.file


def render_json(result: ScanResult) -> str:
    return json_lines_per_item({
        "tool": {"name": "kubeguard", "version": __version__},
        "summary": result.summary(),
        "findings": (f.to_dict() for f in result.findings),
        "problems": [{"where": p.where, "message": p.message} for p in result.problems],
    })


def json_lines_per_item(document: dict[str, Any]) -> str:
    """JSON of a mapping: a line per top-level key, and a line per item of a top-level list (or generator).

    Readable and diffable like `indent=2`, but every line is written by the C encoder (`indent` makes
    json use its pure-Python encoder, about ten times slower: minutes for a scan of 100,000 objects),
    and items given as a generator are encoded one at a time (never all their dicts at once).
    """
    lines = ["{"]
    last = len(document) - 1
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index < last else ""
        if isinstance(value, list | GeneratorType):
            items = ",\n".join(f"    {json.dumps(item)}" for item in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]{comma}" if items else f"  {json.dumps(key)}: []{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    return "\n".join(lines)


def _artifact_uri(file: str) -> str:
    """A relative URI for files under the working directory, else an absolute file:// URI."""
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        rel = absolute.resolve().relative_to(Path.cwd().resolve())
        return rel.as_posix()
    except ValueError:
        return absolute.resolve().as_uri()


def render_sarif(result: ScanResult) -> str:
    """SARIF 2.1.0: one run, a rule per check that exists, a result per finding."""
    rule_ids = sorted({f.check for f in result.findings} | set(CHECKS))
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    rules = []
    for rule_id in rule_ids:
        check = CHECKS.get(rule_id)
        title = check.title if check else rule_id
        rules.append({
            "id": rule_id,
            "name": "".join(part.capitalize() for part in rule_id.split("-")),
            "shortDescription": {"text": title},
            "fullDescription": {"text": f"{title}. {check.remediation}" if check else title},
            "help": {"text": check.remediation if check else title},
            "helpUri": f"{INFO_URI}#{rule_id}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[check.severity] if check else "warning"},
            "properties": {
                "category": check.category if check else "",
                "tags": ["security", "kubernetes", *(check.mitre if check else ())],
                "security-severity": _SECURITY_SEVERITY[check.severity] if check else "5.5",
            },
        })
    results = []
    for f in result.findings:
        entry: dict[str, Any] = {
            "ruleId": f.check,
            "ruleIndex": index[f.check],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.title}: {f.resource}: {f.evidence}"},
            "partialFingerprints": {"kubeguardFindingId/v1": f.id},
            "properties": {"severity": f.severity.label, "category": f.category, "mitre": list(f.mitre),
                           "remediation": f.remediation,
                           "security-severity": _SECURITY_SEVERITY[f.severity]},
        }
        location: dict[str, Any] = {"logicalLocations": [
            {"name": f.resource.name, "fullyQualifiedName": str(f.resource), "kind": "resource"}]}
        if f.file and "://" not in f.file:  # a file, not an API endpoint of a live scan
            physical: dict[str, Any] = {"artifactLocation": {"uri": _artifact_uri(f.file)}}
            if f.line:
                physical["region"] = {"startLine": f.line}
            location["physicalLocation"] = physical
        entry["locations"] = [location]
        if f.suppressed:
            entry["suppressions"] = [{"kind": "external", "status": "accepted", "justification": f.suppressed}]
        results.append(entry)
    notifications = [{"level": "warning", "message": {"text": str(p)}, "descriptor": {"id": "unreadable-input"}}
                     for p in result.problems]
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kubeguard", "version": __version__, "semanticVersion": __version__,
                                "informationUri": INFO_URI, "rules": rules}},
            "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
            "originalUriBaseIds": {"SRCROOT": {"uri": Path.cwd().resolve().as_uri() + "/"}},
            "results": results,
        }],
    }
    return json.dumps(sarif, indent=2)


def render_junit(result: ScanResult) -> str:
    """JUnit XML: a test case per finding (failure, or skipped when suppressed), one per unreadable input."""
    suite = ET.Element("testsuite", {
        "name": "kubeguard scan", "tests": str(len(result.findings) + len(result.problems)),
        "failures": str(len(result.active)), "errors": str(len(result.problems)),
        "skipped": str(len(result.suppressed)),
    })
    for f in result.findings:
        case = ET.SubElement(suite, "testcase", {"classname": f"kubeguard.{f.check}", "name": str(f.resource),
                                                 "file": f.file or "", "line": str(f.line or 0)})
        if f.suppressed:
            ET.SubElement(case, "skipped", {"message": f.suppressed})
        else:
            failure = ET.SubElement(case, "failure", {"type": f.severity.label, "message": f.title})
            failure.text = f"{f.evidence}{os.linesep}remediation: {f.remediation}"
    for problem in result.problems:
        case = ET.SubElement(suite, "testcase", {"classname": "kubeguard.input", "name": problem.where})
        ET.SubElement(case, "error", {"type": "unreadable-input", "message": problem.message})
    root = ET.Element("testsuites", {"name": "kubeguard"})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(result: ScanResult, fmt: str, console: Console) -> None:
    """Write `result` in `fmt` to `console` (table) or as plain text on it (json, sarif, junit)."""
    if fmt == "table":
        render_table(result, console)
        return
    text = {"json": render_json, "sarif": render_sarif, "junit": render_junit}[fmt](result)
    console.file.write(text if text.endswith("\n") else text + "\n")

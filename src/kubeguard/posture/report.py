"""Scan output: a Rich table grouped by severity plus a summary, JSON, SARIF 2.1.0 and JUnit XML.

Every format carries every finding, suppressed ones included (marked), and the inputs that
could not be read. Renderers return text (table: print to a Console) so callers choose where it goes.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import GeneratorType
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

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
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
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


def write_json(result: ScanResult, out: IO[str]) -> None:
    """JSON report, written a finding at a time (never the whole text, nor every finding's dict, at once)."""
    write_json_lines_per_item({
        "tool": {"name": "kubeguard", "version": __version__},
        "summary": result.summary(),
        "findings": (f.to_dict() for f in result.findings),
        "problems": [{"where": p.where, "message": p.message} for p in result.problems],
    }, out)


def write_json_lines_per_item(document: dict[str, Any], out: IO[str]) -> None:
    """JSON of a mapping: a line per top-level key, and a line per item of a top-level list (or generator).

    Readable and diffable like `indent=2`, but every line is written by the C encoder (`indent` makes
    json use its pure-Python encoder, about ten times slower: minutes for a scan of 100,000 objects),
    and items are encoded and written one at a time (memory stays that of one item, not of the report).
    """
    out.write("{\n")
    last = len(document) - 1
    for index, (key, value) in enumerate(document.items()):
        comma = "," if index < last else ""
        if isinstance(value, list | GeneratorType):
            out.write(f"  {json.dumps(key)}: [")
            first = True
            for item in value:
                out.write(f"\n    {json.dumps(item)}" if first else f",\n    {json.dumps(item)}")
                first = False
            out.write(f"]{comma}\n" if first else f"\n  ]{comma}\n")
        else:
            out.write(f"  {json.dumps(key)}: {json.dumps(value)}{comma}\n")
    out.write("}\n")


def _artifact_uri(file: str) -> str:
    """A relative URI for files under the working directory, else an absolute file:// URI."""
    path = Path(file)
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        rel = absolute.resolve().relative_to(Path.cwd().resolve())
        return rel.as_posix()
    except ValueError:
        return absolute.resolve().as_uri()


def _sarif_rule(rule_id: str) -> dict[str, Any]:
    check = CHECKS.get(rule_id)
    title = check.title if check else rule_id
    return {
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
    }


def _sarif_result(f: Finding, rule_index: int, uris: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ruleId": f.check,
        "ruleIndex": rule_index,
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
        uri = uris.get(f.file)
        if uri is None:
            uri = uris[f.file] = _artifact_uri(f.file)
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if f.line:
            physical["region"] = {"startLine": f.line}
        location["physicalLocation"] = physical
    entry["locations"] = [location]
    if f.suppressed:
        entry["suppressions"] = [{"kind": "external", "status": "accepted", "justification": f.suppressed}]
    return entry


def write_sarif(result: ScanResult, out: IO[str]) -> None:
    """SARIF 2.1.0: one run, a rule per check that exists, a result per finding, written one result at a time."""
    rule_ids = sorted({f.check for f in result.findings} | set(CHECKS))
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    notifications = [{"level": "warning", "message": {"text": str(p)}, "descriptor": {"id": "unreadable-input"}}
                     for p in result.problems]
    run = {
        "tool": {"driver": {"name": "kubeguard", "version": __version__, "semanticVersion": __version__,
                            "informationUri": INFO_URI, "rules": [_sarif_rule(rule_id) for rule_id in rule_ids]}},
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
        "originalUriBaseIds": {"SRCROOT": {"uri": Path.cwd().resolve().as_uri() + "/"}},
    }
    head = json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0"}, indent=2)[:-2]  # without the closing brace
    out.write(f'{head},\n  "runs": [\n    {{\n')
    for key, value in run.items():
        body = json.dumps(value, indent=2).replace("\n", "\n      ")
        out.write(f"      {json.dumps(key)}: {body},\n")
    out.write('      "results": [')
    uris: dict[str, str] = {}
    for n, f in enumerate(result.findings):
        out.write(("\n        " if n == 0 else ",\n        ") + json.dumps(_sarif_result(f, index[f.check], uris)))
    out.write("\n      ]\n    }\n  ]\n}\n" if result.findings else "]\n    }\n  ]\n}\n")


def write_junit(result: ScanResult, out: IO[str]) -> None:
    """JUnit XML: a test case per finding (failure, or skipped when suppressed), one per unreadable input.

    Written element by element (an ElementTree of every finding was the largest copy of a big scan).
    """
    suite = {"name": "kubeguard scan", "tests": str(len(result.findings) + len(result.problems)),
             "failures": str(len(result.active)), "errors": str(len(result.problems)),
             "skipped": str(len(result.suppressed))}
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="kubeguard">\n')
    out.write(f"  <testsuite{_attrs(suite)}>\n")
    for f in result.findings:
        case = {"classname": f"kubeguard.{f.check}", "name": str(f.resource), "file": f.file or "",
                "line": str(f.line or 0)}
        out.write(f"    <testcase{_attrs(case)}>\n")
        if f.suppressed:
            out.write(f"      <skipped{_attrs({'message': f.suppressed})} />\n")
        else:
            text = escape(_xml_text(f"{f.evidence}{os.linesep}remediation: {f.remediation}"))
            out.write(f"      <failure{_attrs({'type': f.severity.label, 'message': f.title})}>{text}</failure>\n")
        out.write("    </testcase>\n")
    for problem in result.problems:
        out.write(f"    <testcase{_attrs({'classname': 'kubeguard.input', 'name': problem.where})}>\n"
                  f"      <error{_attrs({'type': 'unreadable-input', 'message': problem.message})} />\n"
                  "    </testcase>\n")
    out.write("  </testsuite>\n</testsuites>\n")


def _attrs(values: dict[str, str]) -> str:
    """XML attributes, escaped (newlines and tabs kept as character references)."""
    return "".join(f" {name}={quoteattr(_xml_text(value))}" for name, value in values.items())


def _xml_text(value: str) -> str:
    """Drop the characters XML 1.0 cannot carry (control characters other than tab, newline, return)."""
    return _XML_INVALID.sub("", value)


def render(result: ScanResult, fmt: str, console: Console) -> None:
    """Write `result` in `fmt` to `console` (table) or as plain text to its file (json, sarif, junit), streamed."""
    if fmt == "table":
        render_table(result, console)
        return
    {"json": write_json, "sarif": write_sarif, "junit": write_junit}[fmt](result, console.file)

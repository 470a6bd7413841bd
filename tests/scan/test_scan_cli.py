"""`kubeguard scan`: outputs, exit codes, suppressions, --store, and bad input as one line."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from kubeguard.cli import app
from kubeguard.scenarios.tesla import TESLA_CHECKS, run_demo
from kubeguard.store.alerts import AlertStore

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "scan"
TESLA = REPO / "examples" / "tesla"
runner = CliRunner()

PRIVILEGED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: agent
  namespace: ops
  annotations:
    kubeguard.io/ignore: "privileged,host-namespace: node agent needs the host"
spec:
  hostPID: true
  containers:
    - name: agent
      image: registry.example.com/agent:1.0.0
      securityContext: {privileged: true}
"""


def scan(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["scan", *args])
    return result.exit_code, result.stdout


def test_tesla_json_has_every_breach_stage_and_exit_code_follows_fail_on() -> None:
    code, out = scan(str(TESLA), "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert set(TESLA_CHECKS) <= {f["check"] for f in data["findings"]}
    assert data["summary"]["by_severity"]["critical"] >= 3
    assert all(f["file"] and f["line"] for f in data["findings"])
    assert scan(str(TESLA), "-o", "json", "--fail-on", "critical")[0] == 1
    hardened = REPO / "tests" / "fixtures" / "scan" / "controlplane" / "kubeadm-hardened.yaml"
    assert scan(str(hardened), "--fail-on", "low")[0] == 0


def test_findings_come_out_in_a_stable_order() -> None:
    first = [f["id"] for f in json.loads(scan(str(TESLA), "-o", "json")[1])["findings"]]
    second = [f["id"] for f in json.loads(scan(str(TESLA), "-o", "json")[1])["findings"]]
    assert first == second
    assert len(first) == len(set(first))


def test_annotation_suppresses_on_the_resource_and_counts_it(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(PRIVILEGED_POD)
    data = json.loads(scan(str(tmp_path), "-o", "json")[1])
    by_check = {f["check"]: f for f in data["findings"]}
    assert by_check["privileged"]["suppressed"].startswith("node agent needs the host")
    assert by_check["host-namespace"]["suppressed"]
    assert by_check["run-as-root"]["suppressed"] is None
    assert data["summary"]["suppressed"] == 2
    # suppressed findings do not fail the run
    code, out = scan(str(tmp_path), "--fail-on", "high")
    assert code == 0
    assert "2 suppressed" in out


def test_annotation_on_the_owner_covers_its_pods(tmp_path: Path) -> None:
    (tmp_path / "ds.yaml").write_text(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: ops\n  annotations:\n"
        "    kubeguard.io/ignore: \"workloads: vendor agent\"\n"
        "spec:\n  template:\n    spec:\n      containers: [{name: a, image: 'x:1'}]\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: agent-x1\n  namespace: ops\n  ownerReferences:\n"
        "    - {apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u1}\n"
        "spec:\n  containers: [{name: a, image: 'x:1', securityContext: {privileged: true}}]\n")
    findings = json.loads(scan(str(tmp_path), "-o", "json")[1])["findings"]
    # the owned pod is reported through its DaemonSet, whose annotation covers every workload check
    on_agent = [f for f in findings if f["resource"]["name"].startswith("agent")]
    assert {f["resource"]["kind"] for f in on_agent} == {"DaemonSet"}
    assert on_agent and all(f["suppressed"].startswith("vendor agent") for f in on_agent)
    # the namespace-level finding is about the Namespace, which carries no annotation
    assert [f["suppressed"] for f in findings if f["check"] == "missing-network-policy"] == [None]


def test_exceptions_file_suppresses_by_pattern_and_bad_file_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "exceptions.yaml"
    rules.write_text("exceptions:\n  - checks: [no-resource-limits]\n    namespace: telemetry\n"
                     "    reason: batch job sized by the scheduler\n")
    data = json.loads(scan(str(TESLA), "-o", "json", "--exceptions", str(rules))[1])
    limits = {f["resource"]["namespace"]: f["suppressed"] for f in data["findings"]
              if f["check"] == "no-resource-limits"}
    assert limits["telemetry"] == f"batch job sized by the scheduler ({rules}:2)"
    assert limits["kubernetes-dashboard"] is None
    rules.write_text("exceptions:\n  - checks: [privileged]\n    reason: x\n  - checks: [a]\n    nmespace: y\n")
    result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", str(TESLA), "--exceptions", str(rules)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"kubeguard: error: {rules}:4: unknown key 'nmespace' in exception rule "
                                     "(expected: checks, kind, name, namespace, reason)")


def test_junit_and_table_outputs(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(PRIVILEGED_POD)
    root = ET.fromstring(scan(str(tmp_path), "-o", "junit")[1])
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "0")) == len(cases) > 2
    assert int(suite.get("skipped", "0")) == 2 == sum(1 for c in cases if c.find("skipped") is not None)
    assert {c.get("classname") for c in cases if c.find("failure") is not None} >= {"kubeguard.run-as-root"}
    out = scan(str(tmp_path))[1]
    assert "MEDIUM" in out and "run-as-root" in out and "Summary:" in out


def test_unreadable_inputs_are_listed_and_the_scan_goes_on() -> None:
    code, out = scan(str(FIXTURES / "hostile"), str(TESLA))
    assert code == 0
    assert "9 unreadable inputs" in out
    assert "helm-template.yaml:4: templated file" in out
    assert "unauthenticated-console" in out
    broken = [str(FIXTURES / "hostile" / name) for name in ("helm-template.yaml", "image.yaml", "broken.json")]
    result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", *broken, "-o", "json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2  # nothing at all could be read
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 3
    assert all(line.startswith("kubeguard: warning: not read: ") for line in result.stderr.splitlines())
    assert len(json.loads(result.stdout)["problems"]) == 3


def test_bad_flags_are_one_line_errors() -> None:
    for args, message in ((["-o", "yaml"], "--output: expected one of table, json, sarif, junit, got 'yaml'"),
                          (["--fail-on", "severe"], "--fail-on: unknown severity 'severe'")):
        result = subprocess.run([sys.executable, "-m", "kubeguard", "scan", str(TESLA), *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert result.stderr.startswith(f"kubeguard: error: {message}")
        assert len(result.stderr.strip().splitlines()) == 1


def test_store_writes_the_findings(tmp_path: Path) -> None:
    db = tmp_path / "kg.db"
    code, _ = scan(str(TESLA), "-o", "json", "--store", "--db", str(db))
    assert code == 0
    with AlertStore(db) as store:
        stored = store.findings()
    assert set(TESLA_CHECKS) <= {f["check"] for f in stored}


def test_demo_scans_tesla_and_reports_every_stage() -> None:
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    assert run_demo(REPO / "examples", Console(file=out, width=200)) == 0
    assert f"Tesla breach stages found: {len(TESLA_CHECKS)}/{len(TESLA_CHECKS)}" in out.getvalue()

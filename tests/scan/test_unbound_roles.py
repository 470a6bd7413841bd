"""Dangerous Roles and ClusterRoles no binding refers to yet (issue 12, part 3).

They are reported under the same check ids at low severity with "not bound" in the evidence, in every
output format; once a binding refers to the role, the subjects' findings take over at the bound severity.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest
from tests.scan.test_sarif import VALIDATOR
from typer.testing import CliRunner

from kubeguard.cli import app

ROLES = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: secret-reader}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: debugger, namespace: shop}
rules:
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: harmless, namespace: shop}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
"""
BINDINGS = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ci-reads-secrets}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: secret-reader}
subjects:
- {kind: ServiceAccount, name: ci, namespace: build}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: oncall-debugs, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: debugger}
subjects:
- {kind: Group, name: oncall, apiGroup: rbac.authorization.k8s.io}
"""
UNBOUND = {("rbac-secrets-read", "ClusterRole/secret-reader"), ("rbac-pod-exec", "Role/shop/debugger")}


def scan(tmp_path: Path, output: str, bound: bool = False) -> str:
    (tmp_path / "roles.yaml").write_text(ROLES)
    if bound:
        (tmp_path / "bindings.yaml").write_text(BINDINGS)
    result = CliRunner().invoke(app, ["scan", str(tmp_path), "-o", output])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_reports_unbound_dangerous_roles_low_with_not_bound(tmp_path: Path) -> None:
    findings = json.loads(scan(tmp_path, "json"))["findings"]
    assert {(f["check"], f"{f['resource']['kind']}/" + "/".join(
        p for p in (f["resource"]["namespace"], f["resource"]["name"]) if p)) for f in findings} == UNBOUND
    for f in findings:
        assert f["severity"] == "low" and f["evidence"].startswith("not bound: ")
        assert f["file"].endswith("roles.yaml") and f["line"] in (1, 9)
    assert "verbs=get,list apiGroups=core resources=secrets" in next(
        f["evidence"] for f in findings if f["check"] == "rbac-secrets-read")


def test_binding_raises_to_the_bound_severity_on_the_subjects(tmp_path: Path) -> None:
    findings = json.loads(scan(tmp_path, "json", bound=True))["findings"]
    got = {(f["check"], f["resource"]["kind"], f["resource"]["name"]): f for f in findings}
    assert not any("not bound" in f["evidence"] for f in findings)
    assert got["rbac-secrets-read", "ServiceAccount", "ci"]["severity"] == "high"  # cluster-wide
    assert got["rbac-pod-exec", "Group", "oncall"]["severity"] == "medium"  # one namespace: one level less
    assert not any(f["resource"]["kind"] in ("Role", "ClusterRole") for f in findings)


def test_table_shows_them_in_the_low_group(tmp_path: Path) -> None:
    text = scan(tmp_path, "table")
    assert "LOW (2)" in text and "HIGH" not in text
    assert "rbac-secrets-read" in text and "rbac-pod-exec" in text and "not bound" in text


def test_sarif_results_are_notes_under_the_same_rule_ids(tmp_path: Path) -> None:
    log = json.loads(scan(tmp_path, "sarif"))
    VALIDATOR.validate(log)
    [run] = log["runs"]
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"rbac-secrets-read", "rbac-pod-exec"}
    for rule_id, r in results.items():
        assert r["level"] == "note" and r["properties"]["severity"] == "low"
        assert "not bound" in r["message"]["text"]
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == rule_id


@pytest.mark.parametrize("bound", [False, True])
def test_junit_failures_carry_the_severity(tmp_path: Path, bound: bool) -> None:
    suite = ElementTree.fromstring(scan(tmp_path, "junit", bound=bound).encode())[0]
    cases = {(c.get("classname"), c.get("name")): c.find("failure") for c in suite.findall("testcase")}
    if bound:
        assert cases[("kubeguard.rbac-secrets-read", "ServiceAccount/build/ci")].get("type") == "high"
        assert not any("not bound" in (f.text or "") for f in cases.values() if f is not None)
    else:
        assert set(cases) == {("kubeguard.rbac-secrets-read", "ClusterRole/secret-reader"),
                              ("kubeguard.rbac-pod-exec", "Role/shop/debugger")}
        for failure in cases.values():
            assert failure is not None and failure.get("type") == "low" and "not bound" in (failure.text or "")

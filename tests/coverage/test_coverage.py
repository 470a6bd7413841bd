"""The coverage mapping is honest: names exist in the live registries, tests exist, the figure is computed, and the
committed figure (README, docs) is the computed one. The replay proof is in test_coverage_triggers.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kubeguard.cli import app
from kubeguard.coverage.matrix import (
    attack_matrix,
    check_ids,
    dpi_detection_names,
    licence_text,
    mapping,
    ms_matrix,
    rule_names,
)
from kubeguard.coverage.render import to_html

ROOT = Path(__file__).resolve().parents[2]
ATTACK = attack_matrix()
MS = ms_matrix(ATTACK)


def test_every_mapped_rule_check_and_detection_exists() -> None:
    rules, checks, dpi = rule_names(), check_ids(), dpi_detection_names()
    assert {"HTTP SQL injection", "Stratum mining protocol", "TCP SYN flood"} <= dpi  # the source scan finds them
    for t in (*ATTACK.techniques, *MS.techniques):
        assert set(t.rules) <= rules, (t.id, set(t.rules) - rules)
        assert set(t.checks) <= checks, (t.id, set(t.checks) - checks)
        assert set(t.dpi) <= dpi, (t.id, set(t.dpi) - dpi)


def test_every_referenced_test_is_collected() -> None:
    ids = sorted({x for t in (*ATTACK.techniques, *MS.techniques) for x in t.tests})
    assert ids
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    collected = {line.strip() for line in run.stdout.splitlines() if "::" in line}
    assert set(ids) <= collected, set(ids) - collected


def test_every_technique_is_covered_or_explained() -> None:
    for t in ATTACK.techniques:
        assert t.covered or t.not_visible, f"{t.id} {t.name}: neither covered nor explained"
        assert not (t.covered and t.not_visible), t.id
        assert t.tactics, t.id


def test_mapping_names_only_containers_techniques_and_the_matrix_is_current() -> None:
    ids = {t.id for t in ATTACK.techniques}
    assert set(mapping()["techniques"]) <= ids
    assert ATTACK.version == "18.1" and len(ids) == 48
    assert {"T1609", "T1610", "T1611", "T1612", "T1613", "T1059.013", "T1543.005"} <= ids
    assert "The MITRE Corporation" in licence_text(ATTACK)
    assert "Creative Commons Attribution 4.0" in licence_text(MS)


def test_at_least_90_percent_of_attack_for_containers_covered() -> None:
    covered = [t for t in ATTACK.techniques if t.covered]
    assert ATTACK.percent == round(100.0 * len(covered) / len(ATTACK.techniques), 1)
    assert ATTACK.percent >= 90.0, [t.id for t in ATTACK.techniques if not t.covered]


def test_committed_figures_and_heat_map_match_the_computed_ones() -> None:
    figure = f"{ATTACK.covered} of {len(ATTACK.techniques)}"
    readme = (ROOT / "README.md").read_text()
    assert f"{figure} MITRE ATT&CK for Containers techniques ({ATTACK.percent}%)" in readme
    assert "docs/coverage.html" in readme
    doc = (ROOT / "docs" / "coverage.md").read_text()
    assert f"{figure} techniques ({ATTACK.percent}%)" in doc
    assert f"{MS.covered} of {len(MS.techniques)} techniques ({MS.percent}%)" in doc
    for t in ATTACK.techniques:
        if t.not_visible:
            assert t.id in doc, f"docs/coverage.md does not explain {t.id}"
    assert (ROOT / "docs" / "coverage.html").read_text() == to_html(ATTACK, MS), \
        "docs/coverage.html is stale: kubeguard coverage -o html -f docs/coverage.html"


def test_cli_table_json_and_html(tmp_path: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["coverage", "--tests"])
    assert table.exit_code == 0, table.output
    title = f"{ATTACK.covered}/{len(ATTACK.techniques)} techniques covered ({ATTACK.percent}%)"
    assert title in table.output and "Microsoft Threat Matrix for Kubernetes" in table.output
    assert "T1190" in table.output and "covered" in table.output
    out = runner.invoke(app, ["coverage", "-o", "json", "-m", "attack"])
    data = json.loads(out.stdout)
    [m] = data["matrices"]
    assert m["percent"] == ATTACK.percent and m["total"] == 48
    assert {t["status"] for t in m["techniques"]} == {"covered", "not visible from a node"}
    path = tmp_path / "heat.html"
    res = runner.invoke(app, ["coverage", "-o", "html", "-f", str(path)])
    assert res.exit_code == 0 and str(ATTACK.percent) in res.output
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "T1613" in page and "MS-TA9017" in page
    assert not re.search(r"<script|<link|src=\"http|url\(", page), "the heat map must be self-contained"


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "xml"], "--output: expected one of table, json, html, got 'xml'"),
    (["-m", "nist"], "--matrix: expected one of attack, ms, all, got 'nist'"),
    (["-f", "x.html"], "--file: only with --output json or html"),
    (["-o", "html", "-f", "/nonexistent-dir/x.html"], "--file /nonexistent-dir/x.html: cannot write"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["coverage", *args])
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output

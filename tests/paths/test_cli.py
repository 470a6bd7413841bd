"""`kubeguard paths`: outputs (text, json, dot, html), exit codes, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kubeguard.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "paths"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["paths", *args])


def test_text_output_shows_steps_evidence_and_choke_points():
    result = run(str(FIXTURES / "overlap.yaml"), "--to", "node-root")
    assert result.exit_code == 1, result.output
    assert "CE_PRIV_MOUNT" in result.output and "evidence:" in result.output
    assert "choke points" in result.output and "closes 2 of the 3 paths" in result.output


def test_json_output_is_the_answer():
    result = run(str(FIXTURES / "overlap.yaml"), "--to", "node-root", "--to", "cluster-admin", "-o", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    node_root, admin = data["answers"]
    assert node_root["to"] == "node-root" and len(node_root["paths"]) == 3
    assert admin["paths"] == []
    assert node_root["minimal_fix_complete"] and len(node_root["minimal_fix"]) == 2
    assert node_root["choke_points"][0]["closes"] == 2 and node_root["choke_points"][0]["of"] == 3


def test_dot_output_is_a_digraph_of_the_paths():
    result = run(str(FIXTURES / "overlap.yaml"), "--to", "node-root", "-o", "dot")
    assert result.stdout.startswith("digraph attack_paths {") and result.stdout.rstrip().endswith("}")
    assert '"internet" -> "endpoint:shop/app-b" [label="EXPOSED"' in result.stdout


def test_no_path_exits_zero(tmp_path):
    result = run(str(FIXTURES / "entry-hardened.yaml"))
    assert result.exit_code == 0, result.output
    assert result.output.count("no attack path") == 4


def test_html_to_file(tmp_path):
    out = tmp_path / "paths.html"
    result = run(str(FIXTURES / "overlap.yaml"), "-o", "html", "--out", str(out))
    assert result.exit_code == 1
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "http" not in page.replace(
        "http://www.w3.org/2000/svg", "").replace("http-equiv", "")


def test_bad_inputs_are_one_line(tmp_path):
    for args, message in [
        ((str(tmp_path / "missing"),), "no such file or directory"),
        ((str(FIXTURES / "overlap.yaml"), "--to", "moon"), "--to 'moon'"),
        ((str(FIXTURES / "overlap.yaml"), "--from", "pod:shop/ghost"), "--from pod:shop/ghost"),
        ((str(FIXTURES / "overlap.yaml"), "-o", "pdf"), "-o pdf"),
        ((str(FIXTURES / "overlap.yaml"), "--limit", "0"), "--limit 0"),
    ]:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output


TESLA = Path(__file__).resolve().parents[2] / "examples" / "tesla"


def test_scan_paths_adds_the_attack_paths_to_the_table_report():
    result = runner.invoke(app, ["scan", str(TESLA), "--paths"])
    assert "Attack paths from the internet" in result.output
    assert "UNAUTH_CONSOLE" in result.output and "smallest fix that closes every path" in result.output
    plain = runner.invoke(app, ["scan", str(TESLA)])
    assert "Attack paths" not in plain.output


def test_scan_paths_refuses_machine_formats_in_one_line():
    result = runner.invoke(app, ["scan", str(TESLA), "--paths", "-o", "json"])
    assert result.exit_code == 2 and "--paths goes with -o table" in result.stderr


def test_demo_step_shows_the_chain_and_its_fix():
    from rich.console import Console

    from kubeguard.scenarios.tesla import STEPS, DemoContext, tesla_attack_paths

    assert tesla_attack_paths in STEPS
    console = Console(record=True, width=200)
    assert tesla_attack_paths(DemoContext(TESLA.parent, console)) is True
    text = console.export_text()
    assert "found; smallest fix: exposed-service:Service/kubernetes-dashboard/kubernetes-dashboard" in text

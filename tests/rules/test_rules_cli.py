"""`kubeguard rules check|list`, `replay`, `alerts` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeguard.scenarios.tesla import TESLA_RUNTIME_RULES, tesla_events_path

REPO = Path(__file__).resolve().parents[2]


def kg(*args: str, env_db: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "COLUMNS": "220"}
    if env_db is not None:
        env["KUBEGUARD_DB"] = str(env_db)
    return subprocess.run([sys.executable, "-m", "kubeguard", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_replay_tesla_json_falco_format_and_store(tmp_path):
    db = tmp_path / "alerts.db"
    out = kg("replay", str(tesla_events_path()), "-o", "json", env_db=db)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["rule"] for r in records} >= set(TESLA_RUNTIME_RULES)
    for r in records:
        assert set(r) == {"time", "rule", "priority", "source", "hostname", "output", "output_fields", "tags"}
        assert r["output_fields"]["k8s.ns.name"] == "kube-system"
    assert "0 malformed" in out.stderr
    listed = kg("alerts", "-o", "json", "--rule", "Detect crypto miners", env_db=db)
    assert listed.returncode == 0, listed.stderr
    [miner] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert miner["priority"] == "Critical"
    crit = kg("alerts", "-o", "json", "--priority", "critical", env_db=db)
    assert {json.loads(x)["priority"] for x in crit.stdout.splitlines()} == {"Critical"}
    none = kg("alerts", "-o", "json", "--namespace", "default", env_db=db)
    assert none.stdout.strip() == ""
    since = kg("alerts", "-o", "json", "--since", "2018-05-22T14:40:14Z", env_db=db)
    assert {json.loads(x)["rule"] for x in since.stdout.splitlines()} == {
        "Detect crypto miners", "Drift detected (exec of file not in image)", "Outbound connection to mining pool"}


def test_replay_skips_malformed_lines_and_counts_them(tmp_path):
    events = tmp_path / "ev.jsonl"
    good = {"evt.type": "execve", "proc.name": "xmrig", "proc.cmdline": "xmrig", "container.id": "abc"}
    events.write_text("\n".join([json.dumps(good), "{not json", "[1,2]", json.dumps({"proc.name": "x"}),
                                 json.dumps(good)]) + "\n")
    out = kg("replay", str(events), "-o", "json", "--no-store")
    assert out.returncode == 0, out.stderr
    assert len([x for x in out.stdout.splitlines() if '"Detect crypto miners"' in x]) == 2
    assert f"{events}:2: not a JSON event" in out.stderr
    assert f"{events}:3: expected a JSON object" in out.stderr
    assert f"{events}:4: event has no evt.type" in out.stderr
    assert "3 malformed line(s) skipped" in out.stderr
    assert "Traceback" not in out.stderr


def test_replay_rich_view_and_bad_flags(tmp_path):
    out = kg("replay", str(tesla_events_path()), "--no-store")
    assert out.returncode == 0 and "Detect crypto miners" in out.stdout
    bad = kg("replay", str(tesla_events_path()), "-o", "xml", "--no-store")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "-o/--output" in bad.stderr
    missing = kg("replay", str(tmp_path / "nope.jsonl"), "--no-store")
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    alerts = kg("alerts", "--since", "yesterday-ish", env_db=tmp_path / "x.db")
    assert alerts.returncode != 0 and "Traceback" not in alerts.stderr


def test_rules_check_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: A\n  desc: d\n  condition: proc.name = x and\n  output: o\n  priority: WARNING\n"
                   "- rule: B\n  desc: d\n  condition: proc.nme = x\n  output: o\n  priority: WARNING\n")
    out = kg("rules", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:3: rule 'A'" in out.stderr and f"{bad}:8: rule 'B'" in out.stderr
    assert "unknown field proc.nme" in out.stderr
    assert "2 problem(s)" in out.stdout
    good = tmp_path / "good.yaml"
    good.write_text("- rule: C\n  desc: d\n  condition: evt.type = execve and proc.name = x\n  output: o\n"
                    "  priority: WARNING\n")
    ok = kg("rules", "check", str(good))
    assert ok.returncode == 0 and "0 problem(s)" in ok.stdout


def test_rules_list_shows_attack_ids():
    out = kg("rules", "list", "-o", "json")
    assert out.returncode == 0, out.stderr
    rules = [json.loads(x) for x in out.stdout.splitlines()]
    miner = next(r for r in rules if r["rule"] == "Detect crypto miners")
    assert miner["mitre"] == ["T1496"] and miner["priority"] == "Critical"
    table = kg("rules", "list")
    assert "Terminal shell in container" in table.stdout and "T1059" in table.stdout


def test_secrets_are_masked_in_alerts(tmp_path):
    events = tmp_path / "ev.jsonl"
    events.write_text(json.dumps({"evt.type": "execve", "proc.name": "kubectl", "container.id": "abc",
                                  "proc.cmdline": "kubectl --token=eyJhbGciOiJSUzI1NiJ9.secret get pods "
                                                  "AKIAIOSFODNN7EXAMPLE"}) + "\n")
    out = kg("replay", str(events), "-o", "json", "--no-store")
    assert "eyJhbGciOiJSUzI1NiJ9" not in out.stdout and "IOSFODNN7EXAMPLE" not in out.stdout
    assert "--token=****" in out.stdout

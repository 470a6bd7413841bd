"""`-o sarif` validates against the official OASIS SARIF 2.1.0 schema (vendored in tests/fixtures)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from kubeguard.cli import app

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "fixtures" / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def sarif(*paths: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["scan", *map(str, paths), "-o", "sarif", *extra])
    return json.loads(result.stdout)


def test_tesla_sarif_is_valid_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "exceptions.yaml").write_text("- checks: [no-resource-limits]\n  reason: sized by the scheduler\n")
    log = sarif(REPO / "examples" / "tesla", REPO / "tests" / "fixtures" / "scan" / "hostile",
                extra=("--exceptions", str(tmp_path / "exceptions.yaml")))
    VALIDATOR.validate(log)
    [run] = log["runs"]
    results = run["results"]
    assert {r["ruleId"] for r in results} >= {"unauthenticated-console", "rbac-cluster-admin", "secret-in-env"}
    for r in results:
        region = r["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("examples/tesla/")
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    suppressed = [r for r in results if r.get("suppressions")]
    assert suppressed and all(r["ruleId"] == "no-resource-limits" for r in suppressed)
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 9 and all(n["level"] == "warning" for n in notes)


def test_the_schema_rejects_a_broken_log() -> None:
    log = sarif(REPO / "examples" / "tesla")
    broken = copy.deepcopy(log)
    del broken["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)
    broken = copy.deepcopy(log)
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)

"""docs/rules.md's per-rule table of Falco's rules is what scripts/falco_rules_table.py makes from Falco's
rule files (shared data) and the live root tests' CASES: it cannot drift from either."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import need_shared_data

REPO = Path(__file__).resolve().parents[2]


def table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("falco_rules_table", REPO / "scripts" / "falco_rules_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_table_matches_rule_files_and_live_tests() -> None:
    rules_dir = need_shared_data("falco-rules")
    script = table_script()
    doc = (REPO / "docs" / "rules.md").read_text()
    block = script.render(script.collect(rules_dir))
    assert block in doc, "docs/rules.md's Falco table is stale: run scripts/falco_rules_table.py"


def test_every_rule_has_one_row_and_live_rows_name_a_test() -> None:
    rules_dir = need_shared_data("falco-rules")
    script = table_script()
    rows = script.collect(rules_dir)
    from kubeguard.rules.rule_engine import read_rules
    names = [r for f in script.RULE_FILES for r in read_rules([rules_dir / f]).rules]
    assert sorted(r.rule for r in rows) == sorted(names)
    assert {r.status for r in rows} <= {"live", "replay-only", "cannot-see-from-here"}
    for row in rows:
        if row.status == "live":
            for case in row.evidence.split(", "):
                test_file = case.strip("`").split("::")[0]
                assert (REPO / "tests" / "root" / "falco" / test_file).is_file()


def test_live_cases_are_read_from_cases_lists(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        'CASES = [("a-case", "Rule A", f"sh {1}"), ("b", 3)]\nOTHER = [("z", "Rule B")]\n')
    assert table_script().live_cases(tmp_path, {"Rule A", "Rule B"}) == {"Rule A": ["test_x.py::a-case"]}

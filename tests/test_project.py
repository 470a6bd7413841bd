"""The project says what exists: runtime dependencies are imported, README commands are real commands."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from kubeguard.cli import app

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "kubeguard"


def imported_top_modules() -> set[str]:
    """Top-level names of every module imported anywhere under src/."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_imported() -> None:
    """A dependency nothing imports is weight and attack surface: depend on what src/ imports."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in declared}
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    imported = imported_top_modules()
    unused = sorted(name for name in names if not modules_of.get(name, {name.replace("-", "_")}) & imported)
    assert not unused, f"runtime dependencies never imported by src/: {unused}"


def test_readme_names_only_commands_that_exist() -> None:
    commands = {info.name or (info.callback.__name__ if info.callback else "") for info in app.registered_commands}
    commands |= {info.name for info in app.registered_groups if info.name}
    named = set(re.findall(r"`kubeguard ([a-z-]+)", (ROOT / "README.md").read_text()))
    assert named, "the README names no command"
    assert named <= commands, f"README names commands the CLI does not have: {sorted(named - commands)}"

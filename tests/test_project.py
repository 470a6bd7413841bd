"""The project says what exists: runtime dependencies are imported, README commands are real commands."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from kubeguard.cli import app

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "kubeguard"
# Dependencies loaded by another dependency rather than imported by name, and who loads them.
LOADED_BY_A_DEPENDENCY = {"python-multipart": "FastAPI's form parsing (console login)"}


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
    unused = sorted(name for name in names - set(LOADED_BY_A_DEPENDENCY)
                    if not modules_of.get(name, {name.replace("-", "_")}) & imported)
    assert not unused, f"runtime dependencies never imported by src/: {unused}"


def test_every_imported_third_party_module_is_a_declared_dependency() -> None:
    """What src/ imports must be installed by `pip install kubeguard`: a module that only a developer's venv
    has (installed by hand, or as a dev extra) breaks a user's install and a fresh CI machine."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in declared}
    dists_of = packages_distributions()
    missing = sorted(module for module in imported_top_modules() - sys.stdlib_module_names - {"kubeguard"}
                     if not {d.lower().replace("_", "-") for d in dists_of.get(module, [module])} & names)
    assert not missing, f"src/ imports modules no runtime dependency provides: {missing}"


def test_readme_names_only_commands_that_exist() -> None:
    commands = {info.name or (info.callback.__name__ if info.callback else "") for info in app.registered_commands}
    commands |= {info.name for info in app.registered_groups if info.name}
    named = set(re.findall(r"`kubeguard ([a-z-]+)", (ROOT / "README.md").read_text()))
    assert named, "the README names no command"
    assert named <= commands, f"README names commands the CLI does not have: {sorted(named - commands)}"


def module_imports() -> dict[str, set[str]]:
    """kubeguard module -> the kubeguard modules it imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("kubeguard."))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kubeguard"):
                found.add(node.module)
    return graph


def is_command_layer(module: str) -> bool:
    """`*/commands.py` (and `*_commands.py` of a lane with several commands), cli.py and its helpers."""
    cli = {"kubeguard.cli", "kubeguard.cliutil", "kubeguard.__main__"}
    return module.rsplit(".", 1)[-1].endswith("commands") or module in cli


def test_only_the_commands_layer_imports_the_cli_helpers() -> None:
    """Library code raises its own errors and logs; printing and exit codes belong to `*/commands.py` and cli.py."""
    offenders = sorted(m for m, deps in module_imports().items() if "kubeguard.cliutil" in deps
                       and not is_command_layer(m))
    assert not offenders, f"library modules importing kubeguard.cliutil: {offenders}"


def test_no_lane_imports_the_scenarios_back() -> None:
    """Scenarios use the lanes; a lane importing a scenario would close a circle."""
    offenders = sorted(m for m, deps in module_imports().items() if not m.startswith("kubeguard.scenarios")
                       and m != "kubeguard.cli" and any(d.startswith("kubeguard.scenarios") for d in deps))
    assert not offenders, f"modules importing kubeguard.scenarios: {offenders}"

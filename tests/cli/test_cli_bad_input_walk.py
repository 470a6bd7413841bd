"""Walks EVERY subcommand of the typer app with bad input in each of its file/dir arguments.

Missing, empty, binary, truncated, deeply nested and alias-bomb inputs each give one clear line
(`kubeguard: error: ...`), an exit code docs/cli.md documents, and never a traceback. Subcommands are
enumerated from the app, so a new one is walked without touching this file; only those in NEEDS_ROOT_OR_NETWORK
are skipped, each with its reason, and OUTPUTS lists the parameters that name files the command writes.
In-process (CliRunner) with a per-invocation alarm, so a command that hangs on bad input fails instead.
"""

from __future__ import annotations

import os
import signal
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from kubeguard.cli import app

# Subcommands not walked here, and why (each has its own hostile-input tests under tests/root or tests/hostile).
NEEDS_ROOT_OR_NETWORK = {
    "agent": "starts the eBPF sensors (root) whenever its inputs are accepted: walking its file flags took 7 min "
             "(run once, 2026-12-04: it found a traceback on binary token files and ignored console/firewall "
             "flags, now fixed and tested in tests/agent/test_agent_cli.py)",
    "firewall": "installs iptables chains and NFQUEUE (root)",
    "capture": "opens AF_PACKET on a pod's veth (root)",
    "quarantine": "writes nftables rules and cgroup.freeze (root)",
    "console": "listens on a network port (HTTPS server)",
}
# Parameters naming files the command writes (bad input there is not read; they get a fresh path).
OUTPUTS = {"--flows-out", "--events-out", "-w", "--out", "--report", "-o", "--out-dir", "--console-spool"}
# Values for required parameters that are not files.
VALUES = {"--pod": "shop/web-1", "workload": "shop/Deployment/web", "new_mode": "monitor", "--from": "shop/web",
          "--to": "shop/db"}
DOCUMENTED_EXITS = {1, 2}
TIMEOUT_S = 120

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)) + "kind: Pod\n"
KINDS: dict[str, bytes | None] = {
    "missing": None,
    "empty": b"",
    "binary": bytes(range(256)) * 8,
    "truncated": b'apiVersion: v1\nkind: Pod\nmetadata:\n  name: "web\n  labels: {app: [web, {x: ',
    "nested": b"[" * 100_000,
    "alias-bomb": ALIAS_BOMB.encode(),
}


def leaf_commands() -> Iterator[tuple[list[str], Any]]:
    """(path of names, command) for every leaf subcommand of the app."""
    def walk(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        children = getattr(cmd, "commands", None)
        if children:
            for name, child in sorted(children.items()):
                yield from walk(child, [*path, name])
        else:
            yield path, cmd
    yield from walk(get_command(app), [])


def path_params(cmd: Any) -> list[Any]:
    """The command's parameters typed as a path (or a list of paths)."""
    hints = typing.get_type_hints(cmd.callback) if cmd.callback else {}
    return [p for p in cmd.params if "Path" in str(hints.get(p.name)) and not p.hidden]


def cases() -> Iterator[Any]:
    for path, cmd in leaf_commands():
        name = " ".join(path)
        if path[0] in NEEDS_ROOT_OR_NETWORK:
            continue
        for param in path_params(cmd):
            if param.opts[0] in OUTPUTS:
                continue
            for kind in KINDS:
                yield pytest.param(path, cmd, param.opts[0], kind, id=f"{name}:{param.opts[0]}:{kind}")


def test_every_subcommand_is_walked_or_listed() -> None:
    names = {path[0] for path, _ in leaf_commands()}
    assert set(NEEDS_ROOT_OR_NETWORK) <= names, "a skipped subcommand no longer exists"
    assert len(list(cases())) > 100


def arguments(path: list[str], cmd: Any, under_test: str, bad: Path, tmp: Path) -> list[str]:
    """Command line: the bad input for `under_test`, the same for other required paths, values for the rest."""
    args = list(path)
    positional: list[str] = []
    for param in cmd.params:
        opt = param.opts[0]
        is_path = param in path_params(cmd)
        if opt == under_test or (param.required and is_path and opt not in OUTPUTS):
            value = str(bad)
        elif param.required and opt in OUTPUTS:
            value = str(tmp / f"out-{param.name}")
        elif param.required:
            value = VALUES[opt]
        else:
            continue
        if opt.startswith("-"):
            args += [opt, value]
        else:
            positional.append(value)
    return [*args, *positional]


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


@pytest.mark.parametrize(("path", "cmd", "opt", "kind"), list(cases()))
def test_bad_input_gives_one_line_and_a_documented_exit(path: list[str], cmd: Any, opt: str, kind: str,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEGUARD_DB", str(tmp_path / "alerts.db"))
    monkeypatch.setenv("HOME", str(tmp_path))
    bad = tmp_path / "input.yaml"
    content = KINDS[kind]
    if content is not None:
        bad.write_bytes(content)
    args = arguments(path, cmd, opt, bad, tmp_path)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    shown = f"kubeguard {' '.join(args)}\nexit {result.exit_code}\nstdout: {result.stdout[-1500:]}\n" \
            f"stderr: {result.stderr[-1500:]}"
    assert not isinstance(result.exception, _Hang), f"no answer in {TIMEOUT_S} s: {shown}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {result.exception}\n{shown}"
    assert "Traceback" not in result.stdout + result.stderr, shown
    if result.exit_code == 0:
        assert kind != "missing" or os.path.exists(bad), f"a missing input passed silently: {shown}"
        return
    assert result.exit_code in DOCUMENTED_EXITS, shown
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("kubeguard: error:")]
    named = [line for line in result.stdout.splitlines() + lines if str(bad) in line]
    # One `error:` line ends the run; a command that reads its inputs to the end (scan, dpi) names the bad one
    # in a warning or its report and exits with its documented code.
    assert len(errors) == 1 or (not errors and named), f"expected one `kubeguard: error:` line: {shown}"

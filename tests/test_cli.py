"""The CLI entry point: version, help, and wrong flags give one clear line."""

import subprocess
import sys

from kubeguard import __version__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeguard", *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kubeguard {__version__}"


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_unknown_flag_is_an_error_without_traceback() -> None:
    result = run("--no-such-flag")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no-such-flag" in result.stderr

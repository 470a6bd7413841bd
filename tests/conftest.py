"""Shared test helpers: where ../shared/data is, and the CI rule for root tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KUBEGUARD_SHARED_DATA") or REPO.parent / "shared" / "data")
IN_CI = os.environ.get("CI") == "true"


def need_shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the test when a user's clone has no shared/."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (shared data is not part of a user's clone)")
    return path


def need_root(feature: str = "root") -> None:
    """Skip outside CI when not root; under CI=true a missing feature is a failure."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI=true but not root: {feature} cannot be tested")
        pytest.skip(f"needs root for {feature}")


def require(condition: bool, feature: str) -> None:
    """Skip outside CI when a kernel feature or tool is missing; fail under CI=true."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {feature} is missing")
        pytest.skip(f"{feature} is missing")


def libfuzzer_command(command: list[str]) -> list[str]:
    """`command` started from a small forked shell, so libFuzzer's -rss_limit_mb sees only its own memory.

    Linux keeps a process's peak RSS (getrusage's ru_maxrss, what libFuzzer checks) across execve, and
    subprocess starts children with vfork: a harness started straight from a pytest that has grown to 1 GB
    begins "using" 1 GB. A child the shell forks starts from the shell's own small peak.
    """
    return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *command]

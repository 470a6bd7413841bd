"""Fixtures for root tests: `podlab` makes test pods (see podlab.py) and removes them afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from podlab import PodLab
from roothelpers import IN_CI, REPO, SHARED_DATA, need_podlab, need_root, need_shared_data, require

__all__ = ["IN_CI", "REPO", "SHARED_DATA", "need_podlab", "need_root", "need_shared_data", "require"]


@pytest.fixture
def podlab() -> Iterator[PodLab]:
    """A PodLab for one test: `podlab.pod(...)` makes pods; all are torn down after the test."""
    need_podlab()
    lab = PodLab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def module_podlab() -> Iterator[PodLab]:
    """A PodLab shared by the tests of one module (for pods that are expensive to set up)."""
    need_podlab()
    lab = PodLab()
    try:
        yield lab
    finally:
        lab.close()

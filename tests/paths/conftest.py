"""Helpers for the attack-path tests: load a fixture under tests/fixtures/paths and build its graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeguard.cluster.loader import load_path
from kubeguard.posture.paths.build import build_graph
from kubeguard.posture.paths.graph import AttackGraph

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "paths"


def graph_of(name: str) -> AttackGraph:
    snapshot = load_path(FIXTURES / f"{name}.yaml")
    assert not snapshot.problems, snapshot.problems
    return build_graph(snapshot)


@pytest.fixture(scope="session")
def fixture_graph():
    cache: dict[str, AttackGraph] = {}

    def get(name: str) -> AttackGraph:
        if name not in cache:
            cache[name] = graph_of(name)
        return cache[name]

    return get

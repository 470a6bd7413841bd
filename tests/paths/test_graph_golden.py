"""The attack graph is exactly the one the single 570-line builder made before edges became registered units.

tests/paths/graph-golden.json was written by that builder (before the refactor, issue 11): every node and
edge, in insertion order, of each fixture under tests/fixtures/paths, and the counts and SHA-256 of the
bench cluster's graph (bench/scan.py's 10,000 pods). Any change to an edge rule shows here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.scan import generate
from tests.paths.conftest import FIXTURES, graph_of
from tests.paths.edgedump import graph_digest, graph_dump

from kubeguard.cluster.loader import load_path
from kubeguard.posture.paths.build import build_graph

GOLDEN = json.loads((Path(__file__).parent / "graph-golden.json").read_text())


def test_every_fixture_has_a_golden_graph() -> None:
    assert sorted(GOLDEN["fixtures"]) == sorted(f.stem for f in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(GOLDEN["fixtures"]))
def test_fixture_graph_is_identical(name: str) -> None:
    dump = json.loads(json.dumps(graph_dump(graph_of(name))))
    assert dump == GOLDEN["fixtures"][name]


@pytest.mark.slow
def test_bench_cluster_graph_is_identical(tmp_path: Path) -> None:
    generate(tmp_path)
    assert graph_digest(build_graph(load_path(tmp_path))) == GOLDEN["bench_cluster"]

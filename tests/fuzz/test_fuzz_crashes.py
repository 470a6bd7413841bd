"""Inputs the long fuzz lane (bench/fuzz.py) crashed on, kept as regression tests."""

from __future__ import annotations

from pathlib import Path

from kubeguard.cluster.loader import load_file
from kubeguard.cluster.snapshot import Snapshot

CRASHES = Path(__file__).with_name("crashes")


def test_static_pod_with_a_scalar_command_is_read() -> None:
    # a static kube-system Pod whose container `command` is a number: TypeError in components.from_static_pod
    snap = Snapshot()
    load_file(CRASHES / "manifests-command-scalar.yaml", snap)
    assert [obj.kind for obj in snap.objects] == ["Pod"]


def test_kind_config_patch_whose_kind_is_a_list_is_a_problem_not_a_crash() -> None:
    # a kind Cluster whose kubeadmConfigPatches hold a document with `kind:` a list: TypeError (unhashable) in
    # components._ConfigSet.add, found after 924,581 inputs
    snap = Snapshot()
    load_file(CRASHES / "manifests-kind-config-patch-list.yaml", snap)
    assert any("kind is not a string" in p.message for p in snap.problems)

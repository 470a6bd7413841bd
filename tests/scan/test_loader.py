"""Manifest loading: multi-document YAML, Lists, JSON, kubectl dumps, file:line, hostile input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubeguard.cluster import manifests
from kubeguard.cluster.loader import load_path, load_paths, load_workers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scan"


def test_manifest_folder_is_read_recursively_with_lines() -> None:
    snap = load_path(FIXTURES / "manifests")
    where = {obj.key: (Path(obj.source.file).name, obj.source.line) for obj in snap.objects}
    assert where == {
        ("Namespace", "", "shop"): ("app.yaml", 2),
        ("Deployment", "shop", "web"): ("app.yaml", 7),
        ("Service", "shop", "web"): ("app.yaml", 24),
        ("Certificate", "shop", "web-tls"): ("custom.yaml", 1),
        ("ConfigMap", "shop", "alert-text"): ("custom.yaml", 9),
        ("CronJob", "shop", "report"): ("cron.json", 1),
        ("NetworkPolicy", "shop", "deny-all"): ("netpol-list.yaml", 4),
        ("Role", "shop", "reader"): ("rbac-list.yaml", 4),
        ("RoleBinding", "shop", "reader"): ("rbac-list.yaml", 13),
    }
    assert snap.problems == []


def test_pod_templates_reach_every_pod_bearing_kind() -> None:
    snap = load_path(FIXTURES / "manifests")
    images = sorted((t.owner.kind, c["image"]) for t in snap.pod_templates() for c in t.containers())
    assert images == [("CronJob", "busybox:1.36"), ("Deployment", "nginx:1.25.3")]


def test_kubectl_dump_items_have_their_lines_and_static_pod_flags() -> None:
    dump = FIXTURES / "dump" / "cluster.json"
    snap = load_path(dump)
    lines = dump.read_text().splitlines()
    assert len(snap.objects) == 8
    for obj in snap.objects:
        # each item's line is where its JSON object opens, and the object's kind follows
        assert lines[obj.source.line - 1].strip() == "{"
        assert f'"kind": "{obj.kind}"' in "\n".join(lines[obj.source.line - 1:obj.source.line + 3])
    # the Deployment is in the dump, so its ReplicaSet and Pod are not reported again
    owners = [t.owner.key for t in snap.pod_templates()]
    assert owners == [("Pod", "kube-system", "kube-apiserver-cp-1"), ("Deployment", "payments", "api")]
    [apiserver] = snap.components
    assert apiserver.component == "kube-apiserver"
    assert apiserver.node == "cp-1"
    assert apiserver.flags["anonymous-auth"] == "false"
    assert apiserver.flags["authorization-mode"] == "Node,RBAC"


def test_hostile_files_give_one_problem_each_and_the_rest_loads() -> None:
    snap = load_path(FIXTURES / "hostile")
    names = sorted(obj.name for obj in snap.objects)
    assert names == ["good-after", "good-before"]  # broken.json is one document: none of it
    problems = {(Path(p.where.split(":")[0]).name, p.where.partition(":")[2]): p.message for p in snap.problems}
    assert problems[("helm-template.yaml", "4")].startswith("templated file")
    assert problems[("malformed.yaml", "11")].startswith("malformed YAML")
    assert problems[("unknown-kind.yaml", "1")] == "unknown kind 'Deploymnet' (apiVersion apps/v1): not checked"
    assert problems[("not-an-object.yaml", "1")] == "not a Kubernetes object (a list)"
    assert problems[("not-an-object.yaml", "4")] == "not a Kubernetes object (no `kind`)"
    assert problems[("broken.json", "3")].startswith("malformed JSON")
    assert problems[("latin1.yaml", "3")].startswith("not UTF-8 text")
    assert problems[("image.yaml", "")] == "binary file, not a manifest"
    assert problems[("alias.yaml", "1")] == "YAML alias refers to a node that contains it (recursive): refused"
    assert len(snap.problems) == 9
    assert all("\n" not in str(p) for p in snap.problems)


def test_huge_and_unreadable_files_are_reported_not_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as fh:  # sparse: no disk used
        fh.truncate(manifests.MAX_FILE_BYTES + 1)
    missing = tmp_path / "gone"
    snap = load_paths([huge, missing])
    assert [str(p) for p in snap.problems] == [
        f"{huge}: file too large (64 MiB > 64 MiB limit)",
        f"{missing}: no such file or directory",
    ]
    if os.geteuid() != 0:  # root reads anything; only a user can test permissions
        locked = tmp_path / "locked.yaml"
        locked.write_text("kind: ConfigMap\n")
        locked.chmod(0)
        assert "Permission denied" in str(load_path(locked).problems[0])


def test_a_file_is_taken_whatever_its_suffix_and_dot_dirs_are_skipped(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: hidden}\n")
    (tmp_path / "notes.txt").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: text}\n")
    assert load_path(tmp_path).objects == []
    assert [o.name for o in load_path(tmp_path / "notes.txt").objects] == ["text"]


def test_parallel_load_gives_the_same_snapshot_as_a_serial_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(workers: str) -> tuple[list[object], list[object], list[str]]:
        monkeypatch.setenv("KUBEGUARD_LOAD_WORKERS", workers)
        snap = load_paths([FIXTURES, FIXTURES.parent / "clusters"])
        return ([(o.key, o.source) for o in snap.objects],
                [(c.component, c.node, c.flags, c.source) for c in snap.components],
                [str(p) for p in snap.problems])

    serial = load("1")
    assert load_workers(200) == 1
    parallel = load("2")
    assert serial == parallel
    assert len(serial[0]) > 50 and serial[1] and serial[2]

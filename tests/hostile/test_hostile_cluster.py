"""Hostile input to the cluster lane (issue 18, items 1, 2, 8, 9, 13, 14): manifests, dumps, kubeconfigs,
pods files and the folders they sit in, given to scan, paths, demo --examples, dpi --pods and agent --pods.

Each case runs the real CLI as a subprocess under an address-space limit (RLIMIT_AS) and a generous wall
timeout, and asserts one clear line naming the file (and line), the documented exit code, and no traceback.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from tests.conftest import need_root

from kubeguard.net.pcapgen import PcapWriter

MEMORY_LIMIT = 2 * 1024**3  # address space of one CLI run: a bomb that expands fails, a fixed one stays far below
WALL_TIMEOUT = 300  # seconds; generous for two loaded cores, never a timing assertion
SRC = Path(__file__).resolve().parents[2] / "src"
POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  containers:
  - name: c
    image: nginx:1.25
{extra}"""


def kubeguard(*args: str | Path, drop_dac: bool = False,
              memory: int = MEMORY_LIMIT) -> subprocess.CompletedProcess[str]:
    """Run the CLI bounded in memory and time; `drop_dac` runs it as a root that file permissions bind."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if drop_dac else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([*prefix, sys.executable, "-m", "kubeguard", *map(str, args)], capture_output=True,
                            text=True, timeout=WALL_TIMEOUT, preexec_fn=limit, env=env)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert "MemoryError" not in result.stderr, result.stderr[-3000:]
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused run prints."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kubeguard: error: "), lines
    return lines[0]


def warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("kubeguard: warning: ")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inputs of the audit, recreated."""
    root = tmp_path_factory.mktemp("hostile")
    digits = "9" * 5000
    (root / "bigport.yaml").write_text(POD.format(name="big", extra=f"    ports:\n    - containerPort: {digits}\n"))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 0}]}]}}
    (root / "bigport.json").write_text(json.dumps(pod).replace('"containerPort": 0', f'"containerPort": {digits}'))
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "deep300.json").write_text('{"kind": "Pod", "metadata": {"name": "d"}, "spec": {"x": '
                                       + "[" * 300 + "]" * 300 + "}}")
    (root / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    anchors = ['a0: &a0 "xxxxxxxxxx"'] + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]"
                                          for i in range(1, 10)]
    bomb = POD.format(name="bomb", extra="    env:\n    - name: E\n      value: *a9\n").replace(
        "spec:", "x-anchors:\n" + "".join(f"  {line}\n" for line in anchors) + "spec:")
    assert len(bomb) < 700
    (root / "bomb.yaml").write_text(bomb)
    merges = ["m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(10)) + "}"] + [
        f"m{i}: &m{i} " + "{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "], " + f"own{i}: [*m{i - 1}, *m{i - 1}]" + "}"
        for i in range(1, 10)]
    (root / "merge-bomb.yaml").write_text("\n".join(merges) + "\nkind: ConfigMap\nmetadata: {name: m}\n")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 40)
    (root / "malformed.yaml").write_text("kind: Pod\nmetadata: [unclosed\n")
    (root / "malformed.json").write_text('{"kind": "Pod", "metadata": {bad}}')
    with (root / "huge.yaml").open("wb") as fh:  # sparse: no disk used
        fh.truncate(64 * 1024 * 1024 + 1)
    pods = {
        "spec5": {"kind": "Pod", "metadata": {"name": "a"}, "spec": 5},
        "statusx": {"kind": "Pod", "metadata": {"name": "a"}, "status": "x"},
        "meta1": {"kind": "Pod", "metadata": [1]},
        "csnull": {"kind": "Pod", "metadata": {"name": "a"}, "status": {"containerStatuses": [None]}},
        "owners": {"kind": "Pod", "metadata": {"name": "a", "uid": "u1", "labels": 5, "ownerReferences": 5}},
        "mixed": {"kind": "Pod", "metadata": {"name": "a", "labels": 5, "uid": {"x": 1}},
                  "spec": {"containers": 5, "hostNetwork": "yes"},
                  "status": {"podIP": ["1.2.3.4"], "podIPs": 7, "containerStatuses": [{"containerID": [1]}, 3]}},
    }
    for name, value in pods.items():
        (root / f"pods-{name}.json").write_text(json.dumps({"kind": "List", "items": [value]}))
    (root / "pods-snapshot.json").write_text(json.dumps({"kind": "KubeguardSnapshot", "objects": [5, {"x": 1}]}))
    (root / "pods-bigport.json").write_text(json.dumps({"kind": "List", "items": [pod]}).replace(
        '"containerPort": 0', f'"containerPort": {digits}'))
    (root / "pods-deep.json").write_text('{"kind": "List", "items": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with (root / "empty.pcap").open("wb") as fh:
        PcapWriter(fh)
    return root


def examples_with(root: Path, name: str, *files: str) -> Path:
    """An --examples folder whose tesla/ holds `files` of `root`."""
    examples = root / name
    (examples / "tesla").mkdir(parents=True)
    for file in files:
        shutil.copy(root / file, examples / "tesla" / file)
    return examples


# item 1: untrusted numbers and depth


def test_item1_number_of_5000_digits_is_one_warning_and_the_object_is_still_scanned(hostile: Path) -> None:
    for name, line in (("bigport.yaml", 9), ("bigport.json", 1)):
        result = kubeguard("scan", hostile / name, "-o", "json")
        assert result.returncode == 0, result.stderr
        assert warnings(result) == [f"kubeguard: warning: {hostile / name}:{line}: integer with 5000 digits is out "
                                    "of range (int64): read as null"]
        assert any(":Pod/default/big" in f["id"] for f in json.loads(result.stdout)["findings"])
        result = kubeguard("paths", hostile / name, "-o", "json")
        assert result.returncode in (0, 1) and len(warnings(result)) == 1, result.stderr
        json.loads(result.stdout)


def test_item1_documents_nested_too_deep_are_refused_in_one_line(hostile: Path) -> None:
    for name, where in (("deep.json", "deep.json"), ("deep300.json", "deep300.json"), ("deep.yaml", "deep.yaml:1")):
        result = kubeguard("scan", hostile / name, "-o", "json")
        assert result.returncode == 2
        [line] = warnings(result)
        assert f"not read: {hostile / where}: " in line and ("nested deeper than 200" in line or "depth" in line)
        line = error_line(kubeguard("paths", hostile / name))
        assert f"{hostile / where}: " in line


def test_item1_demo_examples_and_pods_files_with_huge_numbers_or_depth(hostile: Path) -> None:
    examples = examples_with(hostile, "ex-numbers", "bigport.json", "bigport.yaml", "deep.json")
    result = kubeguard("demo", "--examples", examples)
    assert result.returncode == 1  # the bad Tesla folder lacks the breach's stages: the step says so
    assert "not read: " in result.stdout and "missing:" in result.stdout
    result = kubeguard("dpi", "--no-store", "--pods", hostile / "pods-bigport.json", hostile / "empty.pcap")
    assert result.returncode == 0, result.stderr
    result = kubeguard("dpi", "--no-store", "--pods", hostile / "pods-deep.json", hostile / "empty.pcap")
    assert result.returncode == 2
    assert error_line(result) == (f"kubeguard: error: {hostile / 'pods-deep.json'}: pods file: nested deeper "
                                  "than 200 levels: refused")
    result = kubeguard("agent", "--pods", hostile / "pods-deep.json")
    assert result.returncode == 2 and "nested deeper than 200 levels" in error_line(result)


# item 2: alias bombs


def test_item2_alias_bomb_is_refused_with_file_and_line_in_bounded_memory(hostile: Path, tmp_path: Path) -> None:
    for name, line in (("bomb.yaml", 9), ("merge-bomb.yaml", 4)):  # the line of the anchor that overflows
        result = kubeguard("scan", hostile / name, "-o", "json")
        assert result.returncode == 2
        [warning] = warnings(result)
        assert warning.startswith(f"kubeguard: warning: not read: {hostile / name}:"), warning
        assert "YAML aliases expand to more than 100,000 nodes (alias bomb?): refused" in warning
        assert f"{name}:{line}:" in warning
    assert "alias bomb" in error_line(kubeguard("paths", hostile / "bomb.yaml"))
    result = kubeguard("scan", hostile / "empty.pcap", "--exceptions", hostile / "bomb.yaml")
    assert result.returncode == 2 and "exceptions file" in error_line(result) and "alias bomb" in result.stderr
    result = kubeguard("scan", "--kubeconfig", hostile / "bomb.yaml")
    assert result.returncode == 2 and error_line(result).startswith(f"kubeguard: error: kubeconfig {hostile}")
    # a few anchors used as YAML intends still load
    (tmp_path / "anchors.yaml").write_text(POD.format(name="ok", extra="    env: &env\n    - {name: A, value: b}\n")
                                           + "  initContainers:\n  - name: i\n    image: busybox:1\n    env: *env\n")
    result = kubeguard("scan", tmp_path / "anchors.yaml", "-o", "json")
    assert result.returncode == 0 and not warnings(result)


# item 8: paths on bad input exits 2


def test_item8_paths_on_bad_input_exits_2_with_one_line(hostile: Path) -> None:
    cases = {
        "garbage.bin": "binary file, not a manifest",
        "malformed.yaml": "malformed YAML",
        "malformed.json": "malformed JSON",
        "huge.yaml": "file too large",
    }
    for name, why in cases.items():
        result = kubeguard("paths", hostile / name)
        assert result.returncode == 2, (name, result.stderr)
        assert why in error_line(result)
    result = kubeguard("paths", "/dev/zero")
    assert result.returncode == 2 and "/dev/zero: not a regular file or directory" in error_line(result)
    # some inputs unread and no path found: "no path" cannot be claimed
    folder = hostile / "half"
    folder.mkdir()
    shutil.copy(hostile / "garbage.bin", folder / "garbage.yaml")
    (folder / "ok.yaml").write_text(POD.format(name="ok", extra=""))
    result = kubeguard("paths", folder)
    assert result.returncode == 2 and any("garbage.yaml" in w for w in warnings(result))


# item 9: pods files with wrong types


def test_item9_pods_files_with_wrong_types_are_read_as_absent_fields(hostile: Path) -> None:
    for name in ("spec5", "statusx", "meta1", "csnull", "owners", "mixed", "snapshot"):
        result = kubeguard("dpi", "--no-store", "--pods", hostile / f"pods-{name}.json", hostile / "empty.pcap")
        assert result.returncode == 0, (name, result.stderr)
        assert "dpi: 0 packets" in result.stdout


def test_item9_agent_reads_pods_files_with_wrong_types(hostile: Path, tmp_path: Path) -> None:
    need_root("the agent's proc connector sensor")
    for name in ("spec5", "statusx", "meta1", "csnull", "owners", "mixed"):
        result = kubeguard("agent", "--pods", hostile / f"pods-{name}.json", "--sensor", "proc", "--no-fanotify",
                           "--no-default-rules", "--duration", "0.2", "--store", tmp_path / "agent.db",
                           "--alerts-out", tmp_path / "alerts.jsonl")
        assert result.returncode == 0, (name, result.stderr)
        assert "kubeguard agent: stopped;" in result.stderr


# item 13: other tracebacks


def test_item13_metrics_port_out_of_range(hostile: Path) -> None:
    for port in ("99999", "-1", "0"):
        result = kubeguard("agent", "--metrics-port", port)
        assert result.returncode == 2
        assert error_line(result) == f"kubeguard: error: --metrics-port {port}: expected a port number 1-65535"


def test_item13_kubeconfig_nested_100000_deep(hostile: Path) -> None:
    result = kubeguard("scan", "--kubeconfig", hostile / "deep.yaml")
    assert result.returncode == 2
    assert error_line(result).startswith(f"kubeguard: error: kubeconfig {hostile / 'deep.yaml'}:1: ")
    result = kubeguard("scan", "--kubeconfig", "/dev/zero")
    assert result.returncode == 2 and error_line(result).endswith("/dev/zero: not a regular file")


def test_item13_demo_examples_missing_or_bad(hostile: Path) -> None:
    result = kubeguard("demo", "--examples", hostile / "nonexistent")
    assert result.returncode == 2 and error_line(result).endswith("nonexistent: no such directory")
    result = kubeguard("demo", "--examples", hostile / "bomb.yaml")
    assert result.returncode == 2 and error_line(result).endswith("bomb.yaml: not a directory")
    examples = examples_with(hostile, "ex-bad", "bomb.yaml", "merge-bomb.yaml", "garbage.bin", "malformed.json",
                             "deep.yaml", "bigport.json")
    result = kubeguard("demo", "--examples", examples)
    assert result.returncode == 1 and "alias bomb" in result.stdout and "Tesla breach stages found" in result.stdout


# item 14: folders (symlink loops, unreadable subdirectories) and duplicate keys


def test_item14_symlink_loops_and_unreadable_subdirectories_are_named(tmp_path: Path) -> None:
    (tmp_path / "loop-a.yaml").symlink_to("loop-b.yaml")
    (tmp_path / "loop-b.yaml").symlink_to("loop-a.yaml")
    (tmp_path / "dangling.yaml").symlink_to("nowhere.yaml")
    (tmp_path / "ok.yaml").write_text(POD.format(name="ok", extra=""))
    result = kubeguard("scan", tmp_path, "-o", "json")
    assert result.returncode == 0
    assert warnings(result) == [
        f"kubeguard: warning: not read: {tmp_path / 'dangling.yaml'}: no such file or directory",
        f"kubeguard: warning: not read: {tmp_path / 'loop-a.yaml'}: symlink loop",
        f"kubeguard: warning: not read: {tmp_path / 'loop-b.yaml'}: symlink loop",
    ]
    line = error_line(kubeguard("paths", tmp_path / "loop-a.yaml"))
    assert line == f"kubeguard: error: {tmp_path / 'loop-a.yaml'}: symlink loop"
    result = kubeguard("scan", tmp_path / "loop-a.yaml")
    assert result.returncode == 2 and "symlink loop" in result.stdout


def test_item14_unreadable_subdirectory_is_a_not_read_line(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(POD.format(name="ok", extra=""))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "hidden.yaml").write_text(POD.format(name="hidden", extra=""))
    locked.chmod(0o700)
    root = os.geteuid() == 0
    if root:  # root reads anything: own it by nobody and run without the capabilities that bypass permissions
        os.chown(locked, 65534, 65534)
        tmp_path.chmod(0o755)
    result = kubeguard("scan", tmp_path, "-o", "json", drop_dac=root)
    assert result.returncode == 0
    assert warnings(result) == [f"kubeguard: warning: not read: {locked}: cannot list directory: Permission denied"]


def test_item14_duplicate_keys_are_warned_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text(POD.format(name="dup", extra="  containers:\n  - name: c2\n    image: evil\n"))
    result = kubeguard("scan", tmp_path / "dup.yaml", "-o", "json")
    assert result.returncode == 0
    assert f"kubeguard: warning: {tmp_path / 'dup.yaml'}:8: duplicate key 'containers': the last one is used" in \
        warnings(result)


def test_item14_wrong_shapes_are_warned_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "shapes.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: s, namespace: default}\nspec:\n  containers: 5\n---\n"
        + POD.format(name="t", extra="    ports: [null, {containerPort: 99999}]\n") + "---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n"
        "roleRef: {kind: ClusterRole, name: cluster-admin, apiGroup: rbac.authorization.k8s.io}\nsubjects: 5\n")
    result = kubeguard("scan", tmp_path / "shapes.yaml", "-o", "json")
    assert result.returncode == 0
    name = tmp_path / "shapes.yaml"
    assert warnings(result) == [
        f"kubeguard: warning: {name}:5: Pod s: `spec.containers` is not a list (a number): ignored",
        f"kubeguard: warning: {name}:14: Pod t: `spec.containers[0].ports[0]` is not a mapping (null): ignored",
        f"kubeguard: warning: {name}:14: Pod t: `spec.containers[0].ports[1].containerPort` 99999 is not a port "
        "number (1-65535)",
        f"kubeguard: warning: {name}:20: ClusterRoleBinding b: `subjects` is not a list (a number): ignored",
    ]
    dump = {"kind": "List", "items": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                                       "spec": {"ports": [None]}}]}
    (tmp_path / "dump.json").write_text(json.dumps(dump, indent=1))
    result = kubeguard("paths", tmp_path / "dump.json")
    assert result.returncode == 0
    assert warnings(result) == [f"kubeguard: warning: {tmp_path / 'dump.json'}:4: Service x: `spec.ports[0]` is not a "
                                "mapping (null): ignored"]


def test_item14_paths_is_linear_in_containers_per_pod(tmp_path: Path) -> None:
    containers = [{"name": f"c{i}", "image": "nginx:1.25", "securityContext": {"privileged": True}}
                  for i in range(20_000)]  # was over two minutes (quadratic); seconds now
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wide", "namespace": "default",
                                                           "labels": {"app": "wide"}},
           "spec": {"containers": containers}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "wide", "namespace": "default"},
               "spec": {"type": "NodePort", "selector": {"app": "wide"}, "ports": [{"port": 80}]}}
    (tmp_path / "wide.json").write_text(json.dumps({"kind": "List", "items": [pod, service]}))
    result = kubeguard("paths", tmp_path / "wide.json", "--to", "node-root", "-o", "json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["answers"][0]["paths"]


@pytest.mark.parametrize("output", ["json", "sarif", "junit"])
def test_item14_large_manifest_scan_stays_within_512_mib(tmp_path: Path, output: str) -> None:
    """A 14 MB multi-document manifest (40,000 pods, 160,000 findings) under a 512 MiB address-space cap.

    Before: the node trees of all documents at once were 3.5 GB for 60 MB; then, one document at a time,
    still 811 MB peak RSS for this file (a str per scalar of every document, the whole report text built
    in memory, SARIF through the pure-Python `indent` encoder, JUnit as an ElementTree). Now strings are
    shared, and reports are written a finding at a time: 266 MB peak RSS.
    """
    document = POD.format(name="p{i}", extra="    env:\n" + "".join(f"    - {{name: E{j}, value: v{j}}}\n"
                                                                       for j in range(8)))
    text = "---\n".join(document.replace("p{i}", f"p{i}") for i in range(40_000))
    (tmp_path / "large.yaml").write_text(text)
    assert len(text) > 14_000_000
    result = kubeguard("scan", tmp_path / "large.yaml", "-o", output, memory=512 * 1024**2)
    assert result.returncode == 0 and not warnings(result), result.stderr[-2000:]
    if output == "json":
        assert json.loads(result.stdout)["summary"]["findings"] == 160_001
    elif output == "sarif":
        assert len(json.loads(result.stdout)["runs"][0]["results"]) == 160_001
    else:
        suite = ElementTree.fromstring(result.stdout.encode())[0]
        assert suite.get("failures") == "160001" and len(suite.findall("testcase")) == 160_001

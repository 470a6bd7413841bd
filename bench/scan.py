"""Benchmark `kubeguard scan` against `checkov -d` on one synthetic cluster, in the same run.

The cluster (written to bench/.work/scan-cluster/): 10,000 pods (5,000 Deployments of one replica
and 5,000 bare Pods), 2,000 Roles/RoleBindings, 1,000 Services, over 100 namespaces, one
multi-document file per namespace and kind; about one workload in ten is insecure in some way
(privileged, hostPath, literal AWS key, :latest, NodePort) so both tools have findings to report.
checkov is installed with pip into its own venv (bench/.work/checkov-venv), never a runtime dependency.

Run: `PYTHONPATH=src:. python -m bench.scan` (a few minutes: checkov on 20 of the 100 namespaces);
`--full` runs checkov on the whole cluster too (15 minutes here), `--no-checkov` times kubeguard alone
(printed, not recorded).
Both tools run as CLI subprocesses (interpreter start and imports included), output to a file.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.record import record

try:
    from yaml import CSafeDumper as Dumper
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as Dumper  # type: ignore[assignment]

WORK = Path(__file__).resolve().parent / ".work"
CLUSTER = WORK / "scan-cluster"
CHECKOV_VENV = WORK / "checkov-venv"
NAMESPACES = 100
DEPLOYMENTS = 5_000
BARE_PODS = 5_000
ROLES = 1_000  # plus as many RoleBindings: 2,000 RBAC objects
SERVICES = 1_000
KUBEGUARD_RUNS = 3


def _container(i: int) -> dict[str, Any]:
    """One container; about one in ten is privileged and holds a literal AWS key."""
    image = "nginx:latest" if i % 7 == 0 else f"registry.example.com/app-{i % 50}:1.{i % 9}.0"
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
    if i % 10 == 0:
        container["securityContext"] = {"privileged": True}
        container["env"] = [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIAIOSFODNN7EXAMPLE"}]
    else:
        container["securityContext"] = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
        container["resources"] = {"limits": {"cpu": "500m", "memory": "256Mi"},
                                  "requests": {"cpu": "100m", "memory": "128Mi"}}
    return container


def _pod_spec(i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"automountServiceAccountToken": False, "containers": [_container(i)]}
    if i % 25 == 0:
        spec["volumes"] = [{"name": "host", "hostPath": {"path": "/var/log"}}]
    return spec


def _deployment(i: int, ns: str) -> list[dict[str, Any]]:
    labels = {"app": f"app-{i}"}
    return [{"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": f"app-{i}", "namespace": ns, "labels": labels},
             "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels}, "spec": _pod_spec(i)}}}]


def _pod(i: int, ns: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"job-{i}", "namespace": ns, "labels": {"app": f"job-{i}"}},
             "spec": _pod_spec(i)}]


def _role(i: int, ns: str) -> list[dict[str, Any]]:
    verbs = ["*"] if i % 20 == 0 else ["get", "list"]
    resources = ["secrets"] if i % 10 == 0 else ["pods", "configmaps"]
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": f"role-{i}", "namespace": ns},
         "rules": [{"apiGroups": [""], "resources": resources, "verbs": verbs}]},
        {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": f"role-{i}", "namespace": ns},
         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": f"role-{i}"},
         "subjects": [{"kind": "ServiceAccount", "name": f"sa-{i % 5}", "namespace": ns}]},
    ]


def _service(i: int, ns: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": ns},
             "spec": {"type": "NodePort" if i % 10 == 0 else "ClusterIP", "selector": {"app": f"app-{i * 5}"},
                      "ports": [{"port": 80, "targetPort": 8080}]}}]


def generate(root: Path = CLUSTER) -> dict[str, int]:
    """Write the synthetic cluster (idempotent: same content every time); returns object counts."""
    root.mkdir(parents=True, exist_ok=True)
    Maker = Callable[[int, str], list[dict[str, Any]]]
    makers: tuple[tuple[str, int, Maker], ...] = (
        ("deployments", DEPLOYMENTS, _deployment), ("pods", BARE_PODS, _pod), ("rbac", ROLES, _role),
        ("services", SERVICES, _service),
    )
    for name, count, make in makers:
        per_ns = count // NAMESPACES
        for n in range(NAMESPACES):
            ns = f"team-{n:03d}"
            docs = [doc for k in range(per_ns) for doc in make(n * per_ns + k, ns)]
            text = yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, default_flow_style=False)
            (root / f"{ns}-{name}.yaml").write_text(text)
    return {"Deployment": DEPLOYMENTS, "Pod": BARE_PODS, "Role": ROLES, "RoleBinding": ROLES, "Service": SERVICES}


def checkov_bin() -> Path:
    """checkov in its own venv under bench/.work (created with pip on first use)."""
    exe = CHECKOV_VENV / "bin" / "checkov"
    if not exe.exists():
        print("bench.scan: installing checkov into", CHECKOV_VENV, flush=True)
        venv.create(CHECKOV_VENV, with_pip=True)
        subprocess.run([str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", "checkov"], check=True)
    return exe


def timed(cmd: list[str], out: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    with out.open("w") as fh:
        result = subprocess.run(cmd, stdout=fh, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"bench.scan: {cmd[0]} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return elapsed


def slice_of(namespaces: int) -> Path:
    """A folder with the files of the first `namespaces` namespaces (hard links to the full cluster)."""
    if namespaces >= NAMESPACES:
        return CLUSTER
    folder = WORK / f"scan-slice-{namespaces}"
    folder.mkdir(exist_ok=True)
    for file in CLUSTER.glob("*.yaml"):
        if int(file.name[5:8]) < namespaces and not (folder / file.name).exists():
            os.link(file, folder / file.name)
    return folder


def kubeguard_time(folder: Path) -> tuple[float, list[float], int]:
    """Median wall time of `kubeguard scan FOLDER -o json` over KUBEGUARD_RUNS runs, and its finding count."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    out = WORK / "kubeguard-scan.json"
    times = [timed([sys.executable, "-m", "kubeguard", "scan", str(folder), "-o", "json"], out, env)
             for _ in range(KUBEGUARD_RUNS)]
    return statistics.median(times), times, int(json.loads(out.read_text())["summary"]["findings"])


def checkov_time(folder: Path) -> tuple[float, int, int]:
    """Wall time of `checkov -d` on the folder, its failed-check count and resource count.

    checkov skips paths under a hidden directory (bench/.work), so it runs from inside the folder.
    """
    out = WORK / "checkov.json"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    elapsed = timed([str(checkov_bin()), "-d", ".", "--framework", "kubernetes", "--compact", "--quiet",
                     "-o", "json", "--skip-download"], out, env, cwd=folder)
    data = json.loads(out.read_text())
    reports = data if isinstance(data, list) else [data]
    failed = sum(int(r.get("summary", {}).get("failed", 0)) for r in reports)
    resources = sum(int(r.get("summary", {}).get("resource_count", 0)) for r in reports)
    if not resources:
        raise SystemExit(f"bench.scan: checkov scanned no resource in {folder}")
    return elapsed, failed, resources


def run(checkov_namespaces: int = 20, with_checkov: bool = True) -> str:
    """Time both tools; checkov on `checkov_namespaces` of the 100 namespaces (all: pass 100)."""
    counts = generate()
    kg_full, kg_full_runs, findings = kubeguard_time(CLUSTER)
    print(f"kubeguard scan (full cluster): {kg_full:.2f} s (runs: {', '.join(f'{t:.2f}' for t in kg_full_runs)}),"
          f" {findings} findings", flush=True)
    pods = counts["Deployment"] + counts["Pod"]
    lines = [
        "## Posture scan: kubeguard scan vs checkov -d",
        "",
        f"Synthetic cluster (`bench/scan.py`): {pods:,} pods ({counts['Deployment']:,} Deployments + "
        f"{counts['Pod']:,} bare Pods), {counts['Role'] + counts['RoleBinding']:,} Roles/RoleBindings, "
        f"{counts['Service']:,} Services in {NAMESPACES} namespaces ({len(list(CLUSTER.glob('*.yaml')))} "
        "multi-document YAML files). Both tools run as CLI processes (start-up included) on the same folder in "
        f"the same run, JSON output to a file; kubeguard times are the median of {KUBEGUARD_RUNS} runs. Absolute"
        " times move with other load on the machine (load average below); the ratio of the two tools measured"
        " side by side is what counts.",
        "",
        "| tool | folder | wall time | findings |",
        "|---|---|---|---|",
        f"| kubeguard scan -o json | full cluster ({pods:,} pods) | {kg_full:.2f} s | {findings:,} |",
    ]
    if with_checkov:
        folder = slice_of(checkov_namespaces)
        share = f"{checkov_namespaces} of {NAMESPACES} namespaces ({pods * checkov_namespaces // NAMESPACES:,} pods)"
        if folder == CLUSTER:
            kg, kg_findings, share = kg_full, findings, f"full cluster ({pods:,} pods)"
        else:
            kg, _, kg_findings = kubeguard_time(folder)
            lines.append(f"| kubeguard scan -o json | {share} | {kg:.2f} s | {kg_findings:,} |")
        ck, ck_failed, ck_resources = checkov_time(folder)
        ratio = ck / kg
        print(f"checkov -d ({share}): {ck:.2f} s, {ck_failed} failed checks on {ck_resources} resources; "
              f"kubeguard {kg:.2f} s: {ratio:.1f}x faster", flush=True)
        lines.append(f"| checkov -d --framework kubernetes -o json | {share} | {ck:.2f} s | "
                     f"{ck_failed:,} failed checks ({ck_resources:,} resources) |")
        lines += ["", f"**kubeguard is {ratio:.0f}x faster than checkov** on the same folder ({share}); "
                  f"the full cluster scans in {kg_full:.2f} s (targets: >= 20x, <= 5 s)."]
    markdown = "\n".join(lines)
    if with_checkov:  # a run without the peer has no ratio: it must not replace the recorded comparison
        record("scan", markdown)
    return markdown


if __name__ == "__main__":
    args = sys.argv[1:]
    run(checkov_namespaces=NAMESPACES if "--full" in args else 20, with_checkov="--no-checkov" not in args)

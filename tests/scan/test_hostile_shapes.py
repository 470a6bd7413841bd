"""Objects with wrong field types (as a hostile or broken manifest has them): no check may crash."""

from __future__ import annotations

import itertools

from kubeguard.cluster.snapshot import K8sObject, Snapshot
from kubeguard.posture.exposure import evaluate_exposure
from kubeguard.posture.rbac_checks import evaluate_rbac
from kubeguard.posture.workload_checks import evaluate_workloads

WEIRD = ["x", 7, None, [], {}, ["a", 1, None], {"a": 1}, True]


def _objects(value: object) -> list[dict]:
    container = {"name": value, "image": value, "env": value, "ports": value, "args": value, "command": value,
                 "securityContext": value, "resources": value, "volumeMounts": value}
    nested = {"name": "c", "image": "i:1", "env": [{"name": value, "value": value}, value],
              "ports": [{"containerPort": value, "hostPort": value, "name": value}, value],
              "securityContext": {"capabilities": {"add": value}, "privileged": value, "runAsUser": value},
              "resources": {"limits": value}, "volumeMounts": [{"name": value, "readOnly": value}, value]}
    pod_spec = {"containers": [container, nested, value], "initContainers": value, "volumes": [
        {"name": "v", "hostPath": value}, {"name": "w", "hostPath": {"path": value}}, value],
        "serviceAccountName": value, "hostPID": value, "securityContext": value,
        "automountServiceAccountToken": value}
    return [
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "n", "labels": value}, "spec": pod_spec},
        {"kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
         "spec": {"template": {"metadata": value, "spec": pod_spec}}},
        {"kind": "Service", "metadata": {"name": "s", "namespace": "n"},
         "spec": {"type": value, "selector": value, "ports": [value, {"port": value, "targetPort": value}],
                  "externalIPs": value}},
        {"kind": "Service", "metadata": {"name": "t", "namespace": "n"},
         "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": value}},
        {"kind": "Ingress", "metadata": {"name": "i", "namespace": "n"},
         "spec": {"rules": [value, {"host": value, "http": {"paths": [value, {"backend": value}]}}],
                  "defaultBackend": value}},
        {"kind": "Ingress", "metadata": {"name": "j", "namespace": "n"},
         "spec": {"rules": [{"http": value}], "defaultBackend": {"service": {"name": "s", "port": value}}}},
        {"kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "n"},
         "spec": {"podSelector": {"matchLabels": value, "matchExpressions": [value, {"values": value}]}}},
        {"kind": "ClusterRole", "metadata": {"name": "r", "labels": value}, "rules": [value, {"verbs": value,
         "apiGroups": value, "resources": value, "resourceNames": value}],
         "aggregationRule": {"clusterRoleSelectors": [value, {"matchLabels": value}]}},
        {"kind": "ClusterRole", "metadata": {"name": "q"}, "rules": value, "aggregationRule": value},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": value, "subjects": value},
        {"kind": "RoleBinding", "metadata": {"name": "c", "namespace": "n"},
         "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [value, {"kind": value, "name": value}]},
        {"kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "n"},
         "automountServiceAccountToken": value},
    ]


def test_no_evaluator_crashes_on_wrong_types() -> None:
    for value in WEIRD:
        snap = Snapshot()
        for raw in _objects(value):
            snap.add(K8sObject(raw))
        for evaluate in (evaluate_rbac, evaluate_workloads, evaluate_exposure):
            findings = list(evaluate(snap))
            assert all(f.check and f.resource.kind for f in findings)


def test_no_evaluator_crashes_on_mixed_types() -> None:
    for first, second in itertools.product(WEIRD[:4], WEIRD[4:]):
        snap = Snapshot()
        for raw in _objects(first) + _objects(second):
            snap.add(K8sObject(raw))
        for evaluate in (evaluate_rbac, evaluate_workloads, evaluate_exposure):
            list(evaluate(snap))

"""The evaluator against the truth tables of the upstream Kubernetes network-policy e2e suite.

Each case is re-expressed from the suite's documented semantics (pods a/b/c in namespaces x/y/z,
ports 80/81, TCP/UDP/SCTP): the policies it creates and the reachability matrix it expects. Every
pair of the 9x9 matrix must be equal; as upstream, a pod talking to itself (loopback) is not judged.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.net.netpol_lab import ALL, Reachability, anyone, expr, in_ns, lab, labels, pod_ip, policy

from kubeguard.net.netpol import NetpolEvaluator


def check(policies: list[dict[str, Any]], expected: Reachability, port: int | str = 80, protocol: str = "TCP") -> None:
    ev = NetpolEvaluator(lab(*policies))
    assert ev.problems == []
    wrong = []
    for src in ALL:
        for dst in ALL:
            if src == dst:
                continue  # loopback is not judged upstream either
            got = ev.evaluate(ev.pod(*src.split("/")), ev.pod(*dst.split("/")), port, protocol).allowed
            if got != expected.table[(src, dst)]:
                wrong.append(f"{src} -> {dst}: got {got}, expected {expected.table[(src, dst)]}")
    assert not wrong, "\n".join(wrong)


X_A = labels(pod="a")
NOT_X = expr("ns", "NotIn", "x")


def test_default_deny_ingress() -> None:
    check([policy("deny-ingress", "x", {}, ingress=[])], Reachability(True).expect_peer(anyone, in_ns("x"), False))


def test_default_deny_all() -> None:
    r = Reachability(True).expect_peer(anyone, in_ns("x"), False).expect_peer(in_ns("x"), anyone, False)
    check([policy("deny-all", "x", {}, ingress=[], egress=[], types=["Ingress", "Egress"])], r)


def test_allow_from_pod_in_server_namespace() -> None:
    p = policy("x-a-allows-x-b", "x", X_A, ingress=[{"from": [{"podSelector": labels(pod="b")}]}])
    check([p], Reachability(True).all_ingress("x/a", False).expect("x/b", "x/a", True))


def test_allow_ingress_to_a_target_under_default_deny() -> None:
    deny = policy("deny-all", "x", {}, ingress=[])
    allow = policy("allow-all-to-a", "x", X_A, ingress=[{"from": [{"podSelector": {}, "namespaceSelector": {}}]}])
    r = Reachability(True).expect_peer(anyone, in_ns("x"), False).all_ingress("x/a", True)
    check([deny, allow], r)


def test_allow_from_pods_in_all_namespaces() -> None:
    p = policy("allow-from-another-ns", "x", X_A, ingress=[{"from": [{"namespaceSelector": {"matchLabels": {}}}]}])
    check([p], Reachability(True))


@pytest.mark.parametrize("ns_selector", [labels(ns="y"), expr("ns", "In", "y"),
                                         labels(**{"kubernetes.io/metadata.name": "y"})])
def test_allow_only_from_a_different_namespace(ns_selector: dict[str, Any]) -> None:
    p = policy("allow-client-a-via-ns-selector", "x", X_A, ingress=[{"from": [{"namespaceSelector": ns_selector}]}])
    r = Reachability(True).expect_peer(in_ns("x"), lambda t: t == "x/a", False)
    check([p], r.expect_peer(in_ns("z"), lambda t: t == "x/a", False))


def test_pod_selector_with_match_expressions() -> None:
    p = policy("x-a-allows-x-b", "x", X_A, ingress=[{"from": [{"podSelector": expr("pod", "In", "b")}]}])
    check([p], Reachability(True).all_ingress("x/a", False).expect("x/b", "x/a", True))


def test_pod_selector_or_namespace_selector() -> None:
    p = policy("allow-ns-or-pod", "x", X_A,
               ingress=[{"from": [{"namespaceSelector": NOT_X}, {"podSelector": labels(pod="b")}]}])
    check([p], Reachability(True).expect("x/c", "x/a", False))


def test_pod_selector_and_namespace_selector() -> None:
    p = policy("allow-ns-and-pod", "x", X_A,
               ingress=[{"from": [{"namespaceSelector": NOT_X, "podSelector": labels(pod="b")}]}])
    r = Reachability(True).all_ingress("x/a", False).expect("y/b", "x/a", True).expect("z/b", "x/a", True)
    check([p], r)


def test_multiple_pod_selectors_and_namespace_selectors() -> None:
    p = policy("allow-ns-y-z-pod-b-c", "x", X_A,
               ingress=[{"from": [{"namespaceSelector": NOT_X, "podSelector": expr("pod", "In", "b", "c")}]}])
    r = Reachability(True).expect_peer(in_ns("x"), lambda t: t == "x/a", False)
    check([p], r.expect("y/a", "x/a", False).expect("z/a", "x/a", False))


def test_any_pod_selectors() -> None:
    p = policy("allow-ns-x-pod-b-c", "x", X_A,
               ingress=[{"from": [{"podSelector": labels(pod="b")}, {"podSelector": labels(pod="c")}]}])
    check([p], Reachability(True).all_ingress("x/a", False).expect("x/b", "x/a", True).expect("x/c", "x/a", True))


def test_only_from_a_pod_in_a_different_namespace() -> None:
    p = policy("allow-ns-y-pod-a", "x", X_A,
               ingress=[{"from": [{"namespaceSelector": labels(ns="y"), "podSelector": labels(pod="a")}]}])
    check([p], Reachability(True).all_ingress("x/a", False).expect("y/a", "x/a", True))


def test_ports() -> None:
    p = policy("allow-ingress-on-port-81", "x", X_A, ingress=[{"from": [{"namespaceSelector": labels(ns="y")}],
                                                              "ports": [{"port": 81}]}])
    check([p], Reachability(True).all_ingress("x/a", False), port=80)
    check([p], Reachability(True).all_ingress("x/a", False).expect_peer(in_ns("y"), lambda t: t == "x/a", True),
          port=81)


def test_multiple_stacked_policies_with_overlapping_pod_selectors() -> None:
    p81 = policy("allow-81-from-y", "x", X_A, ingress=[{"from": [{"namespaceSelector": labels(ns="y")}],
                                                         "ports": [{"port": 81}]}])
    p80 = policy("allow-80-from-z", "x", X_A, ingress=[{"from": [{"namespaceSelector": labels(ns="z")}],
                                                         "ports": [{"port": 80}]}])
    base = Reachability(True).all_ingress("x/a", False)
    check([p81, p80], Reachability(True).all_ingress("x/a", False)
          .expect_peer(in_ns("z"), lambda t: t == "x/a", True), port=80)
    check([p81, p80], base.expect_peer(in_ns("y"), lambda t: t == "x/a", True), port=81)


def test_allow_all() -> None:
    check([policy("allow-all", "x", {}, ingress=[{}])], Reachability(True))


def test_ingress_on_one_named_port() -> None:
    p = policy("allow-81-named", "x", {}, ingress=[{"ports": [{"port": "serve-81-tcp"}]}])
    check([p], Reachability(True), port=81)
    check([p], Reachability(True).expect_peer(anyone, in_ns("x"), False), port=80)


def test_ingress_from_namespace_on_one_named_port() -> None:
    p = policy("allow-y-80-named", "x", {}, ingress=[{"from": [{"namespaceSelector": labels(ns="y")}],
                                                      "ports": [{"port": "serve-80-tcp"}]}])
    r = Reachability(True).expect_peer(anyone, in_ns("x"), False).expect_peer(in_ns("y"), in_ns("x"), True)
    check([p], r, port=80)
    check([p], Reachability(True).expect_peer(anyone, in_ns("x"), False), port=81)


def test_egress_on_one_named_port() -> None:
    p = policy("allow-egress-80-named", "x", X_A, egress=[{"ports": [{"port": "serve-80-tcp"}]}], types=["Egress"])
    check([p], Reachability(True), port=80)
    check([p], Reachability(True).all_egress("x/a", False), port=81)


def test_named_port_does_not_match_another_protocol() -> None:
    p = policy("allow-80-udp-named", "x", X_A, ingress=[{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}])
    check([p], Reachability(True), port=80, protocol="UDP")
    check([p], Reachability(True).all_ingress("x/a", False), port=80, protocol="TCP")


def test_deny_ingress_from_other_namespaces() -> None:
    p = policy("deny-other-ns", "x", {}, ingress=[{"from": [{"podSelector": {}}]}])
    check([p], Reachability(True).expect_peer(anyone, in_ns("x"), False).expect_peer(in_ns("x"), in_ns("x"), True))


def test_deny_egress_based_on_pod_selector() -> None:
    p = policy("deny-egress-x-a", "x", X_A, egress=[], types=["Egress"])
    check([p], Reachability(True).all_egress("x/a", False))


def test_deny_egress_from_all_pods_in_a_namespace() -> None:
    p = policy("deny-egress-ns-x", "x", {}, egress=[], types=["Egress"])
    check([p], Reachability(True).expect_peer(in_ns("x"), anyone, False))


def test_ingress_and_egress_specified_together() -> None:
    p = policy("ingress-egress", "x", X_A, ingress=[{"from": [{"podSelector": labels(pod="b")}]}],
               egress=[{"to": [{"namespaceSelector": labels(ns="y")}]}], types=["Ingress", "Egress"])
    r = Reachability(True).all_ingress("x/a", False).expect("x/b", "x/a", True)
    r.all_egress("x/a", False).expect_peer(lambda f: f == "x/a", in_ns("y"), True)
    check([p], r)


def test_client_side_egress_denial_wins_over_server_allow() -> None:
    deny = policy("deny-egress-x-a", "x", X_A, egress=[], types=["Egress"])
    allow = policy("allow-from-x-a", "y", {}, ingress=[{"from": [{"namespaceSelector": labels(ns="x"),
                                                                  "podSelector": labels(pod="a")}]}])
    r = Reachability(True).all_egress("x/a", False).expect_peer(anyone, in_ns("y"), False)
    check([deny, allow], r)


def test_egress_to_a_pod_in_another_namespace_by_pod_and_namespace_selector() -> None:
    p = policy("allow-to-y-b", "x", X_A, egress=[{"to": [{"namespaceSelector": labels(ns="y"),
                                                          "podSelector": labels(pod="b")}]}],
               types=["Egress"])
    check([p], Reachability(True).all_egress("x/a", False).expect("x/a", "y/b", True))


def test_ingress_any_port_on_a_specific_protocol() -> None:
    p = policy("allow-tcp", "x", X_A, ingress=[{"ports": [{"protocol": "TCP"}]}])
    check([p], Reachability(True), port=80)
    check([p], Reachability(True), port=81)
    check([p], Reachability(True).all_ingress("x/a", False), port=80, protocol="UDP")


def test_multiple_ingress_policies_allow_all_takes_precedence() -> None:
    only81 = policy("allow-81", "x", X_A, ingress=[{"ports": [{"port": 81}]}])
    check([only81], Reachability(True).all_ingress("x/a", False), port=80)
    check([only81, policy("allow-all", "x", X_A, ingress=[{}])], Reachability(True), port=80)


def test_multiple_egress_policies_allow_all_takes_precedence() -> None:
    only81 = policy("allow-81", "x", X_A, egress=[{"ports": [{"port": 81}]}], types=["Egress"])
    check([only81], Reachability(True).all_egress("x/a", False), port=80)
    check([only81, policy("allow-all", "x", X_A, egress=[{}], types=["Egress"])], Reachability(True), port=80)


def test_policies_deleted_stop_enforcing() -> None:
    check([policy("deny-all", "x", {}, ingress=[], egress=[], types=["Ingress", "Egress"])],
          Reachability(True).expect_peer(anyone, in_ns("x"), False).expect_peer(in_ns("x"), anyone, False))
    check([], Reachability(True))


def test_egress_to_server_in_cidr_block() -> None:
    p = policy("allow-to-x-b-cidr", "x", X_A, egress=[{"to": [{"ipBlock": {"cidr": f"{pod_ip('x/b')}/32"}}]}],
               types=["Egress"])
    check([p], Reachability(True).all_egress("x/a", False).expect("x/a", "x/b", True))


def test_egress_cidr_with_except() -> None:
    p = policy("deny-x-b-except", "x", X_A,
               egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"{pod_ip('x/b')}/32"]}}]}],
               types=["Egress"])
    check([p], Reachability(True).expect("x/a", "x/b", False))


def test_ip_in_both_cidr_and_except_allowed_by_another_policy() -> None:
    p1 = policy("except-x-b", "x", X_A,
                egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"{pod_ip('x/b')}/32"]}}]}],
                types=["Egress"])
    p2 = policy("allow-x-b", "x", X_A, egress=[{"to": [{"ipBlock": {"cidr": f"{pod_ip('x/b')}/32"}}]}],
                types=["Egress"])
    check([p1], Reachability(True).expect("x/a", "x/b", False))
    check([p1, p2], Reachability(True))


def test_ingress_and_egress_controlled_independently() -> None:
    egress = policy("x-a-egress-to-x-b", "x", X_A, egress=[{"to": [{"podSelector": labels(pod="b")}]}],
                    types=["Egress"])
    ingress = policy("x-b-deny-ingress", "x", labels(pod="b"), ingress=[], types=["Ingress"])
    check([egress], Reachability(True).all_egress("x/a", False).expect("x/a", "x/b", True))
    check([egress, ingress], Reachability(True).all_egress("x/a", False).all_ingress("x/b", False))


def test_sctp_is_not_tcp() -> None:
    p = policy("allow-sctp-80", "x", X_A, ingress=[{"ports": [{"port": 80, "protocol": "SCTP"}]}])
    check([p], Reachability(True), port=80, protocol="SCTP")
    check([p], Reachability(True).all_ingress("x/a", False), port=80, protocol="TCP")
    check([p], Reachability(True).all_ingress("x/a", False), port=81, protocol="SCTP")


def test_udp_only_policy_refuses_tcp() -> None:
    p = policy("allow-udp-81", "x", X_A, ingress=[{"ports": [{"port": 81, "protocol": "UDP"}]}])
    check([p], Reachability(True), port=81, protocol="UDP")
    check([p], Reachability(True).all_ingress("x/a", False), port=81, protocol="TCP")


def test_end_port_range() -> None:
    p = policy("allow-80-81", "x", X_A, ingress=[{"ports": [{"port": 80, "endPort": 81}]}])
    check([p], Reachability(True), port=80)
    check([p], Reachability(True), port=81)
    narrow = policy("allow-80-80", "x", X_A, ingress=[{"ports": [{"port": 80, "endPort": 80}]}])
    check([narrow], Reachability(True).all_ingress("x/a", False), port=81)


def test_implicit_policy_types_egress_rules_also_isolate_ingress() -> None:
    # no policyTypes and egress rules present: Ingress (always) and Egress both apply
    p = policy("egress-only-rules", "x", X_A, egress=[{"to": [{"namespaceSelector": labels(ns="y")}]}])
    r = Reachability(True).all_ingress("x/a", False).all_egress("x/a", False)
    check([p], r.expect_peer(lambda f: f == "x/a", in_ns("y"), True))


def test_empty_egress_list_without_policy_types_is_ingress_only() -> None:
    check([policy("ingress-only", "x", X_A, ingress=[], egress=[])], Reachability(True).all_ingress("x/a", False))


def test_exists_and_does_not_exist() -> None:
    exists = policy("exists", "x", {"matchExpressions": [{"key": "pod", "operator": "Exists"}]},
                    ingress=[{"from": [{"namespaceSelector": {"matchExpressions": [
                        {"key": "ns", "operator": "DoesNotExist"}]}}]}])
    check([exists], Reachability(True).expect_peer(anyone, in_ns("x"), False))

"""`kubeguard netpol check` on manifests: verdicts, deciding policies, exit codes, bad input named by file:line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubeguard.cluster.loader import load_path
from kubeguard.net.netpol import Endpoint, NetpolEvaluator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "netpol"
SHOP = str(FIXTURES / "shop.yaml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeguard", "netpol", "check", *args], capture_output=True,
                          text=True, timeout=120)


def test_allowed_through_namespace_and_pod_selector_on_a_named_port() -> None:
    done = run(SHOP, "--from", "shop/web", "--to", "db/postgres-0:5432", "-o", "json")
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["allowed"] is True
    assert verdict["deciding"] == ["db/postgres-from-shop"]


def test_denied_names_the_isolating_policies() -> None:
    done = run(SHOP, "--from", "203.0.113.9", "--to", "10.0.2.10:5432")
    assert done.returncode == 1
    assert "denied" in done.stdout and "db/default-deny" in done.stdout and "db/postgres-from-shop" in done.stdout


def test_other_port_and_egress_of_the_database_are_denied() -> None:
    assert run(SHOP, "--from", "shop/web", "--to", "db/postgres-0:5433").returncode == 1
    # db's default deny covers egress: postgres cannot open connections to the web tier
    assert run(SHOP, "--from", "db/postgres-0", "--to", "shop/web:8080").returncode == 1


def test_bad_policy_is_named_by_file_and_line() -> None:
    done = run(str(FIXTURES), "--from", "shop/web", "--to", "db/postgres-0:5432")
    assert done.returncode == 2
    assert f"{FIXTURES / 'bad-policy.yaml'}:12: NetworkPolicy db/broken: operator 'Equals'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_flags_are_one_line_errors() -> None:
    for args, text in ((("--from", "shop/nope", "--to", "db/postgres-0:5432"), "no such pod"),
                       (("--from", "shop/web", "--to", "db/postgres-0"), "expected NS/POD:PORT"),
                       (("--from", "shop/web", "--to", "db/postgres-0:5432/ICMP"), "protocol 'ICMP'"),
                       (("--from", "shop/web", "--to", "db/postgres-0:mysql"), "no container port named 'mysql'")):
        done = run(SHOP, *args)
        assert done.returncode == 2, args
        assert text in done.stderr and "Traceback" not in done.stderr


def test_invalid_fields_are_reported_not_evaluated(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n"
        "  podSelector: {}\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}\n"
        "  - ports:\n    - {port: 90, endPort: 80}\n")
    ev = NetpolEvaluator(load_path(tmp_path))
    assert ev.policies == []
    assert [str(p).split(": NetworkPolicy")[0] for p in ev.problems] == [f"{tmp_path / 'p.yaml'}:8"]


def test_host_network_pods_are_not_selected_and_external_ips_have_no_policy() -> None:
    ev = NetpolEvaluator(load_path(SHOP))
    host = Endpoint(namespace="db", name="node-exporter", host_network=True, ip="192.0.2.1")
    assert ev.evaluate(host, Endpoint.external("198.51.100.1"), 443).allowed
    assert not ev.selecting(host)

"""fd.sip.name and friends compare an address with the addresses a name stands for (Falco's compare_domain)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import cond_engine, matches

from kubeguard.rules.host_names import API_SERVER_NAMES, HOST_NAMES, HostNames, NameSet

CONNECT = {"evt.type": "connect", "fd.typechar": "4", "fd.sip": "10.96.0.1", "fd.cip": "10.200.0.2",
           "fd.lip": "10.200.0.2", "fd.rip": "10.96.0.1", "proc.name": "curl"}


@pytest.fixture(autouse=True)
def names() -> None:
    HOST_NAMES.set_static("kg-api.test", ("10.96.0.1",))
    HOST_NAMES.set_static("kg-pool.test", ("203.0.113.9", "2001:db8::9"))


@pytest.mark.parametrize(("condition", "expected"), [
    ('fd.sip.name = "kg-api.test"', True), ("fd.sip.name = KG-API.test", True), ("fd.sip.name = kg-pool.test", False),
    ("fd.sip.name in (kg-pool.test, kg-api.test)", True), ("fd.sip.name in (kg-pool.test)", False),
    ("fd.sip.name != kg-pool.test", True), ("fd.sip.name != kg-api.test", False),
    ("fd.cip.name = kg-api.test", False), ("fd.rip.name = kg-api.test", True), ("fd.lip.name = kg-api.test", False),
    ("fd.sip.name = kg-unknown.test", False),
])
def test_name_comparisons(tmp_path: Path, condition: str, expected: bool) -> None:
    engine = cond_engine(tmp_path, f"evt.type = connect and {condition}")
    assert matches(engine, CONNECT) is expected


def test_no_address_matches_nothing(tmp_path: Path) -> None:
    """A file event has no server address: neither `=` nor `!=` holds (Falco: only inet sockets compare)."""
    for condition in ("fd.sip.name = kg-api.test", "fd.sip.name != kg-api.test"):
        engine = cond_engine(tmp_path, f"evt.type = open and {condition}")
        assert not matches(engine, {"evt.type": "open", "fd.name": "/etc/passwd"})


def test_recorded_name_is_compared_as_text(tmp_path: Path) -> None:
    engine = cond_engine(tmp_path, "evt.type = connect and fd.sip.name = recorded.example")
    assert matches(engine, {**CONNECT, "fd.sip.name": "recorded.example"})


def test_falco_k8s_api_server_macro_with_the_pods_environment(tmp_path: Path) -> None:
    """Falco's own macro k8s_api_server names the service; the agent maps it to KUBERNETES_SERVICE_HOST."""
    registry = HostNames()
    assert not registry.set_cluster_names({})
    assert registry.set_cluster_names({"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert {name: registry.addresses(name) for name in API_SERVER_NAMES} == {
        name: frozenset({"10.96.0.1"}) for name in API_SERVER_NAMES}
    names = NameSet(["kubernetes.default.svc.cluster.local"], registry)
    assert names.has(None, "10.96.0.1") and not names.has(None, "10.96.0.2") and not names.has(None, None)


def test_background_resolution_through_the_nodes_resolver() -> None:
    """Wanted names are resolved with getaddrinfo ("localhost" is in every /etc/hosts: no query leaves)."""
    registry = HostNames()
    names = NameSet(["localhost"], registry)
    assert not names.has(None, "127.0.0.1")  # not resolved yet: no match
    registry.resolve_wanted()
    assert names.has(None, "127.0.0.1") and not names.has(None, "127.0.0.2")


def test_cluster_names_never_go_to_the_nodes_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr("kubeguard.rules.host_names.resolve", lambda name: asked.append(name) or frozenset())
    registry = HostNames()
    NameSet(["kubernetes.default.svc.cluster.local", "db.shop.svc.cluster.local", "pool.example"], registry)
    registry.resolve_wanted()
    assert asked == ["pool.example"]


def test_engine_says_which_event_types_its_rules_read(tmp_path: Path) -> None:
    """The agent leaves out the datagram probes when no rule reads sendto/recvfrom (a rule without evt.type
    reads every type)."""
    connects = cond_engine(tmp_path, "evt.type = connect and fd.sip.name = kg-api.test")
    assert connects.reads_evt_type("connect") and not connects.reads_evt_type("sendto")
    anything = cond_engine(tmp_path, "fd.sip.name = kg-api.test")
    assert anything.reads_evt_type("sendto")

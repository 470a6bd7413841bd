"""The shared records: severities, Falco priorities, alert JSON round trip, workload fields."""

import json

import pytest

from kubeguard.model import Alert, Event, Finding, Resource, Severity, Workload, falco_priority_name


def test_severity_orders_and_parses() -> None:
    assert Severity.CRITICAL > Severity.HIGH > Severity.MEDIUM > Severity.LOW > Severity.INFO
    assert Severity.parse("High") is Severity.HIGH
    assert Severity.parse("warning") is Severity.MEDIUM  # Falco priority names map too
    with pytest.raises(ValueError, match="unknown severity"):
        Severity.parse("severe")


def test_falco_priority_spelling() -> None:
    assert falco_priority_name("WARNING") == "Warning"
    assert falco_priority_name("info") == "Informational"
    with pytest.raises(ValueError):
        falco_priority_name("loud")


def test_alert_round_trips_through_falco_json() -> None:
    alert = Alert(
        rule="Terminal shell in container",
        priority="Notice",
        output="A shell was spawned",
        output_fields={"k8s.ns.name": "prod", "k8s.pod.name": "web-1", "container.id": "abc123abc123"},
        tags=["container", "shell", "mitre_execution", "T1059"],
    )
    record = json.loads(alert.to_json())
    assert list(record) == ["time", "rule", "priority", "source", "hostname", "output", "output_fields", "tags"]
    back = Alert.from_falco(record)
    assert back.rule == alert.rule and back.priority == "Notice"
    assert back.workload is not None and back.workload.pod == "web-1" and back.workload.namespace == "prod"
    assert back.mitre == ["T1059"]
    assert back.severity is Severity.LOW


def test_event_missing_field_is_na() -> None:
    event = Event({"proc.name": "bash"})
    assert event.field("proc.name") == "bash"
    assert event.field("fd.name") == "<NA>"
    assert event.workload is None


def test_finding_record_has_the_documented_fields() -> None:
    finding = Finding(
        check="privileged", category="workloads", title="Privileged container", severity=Severity.HIGH,
        resource=Resource("Deployment", "web", "prod"), evidence="containers[0].securityContext.privileged",
        remediation="drop privileged", mitre=("T1611",), file="a.yaml", line=3,
        workload=Workload(namespace="prod", pod="web"),
    )
    data = finding.to_dict()
    for key in ("check", "category", "title", "severity", "resource", "file", "line", "evidence",
                "remediation", "mitre"):
        assert key in data
    assert data["resource"] == {"kind": "Deployment", "namespace": "prod", "name": "web"}
    assert data["severity"] == "high"

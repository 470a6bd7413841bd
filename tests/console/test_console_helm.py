"""deploy/helm/kubeguard: rendered by Helm's own engine (helm-python-sdk binds Helm v4's Go SDK), linted, every
object valid against the Kubernetes schema, the console and agents wired together, required Secrets refused when
missing, and our own `kubeguard scan` of the rendered manifests finds nothing high or critical."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import typer.main
import yaml

from kubeguard.cli import app

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "kubeguard"
K8S_VERSION = "1.32.0"
NAMESPACE = "kubeguard"
TYPICAL = {
    "console": {"database": {"existingSecret": "kg-db"}, "setupToken": {"existingSecret": "kg-setup"},
                "tls": {"existingSecret": "kg-tls"}},
    "agent": {"console": {"tokensSecret": "kg-agent-tokens"}},
}


def render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chart's objects as `helm template kg deploy/helm/kubeguard -n kubeguard` would print them."""
    manifests = helm.Chart.load(CHART).render(values or {}, name="kg", namespace=NAMESPACE)
    return [doc for path, text in sorted(manifests.items()) if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


def merged(*extra: dict[str, Any]) -> dict[str, Any]:
    """TYPICAL with `extra` merged in (nested dicts merged, the rest replaced)."""
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for key, value in b.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out
    result = json.loads(json.dumps(TYPICAL))
    for e in extra:
        result = merge(result, e)
    return result


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def options_of(command: str) -> set[str]:
    """Every --flag `kubeguard COMMAND` accepts (from the CLI's own click command)."""
    click_app = typer.main.get_command(app)
    sub = click_app.commands[command]  # type: ignore[attr-defined]
    return {opt for param in sub.params for opt in param.opts if opt.startswith("--")}


def flags(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def test_lint_is_clean() -> None:
    report = helm.lint(CHART, TYPICAL, strict=True, kube_version="v1.32.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    broken = helm.lint(CHART, {"console": {"replicas": "two"}}, strict=True)  # the lint can fail
    assert broken["errors"] or [m for m in broken["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize(("unset", "message"), [
    ({"console": {"database": {"existingSecret": ""}}}, "console.database.existingSecret is required"),
    ({"console": {"setupToken": {"existingSecret": ""}}}, "console.setupToken.existingSecret is required"),
    ({"console": {"tls": {"existingSecret": ""}}}, "console.tls.existingSecret is required"),
    ({"agent": {"console": {"tokensSecret": ""}}}, "agent.console.tokensSecret is required"),
    ({"console": {"enabled": False}}, "agent.console.url is required"),
])
def test_a_missing_required_value_refuses_to_render_with_a_clear_message(unset: dict, message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message.replace(".", r"\.")):
        render(merged(unset))


@pytest.mark.parametrize(("bad", "where"), [
    ({"console": {"replicas": "two"}}, "replicas"),
    ({"console": {"databse": {"existingSecret": "kg-db"}}}, "databse"),  # a typo is not silently ignored
    ({"agent": {"console": {"url": "http://console:8443"}}}, "url"),  # agents ship over HTTPS only
    ({"agent": {"sensor": "kprobe"}}, "sensor"),
    ({"agent": {"policy": {"newWorkloadMode": "learn"}}}, "newWorkloadMode"),
    ({"agent": {"policy": {"protectAfter": -5}}}, "protectAfter"),
])
def test_values_schema_refuses_wrong_types_typos_and_plain_http(bad: dict, where: str) -> None:
    with pytest.raises(helm.HelmError, match=where):
        render(merged(bad))


def test_default_values_refuse_to_render_no_default_secret() -> None:
    with pytest.raises(helm.HelmRenderError, match="is required: create a Secret"):
        render(None)


def test_every_rendered_object_is_valid_and_no_secret_value_ships() -> None:
    for values in (TYPICAL, merged({"console": {"clientCA": {"existingSecret": "kg-client-ca"}},
                                    "agent": {"console": {"clientCertSecret": "kg-agent-client"}}}),
                   merged({"agent": {"console": {"enabled": False}}})):
        docs = render(values)
        assert {d["kind"] for d in docs} == {"Deployment", "Service", "ServiceAccount", "NetworkPolicy", "DaemonSet",
                                             "ClusterRole", "ClusterRoleBinding"}
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}") from exc
            assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_console_deployment_reads_the_users_secrets_with_least_privilege() -> None:
    docs = render(TYPICAL)
    deployment = one(docs, "Deployment", "kg-kubeguard-console")
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and not spec.get("hostPID") and not spec.get("hostNetwork")
    assert spec["automountServiceAccountToken"] is False
    assert one(docs, "ServiceAccount", spec["serviceAccountName"])["automountServiceAccountToken"] is False
    bound = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s["name"] == spec["serviceAccountName"] for s in d["subjects"])]
    assert bound == []
    (env,) = container["env"]
    assert env == {"name": "KUBEGUARD_CONSOLE_DB",
                   "valueFrom": {"secretKeyRef": {"name": "kg-db", "key": "database-url"}}}
    assert not any("postgresql://" in a for a in container["args"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "kg-tls"
    assert volumes["setup"]["secret"] == {"secretName": "kg-setup", "items": [{"key": "setup-token",
                                                                               "path": "setup-token"}],
                                          "defaultMode": 0o400}
    assert flags(container["args"][1:]) <= options_of("console")
    assert "--client-ca" not in flags(container["args"])
    mtls = pod_spec(one(render(merged({"console": {"clientCA": {"existingSecret": "kg-client-ca"}}})),
                        "Deployment", "kg-kubeguard-console"))
    assert "--client-ca=/etc/kubeguard/client-ca/ca.crt" in mtls["containers"][0]["args"]
    assert {v["name"]: v for v in mtls["volumes"]}["client-ca"]["secret"]["secretName"] == "kg-client-ca"
    service = one(docs, "Service", "kg-kubeguard-console")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_agents_ship_to_this_releases_console_with_their_nodes_token() -> None:
    docs = render(TYPICAL)
    daemonset = one(docs, "DaemonSet", "kg-kubeguard-agent")
    spec = pod_spec(daemonset)
    (container,) = spec["containers"]
    args = container["args"]
    assert args[0] == "agent" and flags(args[1:]) <= options_of("agent")
    assert "--console=https://kg-kubeguard-console.kubeguard.svc:443" in args
    # Kubernetes expands $(NODE_NAME) in args from the container's env: each agent reads its own node's key.
    assert "--console-token-file=/etc/kubeguard/agent-tokens/$(NODE_NAME)" in args
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["agent-tokens"]["secret"] == {"secretName": "kg-agent-tokens", "defaultMode": 0o400}
    assert volumes["console-ca"]["secret"]["secretName"] == "kg-tls"  # default: ca.crt of the console's TLS Secret
    assert "--console-spool=/var/lib/kubeguard/console-spool.db" in args  # on the host: survives a restart
    sa = one(docs, "ServiceAccount", spec["serviceAccountName"])
    role = one(docs, "ClusterRole", "kg-kubeguard-agent")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]
    binding = one(docs, "ClusterRoleBinding", "kg-kubeguard-agent")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}]
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == {"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH",
                                              "NET_ADMIN"}

    mtls = pod_spec(one(render(merged({"agent": {"console": {"clientCertSecret": "kg-agent-client",
                                                             "ca": {"existingSecret": "kg-ca"}}}})),
                        "DaemonSet", "kg-kubeguard-agent"))
    assert {"--console-cert=/etc/kubeguard/client-tls/tls.crt",
            "--console-key=/etc/kubeguard/client-tls/tls.key"} <= set(mtls["containers"][0]["args"])
    assert {v["name"]: v for v in mtls["volumes"]}["console-ca"]["secret"]["secretName"] == "kg-ca"

    alone = pod_spec(one(render(merged({"agent": {"console": {"enabled": False, "tokensSecret": ""}}})),
                         "DaemonSet", "kg-kubeguard-agent"))
    assert not [a for a in alone["containers"][0]["args"] if a.startswith("--console")]
    assert "agent-tokens" not in {v["name"] for v in alone["volumes"]}

    external = render(merged({"console": {"enabled": False},
                              "agent": {"console": {"url": "https://console.example:8443",
                                                    "ca": {"existingSecret": "kg-ca"}}}}))
    assert not [d for d in external if d["kind"] == "Deployment"]
    assert "--console=https://console.example:8443" in pod_spec(one(external, "DaemonSet", "kg-kubeguard-agent"))[
        "containers"][0]["args"]


def test_agents_take_the_policy_modes_settings() -> None:
    def agent_args(values: dict[str, Any]) -> list[str]:
        return pod_spec(one(render(values), "DaemonSet", "kg-kubeguard-agent"))["containers"][0]["args"]

    default = agent_args(TYPICAL)
    assert {"--policy-dir=/var/lib/kubeguard/policies", "--quiet-window=3600",
            "--new-workload-mode=discover"} <= set(default)
    assert not [a for a in default if a.startswith("--protect-after")]  # off unless asked for
    chosen = agent_args(merged({"agent": {"policy": {"quietWindow": 1800, "protectAfter": 1000000,
                                                     "newWorkloadMode": "monitor"}}}))
    assert {"--quiet-window=1800", "--protect-after=1000000", "--new-workload-mode=monitor"} <= set(chosen)
    assert flags(chosen[1:]) <= options_of("agent")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector["matchLabels"].items() <= labels.items() and not selector.get("matchExpressions")


def test_networkpolicies_admit_only_agents_and_allowed_namespaces() -> None:
    docs = render(TYPICAL)
    console_labels = one(docs, "Deployment", "kg-kubeguard-console")["spec"]["template"]["metadata"]["labels"]
    agent_labels = one(docs, "DaemonSet", "kg-kubeguard-agent")["spec"]["template"]["metadata"]["labels"]
    policy = one(docs, "NetworkPolicy", "kg-kubeguard-console")["spec"]
    assert selects(policy["podSelector"], console_labels) and not selects(policy["podSelector"], agent_labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    agents, namespaces = rule["from"]
    assert set(agents) == {"podSelector"} and selects(agents["podSelector"], agent_labels)
    assert namespaces == {"namespaceSelector": {"matchLabels": {"kubeguard.io/console-access": "true"}}}
    assert {p["port"] for r in policy["egress"] for p in r["ports"]} == {5432, 53}
    agent_policy = one(docs, "NetworkPolicy", "kg-kubeguard-agent")["spec"]
    assert "ingress" not in agent_policy and "Ingress" in agent_policy["policyTypes"]  # nothing connects to agents
    to_console = agent_policy["egress"][0]
    assert selects(to_console["to"][0]["podSelector"], console_labels) and to_console["ports"][0]["port"] == 8443
    off = render(merged({"console": {"networkPolicy": {"enabled": False}}, "agent": {"networkPolicy":
                                                                                        {"enabled": False}}}))
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]


def test_our_scan_of_the_rendered_chart_finds_nothing_high_or_critical(tmp_path: Path) -> None:
    manifests = helm.Chart.load(CHART).render(TYPICAL, name="kg", namespace=NAMESPACE)
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            (tmp_path / Path(path).name).write_text(text)
    run = subprocess.run([sys.executable, "-m", "kubeguard", "scan", str(tmp_path), "-o", "json"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["problems"] == []
    assert report["summary"]["by_severity"]["critical"] == 0 and report["summary"]["by_severity"]["high"] == 0
    assert not [f for f in report["findings"] if "console" in f["resource"]["name"]]
    suppressed = [f for f in report["findings"] if f.get("suppressed")]
    # The only suppressions are the agent's, justified in the chart itself (kubeguard.io/ignore on the DaemonSet).
    assert {f["check"] for f in suppressed} == {"dangerous-capability", "host-namespace", "run-as-root"}
    assert {(f["resource"]["kind"], f["resource"]["name"]) for f in suppressed} == {("DaemonSet",
                                                                                     "kg-kubeguard-agent")}
    assert all("eBPF" in f["suppressed"] for f in suppressed)

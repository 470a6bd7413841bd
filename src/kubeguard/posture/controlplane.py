"""Control-plane checks: kube-apiserver, etcd and kubelet flags (as `ComponentConfig`s in the Snapshot).

Each rule reads a component's effective flags (the loaders already applied defaults and the
components' precedence) and says what is wrong, with the flag's file and line when known.
A finding's resource is `<component>/<node>` (kind = component name); without a node name it is
`<component>/<file name>` so that two configs of one component stay two findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath

from kubeguard.cluster.snapshot import ComponentConfig, Snapshot, SourceRef
from kubeguard.model import Finding, Resource, Severity
from kubeguard.posture.registry import PostureCheck, evaluator, register

CP = "control plane"
EXPOSED = ("T1133", "MS-TA9005")  # External Remote Services / Exposed sensitive interfaces

APISERVER_ANONYMOUS = PostureCheck(
    "apiserver-anonymous-auth", CP, "API server accepts anonymous requests", Severity.MEDIUM,
    "Start kube-apiserver with --anonymous-auth=false (or limit anonymous access to health endpoints "
    "with an AuthenticationConfiguration).", (*EXPOSED, "T1078.001"))
APISERVER_INSECURE_PORT = PostureCheck(
    "apiserver-insecure-port", CP, "API server serves an unauthenticated insecure port", Severity.CRITICAL,
    "Remove --insecure-port / --insecure-bind-address (or set --insecure-port=0); serve only the TLS port.",
    EXPOSED)
APISERVER_ALWAYS_ALLOW = PostureCheck(
    "apiserver-authz-always-allow", CP, "API server authorizes every request", Severity.CRITICAL,
    "Set --authorization-mode=Node,RBAC and never include AlwaysAllow.", ("T1078", "MS-TA9005"))
APISERVER_WEAK_ADMISSION = PostureCheck(
    "apiserver-weak-admission", CP, "API server admission control is weakened", Severity.MEDIUM,
    "Enable NodeRestriction (--enable-admission-plugins=NodeRestriction,...) and never AlwaysAdmit.",
    ("T1610",))
APISERVER_NO_AUDIT = PostureCheck(
    "apiserver-no-audit", CP, "API server keeps no audit log", Severity.MEDIUM,
    "Set --audit-policy-file plus --audit-log-path (or --audit-webhook-config-file) on kube-apiserver.",
    ("T1562",))
ETCD_NO_CLIENT_AUTH = PostureCheck(
    "etcd-no-client-auth", CP, "etcd does not authenticate its clients", Severity.CRITICAL,
    "Serve etcd over TLS with --cert-file/--key-file, --client-cert-auth=true and --trusted-ca-file; "
    "never --auto-tls.", (*EXPOSED, "T1552"))
KUBELET_ANONYMOUS = PostureCheck(
    "kubelet-anonymous-auth", CP, "Kubelet accepts anonymous requests", Severity.HIGH,
    "Set authentication.anonymous.enabled: false in the KubeletConfiguration (or --anonymous-auth=false).",
    (*EXPOSED, "T1609"))
KUBELET_ALWAYS_ALLOW = PostureCheck(
    "kubelet-authz-always-allow", CP, "Kubelet authorizes every request", Severity.CRITICAL,
    "Set authorization.mode: Webhook (and authentication.webhook.enabled: true) for the kubelet.",
    (*EXPOSED, "T1609"))
KUBELET_READ_ONLY_PORT = PostureCheck(
    "kubelet-read-only-port", CP, "Kubelet serves its unauthenticated read-only port", Severity.MEDIUM,
    "Set readOnlyPort: 0 in the KubeletConfiguration (or --read-only-port=0).", (*EXPOSED, "T1613"))
KUBELET_NO_CERT_ROTATION = PostureCheck(
    "kubelet-no-cert-rotation", CP, "Kubelet does not rotate its certificates", Severity.LOW,
    "Set rotateCertificates: true (and serverTLSBootstrap: true) in the KubeletConfiguration.", ("T1552.004",))

register(APISERVER_ANONYMOUS, APISERVER_INSECURE_PORT, APISERVER_ALWAYS_ALLOW, APISERVER_WEAK_ADMISSION,
         APISERVER_NO_AUDIT, ETCD_NO_CLIENT_AUTH, KUBELET_ANONYMOUS, KUBELET_ALWAYS_ALLOW,
         KUBELET_READ_ONLY_PORT, KUBELET_NO_CERT_ROTATION)


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def _items(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class _Flags:
    """One component's flags plus how to cite them in evidence and findings."""

    def __init__(self, config: ComponentConfig) -> None:
        self.config = config
        name = config.node or (PurePath(config.source.file).name if config.source else "unknown")
        self.resource = Resource(config.component, name)

    def get(self, flag: str) -> str | None:
        return self.config.flags.get(flag)

    def cite(self, flag: str) -> str:
        """`--flag=value` plus where it was set, or that it is the default."""
        value = self.get(flag)
        shown = f"--{flag}={value}" if value is not None else f"--{flag} unset"
        where = self.config.sources.get(flag)
        return f"{shown} ({PurePath(where.file).name}:{where.line})" if where else f"{shown} (default)"

    def finding(self, check: PostureCheck, evidence: str, *flags: str, severity: Severity | None = None) -> Finding:
        source = next((self.config.sources[f] for f in flags if f in self.config.sources), self.config.source)
        return check.finding(self.resource, evidence, severity=severity, source=source or SourceRef(""))


def apiserver_findings(f: _Flags) -> Iterator[Finding]:
    modes = _items(f.get("authorization-mode"))
    if _is_true(f.get("anonymous-auth")):
        explicit = "anonymous-auth" in f.config.sources
        raised = Severity.CRITICAL if "AlwaysAllow" in modes else Severity.HIGH if explicit else None
        yield f.finding(APISERVER_ANONYMOUS, f"anonymous requests are authenticated as system:anonymous: "
                        f"{f.cite('anonymous-auth')}", "anonymous-auth", severity=raised)
    port = f.get("insecure-port")
    if (port not in (None, "0")) or f.get("insecure-bind-address"):
        flag = "insecure-port" if port not in (None, "0") else "insecure-bind-address"
        yield f.finding(APISERVER_INSECURE_PORT, f"plain-HTTP port with no authentication or authorization: "
                        f"{f.cite(flag)}", flag)
    if "AlwaysAllow" in modes:
        yield f.finding(APISERVER_ALWAYS_ALLOW, f"every authenticated request is allowed: "
                        f"{f.cite('authorization-mode')}", "authorization-mode")
    else:
        missing = [m for m in ("Node", "RBAC") if m not in modes]
        if missing:
            severity = Severity.HIGH if "RBAC" in missing else Severity.MEDIUM
            yield f.finding(APISERVER_ALWAYS_ALLOW, f"authorization-mode lacks {' and '.join(missing)}: "
                            f"{f.cite('authorization-mode')}", "authorization-mode", severity=severity)
    enabled = _items(f.get("enable-admission-plugins"))
    disabled = _items(f.get("disable-admission-plugins"))
    if "AlwaysAdmit" in enabled:
        yield f.finding(APISERVER_WEAK_ADMISSION, f"AlwaysAdmit admits every request: "
                        f"{f.cite('enable-admission-plugins')}", "enable-admission-plugins", severity=Severity.HIGH)
    elif "NodeRestriction" not in enabled or "NodeRestriction" in disabled:
        flag = "disable-admission-plugins" if "NodeRestriction" in disabled else "enable-admission-plugins"
        yield f.finding(APISERVER_WEAK_ADMISSION, f"NodeRestriction is not enabled, so a kubelet can modify "
                        f"any node and pod: {f.cite(flag)}", flag)
    if not (f.get("audit-log-path") or f.get("audit-webhook-config-file")) or not f.get("audit-policy-file"):
        missing = [flag for flag in ("audit-policy-file", "audit-log-path") if not f.get(flag)]
        if f.get("audit-webhook-config-file") and "audit-log-path" in missing:
            missing.remove("audit-log-path")
        yield f.finding(APISERVER_NO_AUDIT, f"API requests are not audited: {', '.join(f.cite(m) for m in missing)}",
                        *missing)


def etcd_findings(f: _Flags) -> Iterator[Finding]:
    reasons: list[str] = []
    flags: list[str] = []
    plain = [u for u in _items(f.get("listen-client-urls")) if u.startswith("http://")]
    if plain:
        reasons.append(f"clients connect without TLS: {f.cite('listen-client-urls')}")
        flags.append("listen-client-urls")
    if not _is_true(f.get("client-cert-auth")):
        reasons.append(f"no client certificate required: {f.cite('client-cert-auth')}")
        flags.append("client-cert-auth")
    if _is_true(f.get("auto-tls")):
        reasons.append(f"self-signed certificates: {f.cite('auto-tls')}")
        flags.append("auto-tls")
    elif not plain and not (f.get("cert-file") and f.get("key-file")):
        reasons.append(f"no server certificate: {f.cite('cert-file')}")
        flags.append("cert-file")
    if reasons:
        severity = Severity.HIGH if flags == ["auto-tls"] else None
        yield f.finding(ETCD_NO_CLIENT_AUTH, "anyone reaching etcd reads every Secret: " + "; ".join(reasons),
                        *flags, severity=severity)


def kubelet_findings(f: _Flags) -> Iterator[Finding]:
    always_allow = f.get("authorization-mode") == "AlwaysAllow"
    if _is_true(f.get("anonymous-auth")):
        yield f.finding(KUBELET_ANONYMOUS, f"anyone reaching port 10250 is system:anonymous: "
                        f"{f.cite('anonymous-auth')}" + (" and authorization is AlwaysAllow, so anyone can exec "
                                                         "into every pod of the node" if always_allow else ""),
                        "anonymous-auth", severity=Severity.CRITICAL if always_allow else None)
    if always_allow:
        yield f.finding(KUBELET_ALWAYS_ALLOW, f"every authenticated request to the kubelet API is allowed: "
                        f"{f.cite('authorization-mode')}", "authorization-mode")
    if f.get("read-only-port") not in (None, "0"):
        yield f.finding(KUBELET_READ_ONLY_PORT, f"pod specs and metrics readable without authentication: "
                        f"{f.cite('read-only-port')}", "read-only-port")
    if not _is_true(f.get("rotate-certificates")):
        yield f.finding(KUBELET_NO_CERT_ROTATION, f"client certificate is never renewed: "
                        f"{f.cite('rotate-certificates')}", "rotate-certificates")


_RULES = {"kube-apiserver": apiserver_findings, "etcd": etcd_findings, "kubelet": kubelet_findings}


@evaluator
def evaluate_control_plane(snapshot: Snapshot) -> Iterator[Finding]:
    """Findings of every control-plane check over every component config in the snapshot."""
    for config in snapshot.components:
        rule = _RULES.get(config.component)
        if rule is not None:
            yield from rule(_Flags(config))

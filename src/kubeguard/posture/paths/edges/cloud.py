"""Cloud: keys in container env, workload identities, and the metadata API with the nodes' instance role."""

from __future__ import annotations

from kubeguard.cluster.snapshot import K8sObject, PodTemplate
from kubeguard.net.netpol import NetpolEvaluator
from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.context import BuildContext
from kubeguard.posture.paths.edge_rules import edge_rule
from kubeguard.posture.paths.graph import METADATA_API
from kubeguard.redact import mask_key_id


@edge_rule("cloud", stage=60, kinds=(
    "CLOUD_CREDS", "CLOUD_ACCESS", "METADATA_API", "NODE_ROLE",
))
def cloud_edges(ctx: BuildContext) -> None:
    service_accounts = {(o.namespace, o.name): o for o in ctx.snapshot.of_kind("ServiceAccount")}
    metadata_added = False
    netpol = NetpolEvaluator(ctx.snapshot)
    for info in ctx.pods:
        owner = info.template.owner
        sa_obj = service_accounts.get((owner.namespace, info.template.service_account))
        identity = workload_identity(sa_obj, info.template) if sa_obj is not None else None
        blocker = wl.egress_blocks_metadata(info.template, netpol)
        host_network = info.template.spec.get("hostNetwork") is True
        for ctr, spec in info.containers:
            names = wl.literal_cloud_env(spec)
            if names:
                key_id = wl.literal_aws_key_id(spec)
                label = (f"AWS key {mask_key_id(key_id)}" if key_id
                         else f"cloud keys in env of {owner.namespace}/{owner.name}")
                node = ctx.cloud_identity(f"aws-key:{mask_key_id(key_id)}" if key_id else f"env:{ctr[4:]}", label)
                finding = ctx.index.condition(
                    cond.CLOUD_KEYS, owner,
                    f"container {spec.get('name')} has cloud keys in env {', '.join(names)}",
                    str(spec.get("name")))
                ctx.graph.add_edge(ctr, node, "CLOUD_CREDS", f"env {', '.join(names)} (values masked)", [finding])
            if identity is not None and sa_obj is not None:
                provider, value = identity
                node = ctx.cloud_identity(f"{provider}:{value}", f"{provider} identity {value}")
                finding = ctx.index.condition(cond.WORKLOAD_IDENTITY, sa_obj,
                                               f"{provider} workload identity {value}")
                ctx.graph.add_edge(ctr, node, "CLOUD_CREDS",
                                    f"runs as {ctx.graph.label(info.sa_node)}, bound to {provider} {value}",
                                    [finding])
            if host_network or blocker is None:
                if not metadata_added:
                    ctx.graph.add_node(METADATA_API, "cloud-identity", "cloud metadata API 169.254.169.254")
                    role = ctx.cloud_identity("node-instance-role", "the nodes' cloud instance role")
                    ctx.graph.add_edge(METADATA_API, role, "NODE_ROLE",
                                        "GET /latest/meta-data/iam/security-credentials/ (or GCP/Azure equivalent)")
                    metadata_added = True
                why = "hostNetwork: true" if host_network else "no egress NetworkPolicy blocks 169.254.169.254"
                finding = ctx.index.condition(cond.METADATA_REACHABLE, owner, why)
                ctx.graph.add_edge(ctr, METADATA_API, "METADATA_API", why, [finding])
    if metadata_added:
        for host in [n for n, d in ctx.graph.g.nodes(data=True) if d.get("kind") == "node"]:
            ctx.graph.add_edge(host, METADATA_API, "METADATA_API", "root on the node reaches the metadata API")


def workload_identity(sa: K8sObject, pod: PodTemplate) -> tuple[str, str] | None:
    """(provider, identity) a pod gets from its service account's cloud annotations."""
    annotations = sa.annotations
    if annotations.get(wl.IRSA_ANNOTATION):
        return "aws-role", str(annotations[wl.IRSA_ANNOTATION])
    if annotations.get(wl.GKE_ANNOTATION):
        return "gcp-sa", str(annotations[wl.GKE_ANNOTATION])
    if annotations.get(wl.AZURE_ANNOTATION) and pod.labels.get(wl.AZURE_POD_LABEL) == "true":
        return "azure-identity", str(annotations[wl.AZURE_ANNOTATION])
    return None

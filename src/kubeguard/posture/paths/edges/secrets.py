"""Secrets: service-account token secrets, cloud keys held in Secrets, and the containers that mount them."""

from __future__ import annotations

from kubeguard.posture.paths import conditions as cond
from kubeguard.posture.paths import pod_facts as wl
from kubeguard.posture.paths.context import BuildContext
from kubeguard.posture.paths.edge_rules import edge_rule


@edge_rule("secrets", stage=20, kinds=(
    "SECRET_TOKEN", "CLOUD_CREDS", "CLOUD_ACCESS", "SECRET_MOUNT",
))
def secret_edges(ctx: BuildContext) -> None:
    for secret in ctx.snapshot.of_kind("Secret"):
        node = ctx.graph.add_node(f"secret:{secret.namespace}/{secret.name}", "secret",
                                   f"Secret {secret.namespace}/{secret.name}")
        ctx.secrets_by_ns[secret.namespace].append(node)
        if secret.raw.get("type") == "kubernetes.io/service-account-token":
            sa_name = secret.annotations.get("kubernetes.io/service-account.name")
            if sa_name:
                ctx.graph.add_edge(node, ctx.sa_node(secret.namespace, sa_name), "SECRET_TOKEN",
                                    "service-account token secret")
        keys = wl.secret_cloud_keys(secret)
        if keys:
            identity = ctx.cloud_identity(f"secret:{secret.namespace}/{secret.name}",
                                            f"cloud keys in Secret {secret.namespace}/{secret.name}")
            finding = ctx.index.condition(cond.CLOUD_KEYS, secret,
                                           f"Secret holds cloud credentials in keys {', '.join(keys)}")
            ctx.graph.add_edge(node, identity, "CLOUD_CREDS", f"keys {', '.join(keys)}", [finding])
    for info in ctx.pods:
        for ctr, spec in info.containers:
            for name, how in wl.secret_refs(info.template, spec).items():
                secret_node = f"secret:{info.template.namespace}/{name}"
                if secret_node not in ctx.graph.g:
                    continue
                ctx.graph.add_edge(ctr, secret_node, "SECRET_MOUNT", how)

"""Workload modes for the firewall from the WorkloadPolicies of `kubeguard.policy` (the agent's --policy-dir)."""

from __future__ import annotations

from collections.abc import Callable

from kubeguard.cluster.podmap import PodMap
from kubeguard.model import Workload
from kubeguard.policy.store import PolicyStore


def policy_modes(store: PolicyStore, pods: Callable[[], PodMap]) -> Callable[[Workload], str | None]:
    """A workload's mode from its WorkloadPolicy (None when it has none, or one without a mode)."""

    def mode_of(workload: Workload) -> str | None:
        ref = pods().owners.get(workload.pod_uid)
        policy = store.effective(ref) if ref is not None else None
        return policy.mode if policy is not None else None

    return mode_of

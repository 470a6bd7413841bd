"""The kernel's BPF run-time statistics (BPF_ENABLE_STATS), for the benchmarks that account probe time."""

from __future__ import annotations

from kubeguard.policy.bpfsys import BpfError, bpf

BPF_ENABLE_STATS = 32


def enable_bpf_stats() -> int:
    """An fd keeping BPF run-time statistics on until it is closed (or this process exits)."""
    try:
        return bpf(BPF_ENABLE_STATS, bytes(8), "enable stats")  # enable_stats.type = BPF_STATS_RUN_TIME (0)
    except BpfError as exc:
        raise SystemExit(f"bench: {exc}") from None

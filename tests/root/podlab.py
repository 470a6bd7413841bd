"""The lab's pods for root tests: kubeguard.lab.pods (promoted from here), re-exported under the old name."""

from kubeguard.lab.pods import LOCK_FILE, NODE_NAME, LabError, Pod, PodLab, cgroup1_roots, cgroup2_root

__all__ = ["LOCK_FILE", "NODE_NAME", "LabError", "Pod", "PodLab", "cgroup1_roots", "cgroup2_root"]

"""Falco's container-start rules fire live: each case starts a "container" in a fresh pod the way a runtime does
(a new pid namespace whose pid 1 execs the entrypoint inside the pod's cgroup, with the user and capabilities
the spec gives) and asserts that exactly its rule of the group fires, with the pod's identity.

Falco's container_started macro is an exec by pid 1 of its pid namespace in a container; container.privileged,
container.image.repository and container.mounts (hostPath volumes) come from the pod source, the capabilities
(thread.cap_permitted) from the kernel at that exec. "Launch Disallowed Container" needs the user's own
allowed_containers macro (Falco's default allows every container): the module loads one, as a user would in
falco_rules.local.yaml; "Container Run as Root User" ships disabled and is enabled with Falco's
`-o rules[].enable.rule=NAME`.

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fslab import FalcoLab
from podlab import Pod

pytestmark = pytest.mark.root

ALLOWED_IMAGE = "registry.example/test/app"  # the lab's default image (PodLab.pod)
USER_MACROS = f"""- macro: allowed_containers
  condition: (container.image.repository in ({ALLOWED_IMAGE}))
"""
NOBODY = ("--reuid", "65534", "--regid", "65534", "--clear-groups")  # no capabilities after its exec
ROOT_NO_CAPS = ("--bounding-set", "-all", "--inh-caps", "-all")  # uid 0, every capability dropped
NOBODY_NET_ADMIN = (*NOBODY, "--inh-caps", "+net_admin", "--ambient-caps", "+net_admin")

# (case id, rule, setpriv options of the entrypoint, pod spec)
CASES = [
    ("root-user", "Container Run as Root User", ROOT_NO_CAPS, {}),
    ("privileged", "Launch Privileged Container", NOBODY, {"privileged": True}),
    ("capable", "Launch Excessively Capable Container", NOBODY_NET_ADMIN, {}),
    ("docker-sock-mount", "Launch Sensitive Mount Container", NOBODY,
     {"host_mounts": (("/var/run/docker.sock", "/var/run/docker.sock"),)}),
    ("disallowed-image", "Launch Disallowed Container", NOBODY, {"image": "registry.example/other/unlisted:1.0"}),
]
GROUP = tuple(c[1] for c in CASES)
ENABLE = ("Container Run as Root User",)  # shipped disabled


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    with FalcoLab.running(tmp_path_factory.mktemp("falco-containers"), overrides=USER_MACROS,
                          options=tuple(f"rules[].enable.rule={name}" for name in ENABLE)) as falco:
        yield falco


def start_container(pod: Pod, setpriv: tuple[str, ...]) -> None:
    """pid 1 of a new pid namespace, set up on the host (user, capabilities), joins the pod's cgroups, then
    execs its entrypoint there: that exec is the container's start."""
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--", "setpriv", *setpriv, "--", "sh", "-c",
                             "read go; exec true"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        init = _pid_one(proc.pid)
        for procs in [pod.cgroup_v2, *pod.cgroup_v1.values()]:
            (procs / "cgroup.procs").write_text(str(init))
        _, err = proc.communicate(b"go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")


def _pid_one(unshare_pid: int) -> int:
    """The host pid of the namespace's pid 1 once it runs the waiting shell (unshare's child)."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = children.read_text().split() if children.exists() else []
        if found and Path(f"/proc/{found[0]}/comm").read_text().strip() == "sh":
            return int(found[0])
        time.sleep(0.02)
    raise AssertionError("the new pid namespace's pid 1 did not start")


@pytest.mark.parametrize(("rule", "setpriv", "spec"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_container_start_rule_fires(lab: FalcoLab, rule: str, setpriv: tuple[str, ...], spec: dict) -> None:
    pod = lab.pod("start", **spec)
    start_container(pod, setpriv)
    alert = lab.expect_only(pod, rule, GROUP)
    assert alert["output_fields"].get("proc.vpid", 1) == 1


def test_no_container_start_without_pid_one(lab: FalcoLab) -> None:
    """The same entrypoint run as an ordinary process of the pod (not a namespace's pid 1) starts no container."""
    pod = lab.pod("plain", privileged=True)
    lab.behave(pod, "true")
    lab.expect_only_none(pod, GROUP)

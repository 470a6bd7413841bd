"""Falco's host-only process rules (`not container`) fire live for processes of the node itself: each case runs
the real program on the host (outside every pod) with the agent running Falco's own rule files, and asserts
that exactly its rule of the group fires for that process, with container.id "host"; the same programs in a
pod fire none of them.

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from agentlab import describe
from fslab import PYTHON, FalcoLab

pytestmark = pytest.mark.root

# A host behaviour that fires a rule outside the group: once its alert is in, every alert of the behaviours
# before it is in too (the agent processes events in order).
MEMFD_EXEC = [PYTHON, "-c", "import os; fd = os.memfd_create('kg-host'); "
              "os.write(fd, open('/usr/bin/true', 'rb').read()); os.execve(fd, ['kg-host'], {})"]
SENTINEL_RULE = "Fileless execution via memfd_create"

# (case id, rule, command run on the host)
CASES = [
    ("grpck", "User mgmt binaries", ["grpck", "-r"]),
    ("tcpdump-on-host", "Launch Suspicious Network Tool on Host", ["tcpdump", "--version"]),
    ("nc-exec-on-host", "Netcat/Socat Remote Code Execution on Host", ["nc", "-e", "/usr/bin/true", "127.0.0.1", "9"]),
]
GROUP = tuple(c[1] for c in CASES)
# nc is also a network tool, in Falco too
ALSO = {"Netcat/Socat Remote Code Execution on Host": ("Launch Suspicious Network Tool on Host",)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    with FalcoLab.running(tmp_path_factory.mktemp("falco-host")) as falco:
        yield falco


def run_on_host(cmd: list[str]) -> None:
    """Run `cmd` on the host (its exit status does not matter: the rules read the exec)."""
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)


def host_alerts(lab: FalcoLab, since: int, cmdline: str | None) -> list[dict[str, Any]]:
    """Alerts written after the first `since` ones for a host process with this command line (any, for None;
    alerts carry only their rule's output fields: no pid)."""
    return [a for a in lab.agent.alerts()[since:] if a["output_fields"].get("container.id") == "host"
            and cmdline in (None, a["output_fields"].get("proc.cmdline"))]


def wait_host_alert(lab: FalcoLab, rule: str, since: int, cmdline: str | None, timeout: float = 30.0) -> bool:
    """Whether an alert of `rule` came for the host command line, waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(a["rule"] == rule for a in host_alerts(lab, since, cmdline)):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(("rule", "cmd"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_host_rule_fires(lab: FalcoLab, rule: str, cmd: list[str]) -> None:
    since = len(lab.agent.alerts())
    cmdline = " ".join([cmd[0].rsplit("/", 1)[-1], *cmd[1:]])
    run_on_host(cmd)
    assert wait_host_alert(lab, rule, since, cmdline), (
        f"no '{rule}' alert for '{cmdline}' on the host; alerts for it: {describe(host_alerts(lab, since, cmdline))}")
    run_on_host(MEMFD_EXEC)
    assert wait_host_alert(lab, SENTINEL_RULE, since, None), "sentinel missing"
    fired = {a["rule"] for a in host_alerts(lab, since, cmdline)}
    assert fired & set(GROUP) == {rule, *ALSO.get(rule, ())}


def test_host_rules_silent_in_a_pod(lab: FalcoLab) -> None:
    pod = lab.pod("hostonly")
    lab.behave(pod, "grpck -r; tcpdump --version > /dev/null 2>&1; nc -e /usr/bin/true 127.0.0.1 9; true")
    lab.expect_only_none(pod, GROUP)

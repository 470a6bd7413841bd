"""Falco's file-system rules that Falco ships disabled fire live once enabled with Falco's own override
(`- rule: NAME` / `enabled: true` in a later rules file), as a user would enable them. Same method as
test_falco_files.py: one agent for the module, one pod per case, exactly the case's rule of the group.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fslab import PYTHON, FalcoLab

pytestmark = pytest.mark.root

DISABLED = ("Container Drift Detected (chmod)", "Container Drift Detected (open+create)",
            "Create Hidden Files or Directories", "Read Shell Configuration File", "Modify Container Entrypoint")

CASES = [
    ("drift-chmod", "Container Drift Detected (chmod)", "touch /tmp/kg-drift && chmod +x /tmp/kg-drift"),
    ("drift-open-create", "Container Drift Detected (open+create)",
     f"exec {PYTHON} -c \"import os; os.close(os.open('/tmp/kg-drop', os.O_CREAT | os.O_WRONLY, 0o755))\""),
    ("hidden-dir", "Create Hidden Files or Directories", "mkdir /tmp/.kg-hidden"),
    ("read-shell-config", "Read Shell Configuration File", "cat /etc/profile > /dev/null"),
    ("entrypoint", "Modify Container Entrypoint",
     f"exec {PYTHON} -c \"import os; fd = os.open('/tmp/kg-f', os.O_CREAT | os.O_WRONLY, 0o644); "
     "os.close(os.open(f'/proc/self/fd/{fd}', os.O_WRONLY))\""),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    falco = FalcoLab.start(tmp_path_factory.mktemp("falco-files-disabled"), enable=DISABLED)
    try:
        yield falco
    finally:
        falco.close()


@pytest.mark.parametrize(("rule", "behaviour"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_disabled_rule_fires_once_enabled(lab: FalcoLab, rule: str, behaviour: str) -> None:
    pod = lab.pod("drift")
    lab.behave(pod, behaviour)
    lab.expect_only(pod, rule, DISABLED)

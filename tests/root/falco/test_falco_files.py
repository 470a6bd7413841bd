"""Falco's file-system rules (stable, incubating, sandbox; as Falco ships them) fire live through the agent.

One agent runs Falco's three rule files for the module. Each case performs the behaviour for real in its own
test pod (inside a private mount namespace whose /etc, /usr/bin, /root, /dev ... are overlays, so the writes
happen without touching the host) and asserts that its rule fires for that pod and that no other rule of the
behaviour's group does (a sentinel behaviour fired afterwards bounds the wait). Rules Falco ships disabled
are in test_falco_files_disabled.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fslab import LINK_SENTINEL, PYTHON, FalcoLab

pytestmark = pytest.mark.root

LINKS = ("Create Symlink Over Sensitive Files", "Create Hardlink Over Sensitive Files")
EVIDENCE = ("Clear Log Activities", "Delete or rename shell history")
WRITES = ("Write below binary dir", "Write below monitored dir", "Write below etc", "Write below root",
          "Write below rpm database", "Create files below dev", "Modify binary dirs", "Mkdir binary dirs")
PERSISTENCE = ("Schedule Cron Jobs", "Adding ssh keys to authorized_keys", "Modify Shell Configuration File",
               "Update Package Repository")
SECRETS = ("Directory traversal monitored file read", "Read environment variable from /proc files",
           "Detect release_agent File Container Escapes", "Read sensitive file untrusted", "Read ssh information",
           "Privileged Container Device Access")


def _release_agent() -> str:
    """A cgroup v1 root's release_agent (opened for writing, never written: the escape's first step)."""
    found = sorted(Path("/sys/fs/cgroup").glob("*/release_agent"))
    return str(found[0]) if found else "/sys/fs/cgroup/pids/release_agent"


def _disk_node() -> str:
    """A disk-named block node made in the pod and read (the host's own disk is not readable here, so the node
    points at loop0 or another block device: the pod makes /dev/sdkg, as a privileged container would)."""
    for name in ("loop0", "loop1", "zram0"):
        device = Path("/dev") / name
        if device.is_block_device():
            rdev = device.stat().st_rdev
            return f"mknod /dev/sdkg b {os.major(rdev)} {os.minor(rdev)} && head -c 512 /dev/sdkg > /dev/null"
    return "head -c 512 /dev/sda > /dev/null"


# (case id, group, rule, behaviour)
CASES = [
    ("symlink", LINKS, "Create Symlink Over Sensitive Files", "ln -s /etc/shadow /tmp/kg-shadow"),
    ("hardlink", LINKS, "Create Hardlink Over Sensitive Files", "ln /etc/shadow /etc/kg-shadow-link"),
    ("clear-log", EVIDENCE, "Clear Log Activities", "echo boot >> /var/log/auth.log && : > /var/log/auth.log"),
    ("history-unlink", EVIDENCE, "Delete or rename shell history",
     "echo ls >> /root/.bash_history && rm /root/.bash_history"),
    ("history-unlink-relative", EVIDENCE, "Delete or rename shell history",
     "cd /root && echo ls >> .bash_history && rm .bash_history"),
    ("history-rename", EVIDENCE, "Delete or rename shell history",
     "echo ls >> /root/.bash_history && mv /root/.bash_history /root/kg-history"),
    ("history-truncate", EVIDENCE, "Delete or rename shell history",
     "echo ls >> /root/.bash_history && : > /root/.bash_history"),
    ("write-bin", WRITES, "Write below binary dir", "touch /usr/bin/kg-dropped"),
    ("write-monitored", WRITES, "Write below monitored dir", "touch /boot/kg-dropped"),
    ("write-etc", WRITES, "Write below etc", "touch /etc/kg-conf"),
    ("write-etc-relative", WRITES, "Write below etc", "cd /etc && touch kg-conf"),
    ("write-root", WRITES, "Write below root", "touch /root/kg-file"),
    ("write-rpmdb", WRITES, "Write below rpm database", "mkdir -p /var/lib/rpm && touch /var/lib/rpm/kg-Packages"),
    ("create-dev", WRITES, "Create files below dev", "touch /dev/kg-created"),
    ("rename-bin", WRITES, "Modify binary dirs", "mv /usr/bin/true /usr/bin/kg-true"),
    ("mkdir-bin", WRITES, "Mkdir binary dirs", "mkdir /usr/bin/kg-dir"),
    ("cron", PERSISTENCE, "Schedule Cron Jobs", "mkdir -p /etc/cron.d && touch /etc/cron.d/kg-job"),
    ("authorized-keys", PERSISTENCE, "Adding ssh keys to authorized_keys",
     "mkdir -p /home/kguser/.ssh && echo 'ssh-ed25519 AAAA kg' | tee -a /home/kguser/.ssh/authorized_keys"),
    ("shell-config", PERSISTENCE, "Modify Shell Configuration File",
     "mkdir -p /home/kguser && echo 'alias ls=kg' | tee -a /home/kguser/.bashrc"),
    ("apt-source", PERSISTENCE, "Update Package Repository",
     "echo 'deb http://kg.invalid/ x main' > /tmp/kg.list && mv /tmp/kg.list /etc/apt/sources.list.d/kg.list"),
    ("ssh-dir-listing", SECRETS, "Read ssh information", "mkdir -p /root/.ssh && ls /root/.ssh"),
    ("disk-device", SECRETS, "Privileged Container Device Access", _disk_node()),
    ("traversal", SECRETS, "Directory traversal monitored file read",
     f"exec {PYTHON} -c \"open('/usr/share/doc/../../../etc/hostname').read()\""),
    ("proc-environ", SECRETS, "Read environment variable from /proc files", "cat /proc/self/environ > /dev/null"),
    ("release-agent", SECRETS, "Detect release_agent File Container Escapes",
     f"exec {PYTHON} -c \"import os; os.close(os.open('{_release_agent()}', os.O_WRONLY))\""),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    falco = FalcoLab.start(tmp_path_factory.mktemp("falco-files"))
    try:
        yield falco
    finally:
        falco.close()


@pytest.mark.parametrize(("group", "rule", "behaviour"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_fires_live(lab: FalcoLab, group: tuple[str, ...], rule: str, behaviour: str) -> None:
    pod = lab.pod(rule.split()[0].lower())
    lab.behave(pod, behaviour)
    sentinel = LINK_SENTINEL if group is SECRETS else None
    alert = lab.expect_only(pod, rule, group, *([sentinel] if sentinel else []))
    assert alert["priority"]

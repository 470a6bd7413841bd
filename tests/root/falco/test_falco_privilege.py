"""Falco's process and privilege rules fire live through the agent running Falco's own rule files: each case
performs the behaviour for real in a fresh pod and asserts that exactly its rule of the group fires, with the
pod's identity.

Where a rule keys on a program's name only (nginx, mysqld, sshd, sudoedit, pkexec, npm, login, runc, fluentd,
java) and the machine has no such program, the case runs a stand-in: a symlink with that name to a system
binary (dash, true, cat, script, python; nobody's `login` is made in the pod's overlaid /tmp). The kernel names
the process after the path it was executed by, as it would the real program, so proc.name, proc.pname and
proc.aname are what Falco reads. Everything else is real: ptrace, setns, setuid, bpf(BPF_PROG_LOAD),
userfaultfd, reads of /etc/shadow, a binary dropped in an overlay's upper layer, a real terminal from script(1),
bytes received over TCP.

Each case names its rule: scripts/falco_rules_table.py reads CASES to mark those rules live in docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fslab import PYTHON, FalcoLab

pytestmark = pytest.mark.root

# Stand-ins: name -> the system binary it points at (created once per module under the lab's work dir).
STAND_INS = {"nginx": "/usr/bin/dash", "mysqld": "/usr/bin/dash", "fluentd": "/usr/bin/dash", "npm": "/usr/bin/dash",
             "runc": "/usr/bin/dash", "sshd": "/usr/bin/cat", "sudoedit": "/usr/bin/true", "pkexec": "/usr/bin/true",
             "java": PYTHON}
BIN = "@BIN@"  # replaced by the stand-ins' folder
TTY_BIN = "@TTY_BIN@"  # replaced by a folder holding `runc`: script(1) under the name of the container runtime

PTRACE_ATTACH = (f"sleep 30 > /dev/null 2>&1 & target=$!; {PYTHON} -c \"import ctypes, sys; "
                 "assert ctypes.CDLL(None).ptrace(16, int(sys.argv[1]), 0, 0) == 0\" $target; kill -9 $target")
# PTRACE_ATTACH = 16; PTRACE_TRACEME = 0
PTRACE_TRACEME = f"{PYTHON} -c \"import ctypes; assert ctypes.CDLL(None).ptrace(0, 0, 0, 0) == 0\""
# a real BPF_PROG_LOAD: a two-instruction socket filter (r0 = 0; exit), GPL
BPF_LOAD = (f"{PYTHON} -c \"import ctypes, struct; "
            "code = ctypes.create_string_buffer(struct.pack('<BBhiBBhi', 0xb7, 0, 0, 0, 0x95, 0, 0, 0)); "
            "lic = ctypes.create_string_buffer(b'GPL'); "
            "attr = ctypes.create_string_buffer(struct.pack('<IIQQ', 1, 2, ctypes.addressof(code), "
            "ctypes.addressof(lic)), 128); "
            "assert ctypes.CDLL(None).syscall(321, 5, attr, 128) >= 0\"")
# userfaultfd(UFFD_USER_MODE_ONLY) as uid 1000 (perl's syscall(); 323 = userfaultfd on x86_64)
USERFAULTFD = ("setpriv --reuid 1000 --regid 1000 --clear-groups "
               "perl -e 'syscall(323, 1) >= 0 or die \"userfaultfd: $!\\n\"'")
# a "java" process receives a class file's first bytes over TCP (recv() is the recvfrom syscall)
JAVA_CLASS = (f"{BIN}/java -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
              "c = socket.create_connection(s.getsockname()); a, _ = s.accept(); "
              "a.sendall(bytes.fromhex('cafebabe0000003d')); assert c.recv(64)[:4] == bytes.fromhex('cafebabe')\"")
ENABLE = ("Java Process Class File Download",)  # shipped disabled
# perl's POSIX::setuid is the setuid(2) call (Python's interpreter lives below /root, closed to uid 1000)
SETUID = "setpriv --reuid 1000 --regid 1000 --clear-groups perl -MPOSIX -e 'POSIX::setuid(1000)'"
# a server process running more than 5 s (Falco's proc_is_new is proc.duration <= 5 s) reads /etc/shadow
TRUSTED_READ = f"{BIN}/nginx -c 'sleep 6; read line < /etc/shadow; true'"
KUBECTL_CP = (f"mkdir -p /root/.aws && echo secret > /root/.aws/credentials && "
              f"{BIN}/runc -c 'tar cf - /root/.aws/credentials | cat > /dev/null; true'")
LZMA = f"mkdir -p /tmp/kg-lib && echo x > /tmp/kg-lib/liblzma.so.5.6.1 && {BIN}/sshd /tmp/kg-lib/liblzma.so.5.6.1"

# (case id, rule, behaviour, overlays): the behaviours run with the sensitive folders overlaid
# (fslab.isolated) but for the terminal ones: script(1) needs the real /dev/pts
CASES = [
    ("read-shadow", "Read sensitive file untrusted", "cat /etc/shadow > /dev/null", True),
    ("server-reads-shadow", "Read sensitive file trusted after startup", TRUSTED_READ, True),
    ("shell-from-fluentd", "Run shell untrusted", f"{BIN}/fluentd -c 'sh -c true; true'", True),
    ("system-user-login", "System user interactive",
     "ln -s /usr/bin/true /tmp/login && setpriv --reuid 65534 --regid 65534 --clear-groups /tmp/login", True),
    ("ptrace-attach", "PTRACE attached to process", PTRACE_ATTACH, True),
    ("ptrace-traceme", "PTRACE anti-debug attempt", PTRACE_TRACEME, True),
    ("db-spawns", "DB program spawned process", f"{BIN}/mysqld -c 'ls / > /dev/null; true'", True),
    ("setns", "Change thread namespace", "nsenter --uts=/proc/self/ns/uts true", True),
    ("non-sudo-setuid", "Non sudo setuid", SETUID, True),
    ("curl-download", "Launch Ingress Remote File Copy Tools in Container",
     "curl -s -o /dev/null file:///etc/hostname", True),
    ("kubectl-cp-tar", "Exfiltrating Artifacts via Kubernetes Control Plane", KUBECTL_CP, True),
    ("sshd-liblzma", "Backdoored library loaded into SSHD (CVE-2024-3094)", LZMA, True),
    ("sudoedit-backslash", "Sudo Potential Privilege Escalation", f"{BIN}/sudoedit -s '\\'", True),
    ("drop-and-exec", "Drop and execute new binary in container",
     "cp /usr/bin/true /tmp/kg-dropped && /tmp/kg-dropped", True),
    ("bpf-prog-load", "BPF Program Not Profiled", BPF_LOAD, True),
    ("userfaultfd-unprivileged", "Unprivileged Delegation of Page Faults Handling to a Userspace Process",
     USERFAULTFD, True),
    ("java-class-download", "Java Process Class File Download", JAVA_CLASS, True),
    ("pkexec-no-args", "Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)", f"{BIN}/pkexec", True),
    ("npm-network-tool", "Network Tool Executed During NPM Package Install",
     f"{BIN}/npm -c 'tcpdump --version > /dev/null 2>&1; true'", True),
    ("web-shell", "Web Server Spawned Shell", f"{BIN}/nginx -c 'sh -c true; true'", True),
    ("web-child", "Web Server Spawned Suspicious Child Process", f"{BIN}/nginx -c 'id > /dev/null; true'", True),
    ("terminal-shell", "Terminal shell in container", f"{TTY_BIN}/runc -qc 'true; true' /dev/null", False),
    ("tty-recon", "Basic Interactive Reconnaissance", "script -qc 'exec id' /dev/null", False),
]
GROUP = tuple(c[1] for c in CASES)
# Rules of the group that a case's behaviour also meets, in Falco too
ALSO = {
    # the nginx stand-in reads /etc/shadow: untrusted too (nginx is in no exception list)
    "Read sensitive file trusted after startup": ("Read sensitive file untrusted",),
    # nginx is a protected shell spawner (http_server_binaries)
    "Web Server Spawned Shell": ("Run shell untrusted",),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FalcoLab]:
    with FalcoLab.running(tmp_path_factory.mktemp("falco-privilege"),
                          options=tuple(f"rules[].enable.rule={name}" for name in ENABLE)) as falco:
        (falco.work / "bin").mkdir()
        for name, target in STAND_INS.items():
            (falco.work / "bin" / name).symlink_to(target)
        (falco.work / "tty-bin").mkdir()
        (falco.work / "tty-bin" / "runc").symlink_to("/usr/bin/script")
        yield falco


def stand_ins(lab: FalcoLab, behaviour: str) -> str:
    """The behaviour with the stand-ins' folders filled in."""
    return behaviour.replace(TTY_BIN, str(lab.work / "tty-bin")).replace(BIN, str(lab.work / "bin"))


@pytest.mark.parametrize(("rule", "behaviour", "overlays"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_privilege_rule_fires(lab: FalcoLab, rule: str, behaviour: str, overlays: bool) -> None:
    pod = lab.pod("priv")
    script = stand_ins(lab, behaviour)
    if overlays:
        lab.behave(pod, script)
    else:
        done = pod.run(["sh", "-c", script], timeout=60)
        assert done.returncode == 0, done.stderr
    lab.expect_only(pod, rule, tuple(r for r in GROUP if r not in ALSO.get(rule, ())))


def test_stand_ins_are_symlinks(lab: FalcoLab) -> None:
    """The stand-ins are only names: each resolves to the system binary the module says."""
    for name, target in STAND_INS.items():
        assert (lab.work / "bin" / name).resolve() == Path(target).resolve()


def test_new_server_reading_shadow_is_not_trusted_after_startup(lab: FalcoLab) -> None:
    """Falco's proc_is_new: a server process younger than 5 s reading /etc/shadow is only "untrusted"."""
    pod = lab.pod("newsrv")
    lab.behave(pod, stand_ins(lab, f"{BIN}/nginx -c 'read line < /etc/shadow; true'"))
    lab.expect_only(pod, "Read sensitive file untrusted", GROUP)

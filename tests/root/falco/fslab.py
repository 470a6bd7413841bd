"""Helpers for the Falco file-system rule tests: an agent on Falco's own rule files, and behaviours run in a
pod inside a private mount namespace whose sensitive directories are overlays, so that writes to /etc,
/usr/bin, /root, /dev ... really happen (same paths, same syscalls) without touching the host.

    lab = FalcoLab.start(tmp_dir, enable=["Container Drift Detected (chmod)"])
    pod = lab.pod("drift")
    lab.behave(pod, "chmod +x /tmp/kg-x", overlays=("/tmp",))
    lab.expect_only(pod, "Container Drift Detected (chmod)", group=GROUP, sentinel=...)
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlab import AgentProcess, describe
from podlab import Pod, PodLab
from roothelpers import need_podlab, need_shared_data

PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not a wrapper script
RULE_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
# Directories the behaviours write below; each becomes an overlay (upper layer on a tmpfs) in the private
# mount namespace the behaviour runs in.
OVERLAID = ("/etc", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/root", "/home", "/var/log", "/var/lib", "/dev",
            "/boot", "/tmp")
# A behaviour that fires a rule outside every group under test: once its alert is in, every alert the
# behaviour before it could cause is in too (events of one pod are processed in order).
SENTINEL = ("cat /proc/self/environ > /dev/null", "Read environment variable from /proc files")
LINK_SENTINEL = ("ln -s /etc/shadow /tmp/kg-sentinel", "Create Symlink Over Sensitive Files")


def rule_files() -> list[Path]:
    """Falco's stable, incubating and sandbox rule files from shared/ (the test skips when absent)."""
    folder = need_shared_data("falco-rules")
    return [need_shared_data("falco-rules", name) for name in RULE_FILES if (folder / name).exists()]


def isolated(pod: Pod, script: str, scratch: Path) -> list[str]:
    """`sh -c script` in `pod`, in a private mount namespace where OVERLAID are overlays over the real dirs.

    The mounts are made before the process joins the pod's cgroup (so they are not the pod's events)."""
    steps = [f"mount -t tmpfs kg-scratch {scratch}"]
    for i, folder in enumerate(OVERLAID):
        upper, work = scratch / f"u{i}", scratch / f"w{i}"
        steps.append(f"mkdir -p {upper} {work} && mount -t overlay kg-overlay "
                     f"-o lowerdir={folder},upperdir={upper},workdir={work} {folder}")
    setup = " && ".join(steps)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup + ' && exec "$@"', "kg-iso",
            *pod.wrap(["sh", "-c", script])]


@dataclass
class FalcoLab:
    """One agent running Falco's rule files (plus `enable` overrides) and the pods of a test module."""

    pods: PodLab
    agent: AgentProcess
    pods_file: Path
    work: Path

    @classmethod
    def start(cls, work: Path, enable: tuple[str, ...] = (), options: tuple[str, ...] = (),
              overrides: str = "", env: dict[str, str] | None = None, hosts: str = "") -> FalcoLab:
        """`enable`: rule names switched on by a later rules file (`enabled: true`); `options`: Falco's
        `-o rules[].enable.rule=NAME` selections passed to the agent; `overrides`: more of that later rules
        file (Falco YAML: list appends, macro overrides), as a user tunes Falco's rules; `env`: the agent's
        environment (as its pod's); `hosts`: lines added to the node's /etc/hosts as the agent sees it (a bind
        mount in the agent's own private mount namespace: the host's file is untouched), resolved with
        `--resolve-names`; the agent then also
        runs in a network namespace of its own, so the names its rules look up never leave the machine."""
        files = rule_files()
        need_podlab()
        extra: list[str] = ["--no-default-rules"]
        for path in files:
            extra += ["--rules", str(path)]
        if enable or overrides:  # Falco's own override syntax for rules it ships disabled
            override = work / "enable.yaml"
            work.mkdir(parents=True, exist_ok=True)
            override.write_text(overrides + "".join(f"- rule: {name}\n  enabled: true\n" for name in enable))
            extra += ["--rules", str(override)]
        for option in options:
            extra += ["-o", option]
        prefix: list[str] = []
        if hosts:
            extra.append("--resolve-names")
            work.mkdir(parents=True, exist_ok=True)
            hosts_file = work / "hosts"
            hosts_file.write_text(Path("/etc/hosts").read_text() + hosts)
            prefix = ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
                      f'mount --bind {hosts_file} /etc/hosts && exec "$@"', "kg-agent"]
        pods = PodLab()
        pods_file = pods.write_pods(work / "pods.json")
        try:
            agent = AgentProcess.start(work / "agent", pods_file, extra=extra, env_extra=env, prefix=prefix)
        except BaseException:
            pods.close()
            raise
        return cls(pods, agent, pods_file, work)

    @classmethod
    @contextmanager
    def running(cls, work: Path, **options: Any) -> Iterator[FalcoLab]:
        """`start` (same keywords) as a context: the agent stops and the pods go at its end."""
        lab = cls.start(work, **options)
        try:
            yield lab
        finally:
            lab.close()

    def close(self) -> None:
        try:
            self.agent.stop()
        finally:
            self.pods.close()

    def pod(self, name: str, privileged: bool = False, namespace: str = "default", **spec: Any) -> Pod:
        """A fresh pod (`spec`: more of PodLab.pod's keywords, e.g. image, host_mounts)."""
        pod = self.pods.pod(f"{name}-{secrets.token_hex(2)}", namespace=namespace, privileged=privileged, **spec)
        self.pods.write_pods(self.pods_file)
        return pod

    def behave(self, pod: Pod, script: str) -> subprocess.CompletedProcess[str]:
        """Run `script` (sh) in the pod with overlaid sensitive dirs; fails on a non-zero exit."""
        scratch = self.work / f"scratch-{secrets.token_hex(3)}"
        scratch.mkdir(parents=True)
        done = subprocess.run(isolated(pod, script, scratch), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"behaviour failed ({done.returncode}): {script}\n{done.stderr}"
        return done

    def expect_only(self, pod: Pod, rule: str, group: tuple[str, ...],
                    sentinel: tuple[str, str] = SENTINEL) -> dict[str, Any]:
        """The alert of `rule` for `pod` (with its identity), and no other rule of `group` for it.

        The sentinel behaviour runs after the alert came; once its alert is in, the group check is final."""
        alert = self.agent.wait_alert(rule, pod.container_id, timeout=30)
        assert alert is not None, (f"no '{rule}' alert for {pod.namespace}/{pod.name}; alerts for it: "
                                   f"{describe(self.agent.alerts_for(pod.container_id))}; events in "
                                   f"{self.agent.events_path}")
        script, sentinel_rule = sentinel
        assert sentinel_rule not in group
        self.behave(pod, script)
        assert self.agent.wait_alert(sentinel_rule, pod.container_id, timeout=30) is not None, "sentinel missing"
        fired = {a["rule"] for a in self.agent.alerts_for(pod.container_id)}
        assert fired & set(group) == {rule}, f"{rule}: group rules fired: {sorted(fired & set(group))}"
        fields = alert["output_fields"]
        assert (fields["k8s.ns.name"], fields["k8s.pod.name"], fields["container.id"]) == (
            pod.namespace, pod.name, pod.container_id)
        return alert

    def expect_only_none(self, pod: Pod, group: tuple[str, ...], sentinel: tuple[str, str] = SENTINEL) -> None:
        """No rule of `group` fired for `pod` (final once the sentinel behaviour's alert is in)."""
        script, sentinel_rule = sentinel
        assert sentinel_rule not in group
        self.behave(pod, script)
        assert self.agent.wait_alert(sentinel_rule, pod.container_id, timeout=30) is not None, "sentinel missing"
        fired = {a["rule"] for a in self.agent.alerts_for(pod.container_id)}
        assert not fired & set(group), f"group rules fired: {sorted(fired & set(group))}"

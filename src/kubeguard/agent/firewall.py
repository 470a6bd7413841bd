"""`kubeguard agent --firewall`: the inline L7 firewall (docs/firewall.md) inside the agent.

The agent's pod source names the pods, its policy store (--policy-dir) gives each workload's mode,
and the firewall's alerts go through the agent's outputs like every other alert.
"""

from __future__ import annotations

import socket

from kubeguard.agent.config import AgentConfig
from kubeguard.agent.pipeline import Pipeline
from kubeguard.agent.podsource import PodSource
from kubeguard.cluster.podmap import PodMap
from kubeguard.policy.store import PolicyStore
from kubeguard.response.allowlist import AllowList, load
from kubeguard.response.firewall import Firewall
from kubeguard.response.inject import Injector
from kubeguard.response.inline import InlineFirewall
from kubeguard.response.modes import policy_modes
from kubeguard.response.selection import Selection, parse_selector


def start_firewall(config: AgentConfig, pipeline: Pipeline, source: PodSource,
                   store: PolicyStore | None) -> InlineFirewall:
    """Build and start the firewall (raises a KubeguardError subclass when it cannot start)."""
    allowlist = load(config.firewall_allow_list) if config.firewall_allow_list is not None else AllowList()
    selector = parse_selector(config.firewall_selector) if config.firewall_selector else None
    # no selector and no allow-list: every pod of this node is inline (NeuVector's default)
    selection = Selection([], selector, allowlist, everything=selector is None and not allowlist.policies)

    def pods() -> PodMap:
        source.refresh()
        return source.podmap

    firewall = Firewall(pods(), allowlist, default_mode=config.firewall_mode, on_alert=pipeline.raise_alert,
                        injector=Injector(), fail_closed=config.firewall_fail_closed,
                        hostname=pipeline.hostname,
                        mode_of=None if store is None else policy_modes(store, lambda: source.podmap))
    inline = InlineFirewall(firewall, config.firewall_queue, not config.firewall_fail_closed, selection.ips, pods,
                            pipeline.raise_alert)
    inline.start()
    return inline


def describe(inline: InlineFirewall) -> str:
    """The agent's start line for the firewall."""
    return (f"firewall inline for {len(inline.firewall.selected)} pod addresses on NFQUEUE "
            f"{inline.chains.queue_num} on {socket.gethostname()}")

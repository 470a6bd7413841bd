#!/usr/bin/env bash
# Host set-up for kubeguard's runtime lanes (root only): Debian packages and kernel mounts.
# Idempotent: installs only what is missing, mounts only what is not mounted.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "setup-host: not root; skipping system packages and mounts (runtime tests will skip)" >&2
    exit 0
fi
PKGS=(bpftrace clang bpftool libbpf-dev gcc libc6-dev busybox-static curl nftables iptables iproute2 conntrack redis-server redis-tools tcpdump socat ncat procps psmisc libcap2-bin util-linux openssh-client openssl chromium chromium-driver postgresql tshark)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-host: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || true
mountpoint -q /sys/kernel/debug || mount -t debugfs nodev /sys/kernel/debug || true

"""Regenerate src/kubeguard/scenarios/tesla_miner.pcap (the DPI demo step's capture)."""

from __future__ import annotations

from pathlib import Path

from kubeguard.net.tesla_capture import write_capture

if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "src" / "kubeguard" / "scenarios" / "tesla_miner.pcap"
    write_capture(target)
    print(f"wrote {target}")

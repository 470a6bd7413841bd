"""Enforcement: the inline L7 firewall (NFQUEUE verdicts, iptables chains, TCP resets and HTTP 403s)."""

"""Posture checks over a Snapshot, and the attack graph."""

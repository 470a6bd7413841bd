"""Cluster state: Snapshot from manifests, dumps or a live API; pod identity maps."""

"""kubeguard: Kubernetes security posture, attack paths, runtime detection and deep packet inspection."""

__version__ = "0.1.0"

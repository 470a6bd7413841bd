"""kubeguard: Kubernetes security posture, attack paths, runtime detection and network filtering."""

__version__ = "0.1.0"

"""Detection coverage of the ATT&CK for Containers and Microsoft Kubernetes threat matrices."""

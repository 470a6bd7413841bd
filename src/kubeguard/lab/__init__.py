"""The live lab: pods made of network namespaces and kubelet-style cgroups, the Tesla breach services in them."""

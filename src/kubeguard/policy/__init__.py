"""Workload policies: learned baselines with Discover / Monitor / Protect modes, and their enforcement.

Modules: `model` (the WorkloadPolicy document, validation with file:line, queries), `store` (the
policy directory: hand-written and learned files), `engine` (learning and deviation alerts in the
agent's pipeline), `enforce` + `execguard` + `connectguard` (protect mode in the kernel), `netpol`
(NetworkPolicy export), `commands` (`kubeguard policy ...`).

The small API other lanes use (the inline firewall, the console)::

    from kubeguard.cluster.owners import WorkloadRef, owner_of   # a Pod object -> its workload
    from kubeguard.policy.store import PolicyStore

    store = PolicyStore(Path("/var/lib/kubeguard/policies"))
    store.open()                      # raises PolicyError("file:line: ...") only for an unusable directory
    store.reload()                    # re-read changed files; returns problems (bad files are refused whole)
    policy = store.effective(WorkloadRef("shop", "Deployment", "web"))   # None when unknown
    policy.mode                       # "discover" | "monitor" | "protect"
    policy.process_allowed("/usr/bin/python3")
    policy.file_allowed("/etc/passwd", write=True)
    policy.egress_allowed(peer_ip, peer_workload, port, "TCP")   # peer_workload "ns/Kind/name" or ""
    policy.ingress_allowed(peer_ip, peer_workload, port, "TCP")
    store.write_user(policy)          # what `kubeguard policy apply` / `mode` do (a running agent reloads)

Only discover learns; monitor and protect check. Deny rules win over allow rules, hand-written
rules and modes win over learned ones.
"""

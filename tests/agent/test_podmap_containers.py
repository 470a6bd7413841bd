"""Every container of a pod is in the pods map: its own, its init containers and the ephemeral containers
`kubectl debug` adds (status.ephemeralContainerStatuses). An ephemeral container missing from the map had its
events attributed to no pod, and the enforcer never guarded it: a debug shell in a protected pod ran unjudged."""

from __future__ import annotations

from kubeguard.cluster.podmap import PodMap

POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c7", "controller": True}]},
    "spec": {"containers": [{"name": "app", "image": "shop/web:1"}],
             "initContainers": [{"name": "migrate", "image": "shop/migrate:1"}],
             "ephemeralContainers": [{"name": "debugger-x7", "image": "busybox:1.36",
                                      "securityContext": {"privileged": True}}]},
    "status": {"containerStatuses": [{"name": "app", "containerID": "containerd://" + "a" * 64}],
               "initContainerStatuses": [{"name": "migrate", "containerID": "containerd://" + "b" * 64}],
               "ephemeralContainerStatuses": [{"name": "debugger-x7", "image": "busybox:1.36",
                                               "containerID": "containerd://" + "c" * 64}]},
}


def test_ephemeral_containers_belong_to_their_pod() -> None:
    pods = PodMap.from_pods([POD])
    debug = pods.container("c" * 64)
    assert debug is not None and (debug.pod, debug.container, debug.image) == ("web-1", "debugger-x7", "busybox:1.36")
    assert {pods.by_container_id[c * 64].container for c in "abc"} == {"app", "migrate", "debugger-x7"}
    assert pods.privileged == {"c" * 64}  # from the ephemeral container's own securityContext
    assert pods.owners["u-1"] == pods.owners[debug.pod_uid]  # the enforcer's workload for it


def test_an_ephemeral_container_not_started_yet_has_no_entry() -> None:
    waiting = {**POD, "status": {"ephemeralContainerStatuses": [{"name": "debugger-x7", "state": {"waiting": {}}}]}}
    assert PodMap.from_pods([waiting]).by_container_id == {}

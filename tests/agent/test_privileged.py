"""container.privileged comes from the pods map: the container's spec securityContext.privileged."""

from __future__ import annotations

from kubeguard.agent.podsource import PodSource
from kubeguard.cluster.podmap import PodMap


def pod(name: str, privileged: object, cid: str) -> dict[str, object]:
    container: dict[str, object] = {"name": "app", "image": "img:1"}
    if privileged is not None:
        container["securityContext"] = {"privileged": privileged}
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"containers": [container]},
            "status": {"containerStatuses": [{"name": "app", "containerID": f"containerd://{cid}"}]}}


def test_privileged_from_spec() -> None:
    source = PodSource()
    source.podmap = PodMap.from_pods([pod("a", True, "a" * 64), pod("b", False, "b" * 64), pod("c", None, "c" * 64),
                                      pod("d", "true", "d" * 64)])
    assert [source.privileged(c * 64) for c in "abcd"] == [True, False, False, False]  # "true" (a string) is not
    assert source.privileged("e" * 64) is None

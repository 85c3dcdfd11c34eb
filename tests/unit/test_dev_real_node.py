"""The real node's pieces that need no root: the OCI archive writer, the configurations and the fence.

The node itself (containerd, kubelet, iptables) runs in tests/e2e/test_in_cluster.py.
"""

from __future__ import annotations

import json
import pathlib
import tarfile
import tomllib
from typing import Any

from nodesmith.dev import cluster, nodenet, oci, pki, versions
from nodesmith.dev import node as real_node


def _read(archive: pathlib.Path, member: str) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(member)
        assert handle is not None
        return dict(json.loads(handle.read()))


def test_oci_archive_names_the_image_and_has_one_history_entry_per_layer(tmp_path: pathlib.Path) -> None:
    layers = []
    for index in range(2):
        layer = tmp_path / f"layer{index}"
        layer.mkdir()
        (layer / f"file{index}").write_text(str(index))
        layers.append(layer)
    out = oci.write_archive(
        tmp_path / "image.tar", "localhost/x:1", layers, oci.ImageConfig(entrypoint=("/x",), user="1:1")
    )
    image_index = _read(out, "index.json")
    [descriptor] = image_index["manifests"]
    assert descriptor["annotations"]["io.containerd.image.name"] == "localhost/x:1"
    manifest = _read(out, "blobs/sha256/" + descriptor["digest"].removeprefix("sha256:"))
    config = _read(out, "blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:"))
    assert len(manifest["layers"]) == 2
    # buildah --layers refuses a base whose history lists fewer layers than it has.
    assert len(config["history"]) == 2
    assert config["config"] == {"Env": [oci.DEFAULT_PATH], "Entrypoint": ["/x"], "User": "1:1"}
    assert not (tmp_path / "image.tar.partial").exists()


def test_the_fence_drops_what_leaves_the_bridge_and_lets_pods_reach_only_the_api_server() -> None:
    rules = nodenet.fence_rules()
    egress = rules[nodenet.EGRESS_CHAIN]
    assert egress[0] == ["-o", nodenet.BRIDGE, "-j", "RETURN"]
    assert egress[-1][-2:] == ["-j", "DROP"]
    to_host = rules[nodenet.HOST_CHAIN]
    assert ["-d", nodenet.API_ADDRESS, "-j", "RETURN"] in to_host
    assert to_host[-1][-2:] == ["-j", "DROP"]
    # The CNI bridge plugin refuses a bridge whose first address is not the pods' gateway.
    assert nodenet.API_ADDRESS == nodenet.POD_GATEWAY
    assert nodenet.pod_network_contains(nodenet.API_ADDRESS)


def test_api_server_on_a_real_node_address_publishes_itself_and_authenticates_to_kubelets(
    tmp_path: pathlib.Path,
) -> None:
    local = cluster.LocalCluster("unit", directory=tmp_path, progress=lambda _m: None)
    local._state["api_address"] = nodenet.API_ADDRESS
    ca = pki.Authority.create(tmp_path / "pki")
    flags = local._apiserver_flags({"etcd": 1, "kube-apiserver": 2}, ca)
    assert f"--bind-address={nodenet.API_ADDRESS}" in flags
    assert "--endpoint-reconciler-type=none" not in flags
    assert any(f.startswith("--kubelet-client-certificate=") for f in flags)
    assert "--kubelet-preferred-address-types=InternalIP,Hostname" in flags
    loopback = cluster.LocalCluster("unit2", directory=tmp_path / "b", progress=lambda _m: None)
    assert "--endpoint-reconciler-type=none" in loopback._apiserver_flags(
        {"etcd": 1, "kube-apiserver": 2}, ca
    )


def test_containerd_config_clamps_oom_scores_and_uses_the_nodes_own_paths(tmp_path: pathlib.Path) -> None:
    local = cluster.LocalCluster("unit", directory=tmp_path, progress=lambda _m: None)
    node = real_node.RealNode(local)
    (node.directory / "cni" / "net.d").mkdir(parents=True)
    (node.directory / "config").mkdir(parents=True)
    config = tomllib.loads(node._containerd_config().read_text())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert config["grpc"]["address"] == str(node.socket)
    conflist = json.loads((node.directory / "cni" / "net.d" / "10-nodesmith.conflist").read_text())
    bridge = conflist["plugins"][0]
    assert bridge["bridge"] == nodenet.BRIDGE
    assert bridge["ipMasq"] is False


def test_node_binaries_are_built_from_the_pinned_kubernetes_in_their_own_module() -> None:
    recipe = versions.recipe_for("kubelet")
    assert recipe is versions.recipe_for("kube-proxy")
    assert recipe.version == versions.KUBERNETES
    assert recipe.name != versions.KUBERNETES_RECIPE.name
    assert set(versions.NODE_COMPONENTS) == {"kubelet", "kube-proxy"}
    assert not set(versions.NODE_COMPONENTS) & set(versions.COMPONENTS)

"""Bottlerocket user data: every key nodesmith writes, for every shape, passes Bottlerocket's settings
model (`tests.unit.aws.bottlerocket_model`, derived from Bottlerocket's source, commit named there); the
user's TOML is kept and merged; TOML that does not parse makes the EC2NodeClass not Ready, not a launch
exception."""

from __future__ import annotations

import tomllib

import pytest

from nodesmith_aws import amifamily, validation
from nodesmith_aws.bootstrap import bottlerocket, toml
from tests.unit.aws import bottlerocket_model as model
from tests.unit.aws import userdata_shapes as shapes


@pytest.mark.parametrize("shape", sorted(shapes.SHAPES))
def test_every_setting_nodesmith_writes_passes_bottlerockets_model(shape: str) -> None:
    document = tomllib.loads(shapes.render(shape, "Bottlerocket").user_data)
    written = set(document["settings"]["kubernetes"])
    assert {"cluster-name", "api-server", "cluster-certificate", "node-taints", "max-pods"} <= written
    assert model.problems(document, ours=written) == []


def test_the_model_check_catches_the_old_taint_format() -> None:
    """The oracle can fail: the format nodesmith used to write (no colon) is refused."""
    document = {"settings": {"kubernetes": {"node-taints": {"nodesmith.io/unregistered": ["NoExecute"]}}}}
    assert model.problems(document, ours={"node-taints"}) == [
        "settings.kubernetes.node-taints: ['nodesmith.io/unregistered'] not a valid taint value: 'NoExecute'"
    ]
    assert model.problems(
        {"settings": {"kubernetes": {"eviction-soft": {"memory.free": "1Gi"}}}}, ours={"eviction-soft"}
    )


def test_taints_labels_and_kubelet_settings_in_bottlerocket_names() -> None:
    kubernetes = tomllib.loads(shapes.render("full-kubelet-and-taints", "Bottlerocket").user_data)[
        "settings"
    ]["kubernetes"]
    assert kubernetes["node-taints"] == {
        "gpu": ["true:NoSchedule"],
        "dedicated": [":NoExecute"],
        "cilium.io/agent-not-ready": ["true:NoExecute"],
        "nodesmith.io/unregistered": [":NoExecute"],
    }
    assert kubernetes["node-labels"] == {
        "nodesmith.io/nodepool": "pool",
        "team": "ml",
        "nodesmith.io/capacity-type": "spot",
    }
    assert kubernetes["kube-reserved"] == shapes.FULL_KUBELET["kubeReserved"]
    assert kubernetes["system-reserved"] == shapes.FULL_KUBELET["systemReserved"]
    assert kubernetes["eviction-hard"] == shapes.FULL_KUBELET["evictionHard"]
    assert kubernetes["eviction-soft"] == {"memory.available": "10%"}
    assert kubernetes["eviction-soft-grace-period"] == {"memory.available": "1m30s"}
    assert kubernetes["eviction-max-pod-grace-period"] == 60
    assert kubernetes["image-gc-high-threshold-percent"] == 85
    assert kubernetes["cpu-cfs-quota-enforced"] is True
    assert kubernetes["cluster-dns-ip"] == "10.100.0.53"
    assert kubernetes["max-pods"] == 29


def test_the_users_toml_is_kept_and_nodesmiths_keys_win() -> None:
    user = (
        '[settings.kubernetes]\nmax-pods = 5\ncluster-name = "theirs"\n'
        '[settings.kubernetes.node-labels]\nmine = "yes"\n'
        '[settings.kubernetes.node-taints]\nold = ["x:NoSchedule"]\n'
        "[settings.host-containers.admin]\nenabled = true\n"
        '[[settings.extra]]\nname = "a"\n'
    )
    boot = amifamily.Bootstrap(
        "c", "https://api", shapes.CA, {"team": "ml"}, [], 29, {}, cluster_cidr="10.0.0.0/16"
    )
    document = tomllib.loads(amifamily.user_data("Bottlerocket", boot, user))
    kubernetes = document["settings"]["kubernetes"]
    assert (kubernetes["max-pods"], kubernetes["cluster-name"]) == (29, "c")
    assert kubernetes["node-labels"] == {"mine": "yes", "team": "ml"}
    assert kubernetes["node-taints"] == {"nodesmith.io/unregistered": [":NoExecute"]}
    assert document["settings"]["host-containers"]["admin"]["enabled"] is True
    assert document["settings"]["extra"] == [{"name": "a"}]


def test_raid0_mounts_instance_storage_with_a_bootstrap_command() -> None:
    document = tomllib.loads(shapes.render("raid0-ipv6", "Bottlerocket").user_data)
    command = document["settings"]["bootstrap-commands"]["000-mount-instance-storage"]
    assert command["commands"][0] == ["apiclient", "ephemeral-storage", "init"]
    assert document["settings"]["kubernetes"]["cluster-dns-ip"] == "fd00:10::a"
    assert model.problems(document, ours=set()) == []


def test_toml_writer_round_trips() -> None:
    sample = {"a": {"b-c": [1, 2], "d.e": {"f": 'g"h', "i": True}}, "j": [{"k": 1.5}], "l": "m"}
    assert tomllib.loads(toml.dumps(sample)) == sample


def test_unparseable_user_toml_is_a_validation_failure_naming_the_parse_error() -> None:
    nc = shapes.nodeclass("Bottlerocket", userData="[settings.kubernetes\nmax-pods = ")
    message = validation.problem(nc)
    assert message is not None
    assert message.startswith("userData is not valid TOML: ")
    assert "line 1" in message
    with pytest.raises(amifamily.UserDataError):
        bottlerocket.user_data(
            amifamily.Bootstrap("c", "https://api", shapes.CA, {}, [], 1, {}), "[settings.kubernetes\n"
        )

"""``nodesmith-aws render``: the launch template and user data a node would boot with, offline from
YAML files, the same bytes the launch path sends (and nodeadm accepts them)."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from click.testing import CliRunner

from nodesmith_aws import cli
from nodesmith_aws.testing import nodeadm
from tests.unit.aws import userdata_shapes as shapes

NODECLASS = {
    "apiVersion": "aws.nodesmith.io/v1",
    "kind": "EC2NodeClass",
    "metadata": {"name": "gpu"},
    "spec": {
        "subnetSelectorTerms": [{"tags": {"team": "ml"}}],
        "securityGroupSelectorTerms": [{"id": "sg-0123"}],
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "role": "NodeRole",
        "kubelet": {"maxPods": 58, "evictionHard": {"memory.available": "5%"}},
    },
}
NODEPOOL = {
    "apiVersion": "nodesmith.io/v1",
    "kind": "NodePool",
    "metadata": {"name": "ml"},
    "spec": {
        "template": {
            "metadata": {"labels": {"team": "ml"}},
            "spec": {
                "nodeClassRef": {"group": "aws.nodesmith.io", "kind": "EC2NodeClass", "name": "gpu"},
                "requirements": [{"key": "nodesmith.io/capacity-type", "operator": "In", "values": ["spot"]}],
                "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
            },
        }
    },
}
CLUSTER = [
    "--cluster-name", "prod",
    "--cluster-endpoint", shapes.IPV4.endpoint,
    "--cluster-ca-bundle", shapes.CA,
    "--cluster-cidr", "10.100.0.0/16",
    "--kubernetes-version", "1.31",
]  # fmt: skip


@pytest.fixture
def files(tmp_path: pathlib.Path) -> list[str]:
    (tmp_path / "nc.yaml").write_text(yaml.safe_dump(NODECLASS))
    (tmp_path / "np.yaml").write_text("---\n" + yaml.safe_dump(NODEPOOL))
    return ["--nodeclass", str(tmp_path / "nc.yaml"), "--nodepool", str(tmp_path / "np.yaml")]


def test_render_prints_the_launch_template_and_user_data_nodeadm_accepts(files: list[str]) -> None:
    result = CliRunner().invoke(
        cli.main, ["render", *files, "--instance-type", "g5.xlarge", "--capacity-type", "spot", *CLUSTER]
    )
    assert result.exit_code == 0, result.output
    out = yaml.safe_load(result.output)
    assert out["launchTemplateName"].startswith("nodesmith/")
    data = out["launchTemplateData"]
    assert data["SecurityGroupIds"] == ["sg-0123"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"][0]["DeviceName"] == "/dev/xvda"
    assert "UserData" not in data
    text = out["userData"]
    checked = nodeadm.check(text)
    assert checked.ok, checked.output
    assert "maxPods: 58" in text
    assert "node.kubernetes.io/instance-type=g5.xlarge" in text
    assert "nodesmith.io/capacity-type=spot" in text
    assert "key: nvidia.com/gpu" in text
    assert "cidr: 10.100.0.0/16" in text


def test_user_data_only(files: list[str]) -> None:
    result = CliRunner().invoke(
        cli.main, ["render", *files, "--instance-type", "m5.large", "--user-data-only", *CLUSTER]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("MIME-Version: 1.0\n")


def test_a_missing_cluster_value_is_one_line_naming_it(
    files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_REGION", raising=False)
    result = CliRunner().invoke(
        cli.main, ["render", *files, "--instance-type", "m5.large", "--cluster-name", "prod"]
    )
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith("Error: region: not set")

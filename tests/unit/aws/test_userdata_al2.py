"""AL2 user data (bootstrap.sh) honours reserved resources and eviction thresholds; EC2NodeClass
validation refuses what the schema cannot: user data that does not read, an alias of another family."""

from __future__ import annotations

import email
import shlex
from email.message import Message
from typing import cast

from nodesmith_aws import validation
from tests.unit.aws import userdata_shapes as shapes


def bootstrap_args(user_data: str) -> list[str]:
    parts = cast(list[Message], email.message_from_string(user_data).get_payload())  # multipart: its parts
    script = cast(str, parts[-1].get_payload())  # a leaf part: its text
    line = next(ln for ln in script.splitlines() if ln.startswith("/etc/eks/bootstrap.sh"))
    return shlex.split(line)


def test_al2_passes_reserved_and_eviction_overrides_to_the_kubelet() -> None:
    args = bootstrap_args(shapes.render("full-kubelet-and-taints", "AL2").user_data)
    flags = args[args.index("--kubelet-extra-args") + 1].split(" ")
    assert "--kube-reserved=cpu=200m,ephemeral-storage=1Gi,memory=300Mi" in flags
    assert "--system-reserved=cpu=100m,memory=100Mi" in flags
    assert "--eviction-hard=memory.available<5%,nodefs.available<10%" in flags
    assert "--eviction-soft=memory.available<10%" in flags
    assert "--eviction-soft-grace-period=memory.available=1m30s" in flags
    assert "--eviction-max-pod-grace-period=60" in flags
    assert "--max-pods=29" in flags
    assert (
        "--register-with-taints=gpu=true:NoSchedule,dedicated:NoExecute,"
        "cilium.io/agent-not-ready=true:NoExecute,nodesmith.io/unregistered:NoExecute"
    ) in flags
    assert args[args.index("--dns-cluster-ip") + 1] == "10.100.0.53"
    assert args[1] == "shapes"


def test_al2_ipv6_and_raid0() -> None:
    args = bootstrap_args(shapes.render("raid0-ipv6", "AL2").user_data)
    assert args[args.index("--ip-family") + 1] == "ipv6"
    assert args[args.index("--service-ipv6-cidr") + 1] == "fd00:10::/108"
    assert args[args.index("--local-disks") + 1] == "raid0"


def test_al2_runs_the_users_parts_first() -> None:
    message = email.message_from_string(shapes.render("user-mime-archive", "AL2").user_data)
    parts = cast(list[Message], message.get_payload())  # multipart: its parts
    assert [p.get_content_type() for p in parts] == [
        "text/x-shellscript",
        "application/node.eks.aws",
        "text/x-shellscript",
    ]


def test_an_alias_of_another_family_is_refused_with_a_message() -> None:
    nc = shapes.nodeclass("AL2023", amiSelectorTerms=[{"alias": "bottlerocket@latest"}])
    assert validation.problem(nc) == (
        "amiSelectorTerms alias 'bottlerocket@latest' is an Bottlerocket AMI but amiFamily is 'AL2023'; "
        "drop amiFamily or use an alias of the AL2023 family"
    )
    assert (
        validation.problem(shapes.nodeclass("AL2023", amiSelectorTerms=[{"alias": "al2023@latest"}])) is None
    )


def test_mime_user_data_without_its_boundary_is_refused() -> None:
    broken = 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\nno parts here\n'
    assert validation.problem(shapes.nodeclass("AL2023", userData=broken)) == (
        "userData is a MIME archive without its boundary 'B'"
    )

"""Bad input, fuzzed, against the real API server: hypothesis mutates valid NodePools, NodeClaims,
EC2NodeClasses and KWOKNodeClasses (a field set to junk of any JSON shape, or removed) and sends each to
kube-apiserver with nodesmith's CRDs installed. Every object must be either refused by the CRD schema
with a message naming the field, or accepted and then read by nodesmith's own model without an
exception -- an object the API server stores but nodesmith cannot read would be skipped by the
informers with only a log line, which is what this test exists to rule out.
"""

from __future__ import annotations

import collections
import copy
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodesmith import errors
from nodesmith.api import nodeclaim as api_nodeclaim
from nodesmith.api import nodepool as api_nodepool
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith_aws import nodeclass as aws_nodeclass
from nodesmith_kwok import nodeclass as kwok_nodeclass

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

EXAMPLES = int(os.environ.get("NODESMITH_FUZZ_EXAMPLES", "120"))
PARSE_ERRORS = (errors.ValidationError, ValueError, TypeError, KeyError, AttributeError, OverflowError)

NODEPOOL: dict[str, Any] = {
    "apiVersion": "nodesmith.io/v1",
    "kind": "NodePool",
    "metadata": {"name": "x"},
    "spec": {
        "weight": 10,
        "limits": {"cpu": "100", "memory": "100Gi"},
        "disruption": {
            "consolidationPolicy": "WhenEmptyOrUnderutilized",
            "consolidateAfter": "30s",
            "budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"}],
        },
        "template": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {
                "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
                "requirements": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "example.com/size", "operator": "Gt", "values": ["2"], "minValues": 1},
                ],
                "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
                "startupTaints": [{"key": "boot", "effect": "NoExecute"}],
                "expireAfter": "720h",
                "terminationGracePeriod": "1h",
            },
        },
    },
}
NODECLAIM: dict[str, Any] = {
    "apiVersion": "nodesmith.io/v1",
    "kind": "NodeClaim",
    "metadata": {"name": "x", "labels": {"nodesmith.io/nodepool": "default"}},
    "spec": {
        "nodeClassRef": {"group": "kwok.nodesmith.io", "kind": "KWOKNodeClass", "name": "default"},
        "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
        "expireAfter": "Never",
        "terminationGracePeriod": "30s",
    },
}
EC2NODECLASS: dict[str, Any] = {
    "apiVersion": "aws.nodesmith.io/v1",
    "kind": "EC2NodeClass",
    "metadata": {"name": "x"},
    "spec": {
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "subnetSelectorTerms": [{"tags": {"nodesmith.io/discovery": "c"}}],
        "securityGroupSelectorTerms": [{"tags": {"nodesmith.io/discovery": "c"}}],
        "role": "NodeRole",
        "tags": {"team": "a"},
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
        "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "20Gi", "volumeType": "gp3"}}
        ],
        "kubelet": {
            "maxPods": 110,
            "systemReserved": {"cpu": "100m"},
            "evictionHard": {"memory.available": "5%"},
        },
    },
}
KWOKNODECLASS: dict[str, Any] = {
    "apiVersion": "kwok.nodesmith.io/v1",
    "kind": "KWOKNodeClass",
    "metadata": {"name": "x"},
    "spec": {"insufficientCapacity": [{"instanceType": "c-2x-amd64-linux", "zone": "test-zone-a"}]},
}

Path = tuple[str | int, ...]
VERDICTS: collections.Counter[tuple[str, str]] = collections.Counter()
"""(kind, "refused" | "read") over the whole module: the last test checks the fuzzer reached both."""


def paths(obj: Any, prefix: Path = ()) -> list[Path]:
    """Every field path under ``spec`` (and the template's metadata), leaves and containers alike."""
    found: list[Path] = [prefix] if prefix and prefix[0] == "spec" else []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if prefix or key == "spec":
                found += paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found += paths(value, (*prefix, index))
    return found


JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e9",
            "Never",
            "100%",
            "101%",
            "1h",
            "-1s",
            "24000000000000h",
            "In",
            "Gt",
            "NoSchedule",
            "0 0 * * tue-mon",
            "@daily",
            "al2023@latest",
            "a/b/c",
            "Ki",
            "1.5",
            "foo.example.com/bar",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(obj)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent: Any = obj
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            parent[path[-1]] = draw(JUNK)
        elif isinstance(parent, list):
            del parent[cast(int, path[-1])]  # a step into a list is an index
        else:
            parent.pop(path[-1])
    obj["metadata"] = {**obj["metadata"], "name": f"fuzz-{uuid.uuid4().hex[:10]}"}
    return obj


async def _verdict(
    kube: KubeClient,
    resource: resources.Resource,
    obj: dict[str, Any],
    parse: Callable[[Mapping[str, Any]], object],
) -> None:
    try:
        created = await kube.create(resource, obj)
    except kube_errors.InvalidError as err:
        message = str(err)
        assert message.strip(), "a refusal must say why"
        assert "spec" in message or "metadata" in message, f"the refusal names no field: {message}"
        VERDICTS[resource.kind, "refused"] += 1
        return
    try:
        parse(created)
        VERDICTS[resource.kind, "read"] += 1
    except PARSE_ERRORS as err:
        raise AssertionError(
            f"the API server accepted a {resource.kind} nodesmith cannot read ({type(err).__name__}: {err}):\n"
            f"{created.get('spec')}"
        ) from err
    finally:
        await kube.delete(resource, obj["metadata"]["name"])


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(obj=mutated(NODEPOOL))
async def test_fuzzed_nodepools_are_refused_with_a_reason_or_read(
    kube: KubeClient, obj: dict[str, Any]
) -> None:
    await _verdict(kube, resources.NODEPOOLS, obj, api_nodepool.NodePool.from_dict)


@FUZZ
@given(obj=mutated(NODECLAIM))
async def test_fuzzed_nodeclaims_are_refused_with_a_reason_or_read(
    kube: KubeClient, obj: dict[str, Any]
) -> None:
    await _verdict(kube, resources.NODECLAIMS, obj, api_nodeclaim.NodeClaim.from_dict)


@FUZZ
@given(obj=mutated(EC2NODECLASS))
async def test_fuzzed_ec2nodeclasses_are_refused_with_a_reason_or_read(
    kube: KubeClient, obj: dict[str, Any]
) -> None:
    resource = resources.node_class("aws.nodesmith.io", "EC2NodeClass")
    await _verdict(kube, resource, obj, aws_nodeclass.EC2NodeClass.from_dict)


@FUZZ
@given(obj=mutated(KWOKNODECLASS))
async def test_fuzzed_kwoknodeclasses_are_refused_with_a_reason_or_read(
    kube: KubeClient, obj: dict[str, Any]
) -> None:
    resource = resources.node_class("kwok.nodesmith.io", "KWOKNodeClass")
    await _verdict(kube, resource, obj, kwok_nodeclass.KWOKNodeClass.from_dict)


def test_the_fuzzer_reached_both_verdicts_for_every_kind() -> None:
    """Run with the tests above (it reads what they counted): a fuzzer whose objects were all refused, or
    all accepted, proved half of what it claims."""
    kinds = ("NodePool", "NodeClaim", "EC2NodeClass", "KWOKNodeClass")
    assert {(kind, verdict) for kind in kinds for verdict in ("refused", "read")} <= set(VERDICTS), dict(
        VERDICTS
    )

"""Bad input to the offline commands (`convert`, `simulate --snapshot`, `explain --snapshot`): one clear
line on stderr and exit 1, never a traceback. Hand-picked cases, then hypothesis: raw garbage, and valid
documents with one value somewhere replaced by garbage (what a hand-edited or truncated file looks like)."""

from __future__ import annotations

import copy
import pathlib
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodesmith import cli
from tests.unit.whatif import factories as f

SNAPSHOT_COMMANDS = (
    ["simulate", "--snapshot"],
    ["explain", "pod", "default/p", "--snapshot"],
    ["explain", "node", "c1", "--snapshot"],
)

KARPENTER_MANIFESTS: list[dict[str, Any]] = [
    {
        "apiVersion": "karpenter.sh/v1alpha5",
        "kind": "Provisioner",
        "metadata": {"name": "default"},
        "spec": {
            "requirements": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}],
            "limits": {"resources": {"cpu": "100"}},
            "provider": {"subnetSelector": {"env": "x"}, "securityGroupSelector": {"env": "x"}},
            "kubeletConfiguration": {"maxPods": 20},
            "ttlSecondsAfterEmpty": 30,
        },
    },
    {
        "apiVersion": "karpenter.sh/v1beta1",
        "kind": "NodePool",
        "metadata": {"name": "beta"},
        "spec": {
            "template": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "nodeClassRef": {"name": "default"},
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
                    ],
                    "kubelet": {"maxPods": 10},
                    "taints": [{"key": "k", "effect": "NoSchedule"}],
                },
            },
            "disruption": {"consolidationPolicy": "WhenUnderutilized", "expireAfter": "720h"},
        },
    },
    {
        "apiVersion": "karpenter.k8s.aws/v1beta1",
        "kind": "EC2NodeClass",
        "metadata": {"name": "default"},
        "spec": {
            "amiFamily": "AL2",
            "role": "r",
            "subnetSelectorTerms": [{"tags": {"env": "x"}}],
            "securityGroupSelectorTerms": [{"tags": {"env": "x"}}],
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": "20Gi"}}],
        },
    },
    {
        "apiVersion": "karpenter.k8s.aws/v1alpha1",
        "kind": "AWSNodeTemplate",
        "metadata": {"name": "old"},
        "spec": {"subnetSelector": {"env": "x"}, "securityGroupSelector": {"env": "x"}, "amiFamily": "AL2"},
    },
]


def snapshot_document() -> dict[str, Any]:
    b = f.Builder()
    b.pool("default", families=["c"])
    b.machine("c1", "c-4")
    b.pod("c1", "1", name="p")
    b.pod(None, "1", name="pending")
    return b.document()


def invoke(args: Sequence[str], text: str | bytes) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "input.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return CliRunner().invoke(cli.main, [*args, str(path)])


def assert_refused_cleanly_or_accepted(result: Result) -> None:
    """Exit 0, or exit 1 with one ``Error: ...`` line on stderr; anything else (a traceback, an internal
    error) fails with the exception attached."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1 and result.stderr:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("Error: "), result.stderr


# -- hand-picked ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{{{", id="broken-yaml"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param("[1, 2]", id="a-list"),
        pytest.param("a: 1", id="a-mapping-that-is-not-an-object"),
        pytest.param("apiVersion: nodesmith.io/v1alpha1\nkind: Snapshot\nobjects: 5\n", id="wrong-shape"),
    ],
)
@pytest.mark.parametrize("command", SNAPSHOT_COMMANDS, ids=lambda c: c[0] + "-" + c[1])
def test_a_corrupt_snapshot_is_refused_in_one_line(command: list[str], text: str | bytes) -> None:
    result = invoke(command, text)
    assert result.exit_code == 1
    assert_refused_cleanly_or_accepted(result)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{{{", "not valid YAML", id="broken-yaml"),
        pytest.param(b"\xff\xfe\x00garbage", "not UTF-8", id="not-utf8"),
        pytest.param("[1, 2]", "expected Kubernetes objects", id="a-list"),
        pytest.param("a: 1", "not a Kubernetes object", id="no-kind"),
        pytest.param(
            "apiVersion: karpenter.sh/v1\nkind: NodePool\nmetadata: {name: x}\nspec: 5\n",
            "NodePool/x",
            id="spec-is-a-number",
        ),
        pytest.param(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {name: p}\n"
            "spec: {requirements: 7}\n",
            "Provisioner/p",
            id="requirements-is-a-number",
        ),
    ],
)
def test_garbage_for_convert_is_refused_in_one_line_naming_the_object(
    text: str | bytes, expected: str
) -> None:
    result = invoke(["convert"], text)
    assert result.exit_code == 1
    assert_refused_cleanly_or_accepted(result)
    assert expected in result.stderr


# -- generated --------------------------------------------------------------------------------------------

GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def value_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside a JSON-like document (the document itself excluded)."""
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = iter(enumerate(value))
    else:
        return
    for key, child in items:
        yield (*path, key)
        yield from value_paths(child, (*path, key))


def replaced(document: Any, path: tuple[Any, ...], garbage: Any) -> Any:
    out = copy.deepcopy(document)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = garbage
    return out


SNAPSHOT = snapshot_document()
SNAPSHOT_PATHS = list(value_paths(SNAPSHOT))
MANIFEST_PATHS = [(i, *p) for i, m in enumerate(KARPENTER_MANIFESTS) for p in value_paths(m)]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_raw_garbage_never_gets_a_traceback(text: str | bytes) -> None:
    for command in (["convert"], *SNAPSHOT_COMMANDS):
        assert_refused_cleanly_or_accepted(invoke(command, text))


@FUZZ
@given(path=st.sampled_from(SNAPSHOT_PATHS), garbage=GARBAGE, command=st.sampled_from(SNAPSHOT_COMMANDS))
def test_a_snapshot_with_one_value_replaced_by_garbage_never_gets_a_traceback(
    path: tuple[Any, ...], garbage: Any, command: list[str]
) -> None:
    assert_refused_cleanly_or_accepted(invoke(command, yaml.safe_dump(replaced(SNAPSHOT, path, garbage))))


@FUZZ
@given(path=st.sampled_from(MANIFEST_PATHS), garbage=GARBAGE)
def test_a_karpenter_manifest_with_one_value_replaced_by_garbage_never_gets_a_traceback(
    path: tuple[Any, ...], garbage: Any
) -> None:
    docs = replaced(KARPENTER_MANIFESTS, path, garbage)
    assert_refused_cleanly_or_accepted(invoke(["convert"], yaml.safe_dump_all(docs)))

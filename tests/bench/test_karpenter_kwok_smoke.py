"""The pure parts of the provisioning benchmark's Karpenter run: its NodePool, CRD loading, metrics.

Nothing here needs Karpenter's binary, Go or a control plane; the run itself is only ever started by
``bench_provisioning.py --with-karpenter``."""

from __future__ import annotations

import pathlib

import bench_provisioning
import karpenter_kwok
import pytest

from nodesmith.dev import karpenter


@pytest.mark.bench
def test_karpenter_nodepool_is_nodesmiths_with_its_own_group_class_and_kwok_labels() -> None:
    ours = bench_provisioning.bench_nodepool("bench-x", "one-per-node")
    theirs = karpenter_kwok.nodepool(ours)
    assert theirs["apiVersion"] == "karpenter.sh/v1"
    assert theirs["metadata"] == ours["metadata"]
    assert theirs["spec"]["template"]["metadata"] == {"labels": {"e2e/pool": "bench-x"}}
    template = theirs["spec"]["template"]["spec"]
    assert template["nodeClassRef"] == {
        "group": "karpenter.kwok.sh",
        "kind": "KWOKNodeClass",
        "name": "bench-x",
    }
    assert {(r["key"], tuple(r["values"])) for r in template["requirements"]} == {
        ("kubernetes.io/arch", ("amd64",)),
        ("kubernetes.io/os", ("linux",)),
        ("karpenter.kwok.sh/instance-cpu", ("4",)),
        ("karpenter.kwok.sh/instance-family", ("c",)),
    }
    assert ours["spec"]["template"]["spec"]["requirements"][2]["key"] == "kwok.nodesmith.io/instance-cpu", (
        "translating must not change nodesmith's own NodePool"
    )


@pytest.mark.bench
def test_karpenter_nodepool_keeps_limits_and_disruption() -> None:
    ours = bench_provisioning.bench_nodepool("bench-y", "basic")
    ours["spec"]["limits"] = {"cpu": "1000"}
    ours["spec"]["disruption"] = {"consolidateAfter": "30s"}
    theirs = karpenter_kwok.nodepool(ours)
    assert theirs["spec"]["limits"] == {"cpu": "1000"}
    assert theirs["spec"]["disruption"] == {"consolidateAfter": "30s"}
    assert [r["key"] for r in theirs["spec"]["template"]["spec"]["requirements"]] == [
        "kubernetes.io/arch",
        "kubernetes.io/os",
    ]


@pytest.mark.bench
def test_load_crds_keeps_only_custom_resource_definitions(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "crds.yaml"
    path.write_text(
        "---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.b}\n"
        "---\n# a comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    )
    assert [c["metadata"]["name"] for c in karpenter_kwok.load_crds([path])] == ["a.b"]


@pytest.mark.bench
def test_summary_reads_the_provisioners_solve_and_the_providers_creates_only() -> None:
    text = "\n".join(
        [
            'karpenter_scheduler_scheduling_duration_seconds_sum{controller="provisioner"} 1.5',
            'karpenter_scheduler_scheduling_duration_seconds_count{controller="provisioner"} 3',
            'karpenter_scheduler_scheduling_duration_seconds_sum{controller="disruption"} 9',
            'karpenter_cloudprovider_duration_seconds_sum{controller="nodeclaim.lifecycle",method="Create",provider="kwok"} 0.25',
            'karpenter_cloudprovider_duration_seconds_sum{controller="nodeclaim.lifecycle",method="Get",provider="kwok"} 7',
        ]
    )
    assert karpenter_kwok.summary(text) == {"solve_seconds": 1.5, "batches": 3.0, "create_seconds": 0.25}


@pytest.mark.bench
def test_build_module_pins_the_release_and_builds_the_kwok_package() -> None:
    files = karpenter.build_module_files()
    assert f"require sigs.k8s.io/karpenter {karpenter.VERSION}" in files["go.mod"]
    assert '_ "sigs.k8s.io/karpenter/kwok"' in files["tools.go"]
    assert karpenter.cached_binary().name == "karpenter-kwok"
    assert karpenter.cached_binary().parent.name == f"karpenter-kwok-{karpenter.VERSION}"

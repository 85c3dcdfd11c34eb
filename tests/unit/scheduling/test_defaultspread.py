"""Cluster-default topology spread (`nodesmith.scheduling.defaultspread`), with kube-scheduler's defaulting
(PodTopologySpread ``defaultConstraints`` / ``defaultingType`` System|List, ``helper.DefaultSelector``) and
Karpenter's ``defaultconstraints.go`` as the specification: defaults apply only to pods with no
constraints of their own, carry a selector deduced from Services and the controller, and none is applied
when nothing can be deduced."""

from __future__ import annotations

from typing import Any

import pytest

from nodesmith import errors
from nodesmith.scheduling import defaultspread
from nodesmith.testing import factories

from .conftest import ZONE, Solve, pods_per_zone

ZONAL = {"topologyKey": ZONE, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}


def config(args: dict[str, Any] | None = None, **profile: Any) -> dict[str, Any]:
    plugin_config = [] if args is None else [{"name": "PodTopologySpread", "args": args}]
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [{"schedulerName": "default-scheduler", "pluginConfig": plugin_config, **profile}],
    }


def rs_pod(name: str, labels: dict[str, str], rs: str = "web-abc") -> dict[str, Any]:
    pod = factories.pod(name, labels=labels, cpu="1")
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "controller": True, "uid": "u1"}
    ]
    return pod


# -- the configuration ------------------------------------------------------------------------------------


def test_without_plugin_args_the_system_defaults_apply() -> None:
    spread = defaultspread.from_scheduler_config(config())
    assert spread.constraints == defaultspread.SYSTEM_DEFAULTS
    assert [(c["topologyKey"], c["maxSkew"]) for c in spread.constraints] == [
        ("kubernetes.io/hostname", 3),
        (ZONE, 5),
    ]


def test_list_defaulting_uses_exactly_the_listed_constraints() -> None:
    spread = defaultspread.from_scheduler_config(
        config({"defaultingType": "List", "defaultConstraints": [ZONAL]})
    )
    assert spread.constraints == (ZONAL,)
    assert defaultspread.from_scheduler_config(config({"defaultingType": "List"})).constraints == ()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"defaultingType": "System", "defaultConstraints": [ZONAL]}, "defaultConstraints"),
        (
            {"defaultingType": "List", "defaultConstraints": [{**ZONAL, "labelSelector": {}}]},
            "labelSelector",
        ),
        ({"defaultingType": "List", "defaultConstraints": [{**ZONAL, "maxSkew": 0}]}, "maxSkew"),
        ({"defaultingType": "Sometimes"}, "defaultingType"),
    ],
)
def test_what_kube_scheduler_refuses_is_refused(args: dict[str, Any], field: str) -> None:
    with pytest.raises(defaultspread.SchedulerConfigError, match=field):
        defaultspread.from_scheduler_config(config(args))


def test_a_disabled_plugin_gives_no_defaults() -> None:
    disabled = config(plugins={"multiPoint": {"disabled": [{"name": "PodTopologySpread"}]}})
    assert defaultspread.from_scheduler_config(disabled).constraints == ()


def test_the_default_schedulers_profile_is_read() -> None:
    doc = config({"defaultingType": "List", "defaultConstraints": [ZONAL]})
    doc["profiles"].insert(0, {"schedulerName": "other", "pluginConfig": []})
    assert defaultspread.from_scheduler_config(doc).constraints == (ZONAL,)


# -- the selector ---------------------------------------------------------------------------------------


def test_selectors_of_services_selecting_the_pod_are_merged() -> None:
    pod = factories.pod("p", labels={"app": "web", "tier": "front"})
    selector = defaultspread.default_selector(
        pod, [{"app": "web"}, {"tier": "front"}, {"app": "db"}, None], None
    )
    assert selector == {"matchLabels": {"app": "web", "tier": "front"}}


def test_the_controllers_selector_is_added_as_requirements() -> None:
    pod = rs_pod("p", {"app": "web", "pod-template-hash": "abc"})
    owner = {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}
    assert defaultspread.default_selector(pod, [], owner) == {
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["web"]},
            {"key": "pod-template-hash", "operator": "In", "values": ["abc"]},
        ]
    }


def test_nothing_deduced_means_no_selector() -> None:
    assert defaultspread.default_selector(factories.pod("p", labels={"app": "web"}), [None], None) is None


def test_only_pods_without_constraints_and_with_a_selector_get_defaults() -> None:
    spread = defaultspread.DefaultSpread((ZONAL,))
    own = factories.pod(
        "own", labels={"app": "web"}, spread=[factories.spread(ZONE, {"app": "web"}, max_skew=2)]
    )
    lonely = factories.pod("lonely", labels={"app": "batch"})
    served = factories.pod("served", labels={"app": "web"})
    out = defaultspread.apply([own, lonely, served], spread, {"default": [{"app": "web"}]}, {})
    assert out[0] is own
    assert out[1] is lonely
    assert out[2]["spec"]["topologySpreadConstraints"] == [
        {**ZONAL, "labelSelector": {"matchLabels": {"app": "web"}}}
    ]
    assert "topologySpreadConstraints" not in served["spec"], "the pod itself is not changed"


def test_a_replicaset_pod_takes_its_selector_from_the_replicaset() -> None:
    spread = defaultspread.DefaultSpread((ZONAL,))
    owners = {("default", "apps/v1", "ReplicaSet", "web-abc"): {"matchLabels": {"app": "web"}}}
    (out,) = defaultspread.apply([rs_pod("p", {"app": "web"})], spread, {}, owners)
    assert out["spec"]["topologySpreadConstraints"][0]["labelSelector"] == {
        "matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]
    }


# -- in the simulation ----------------------------------------------------------------------------------


def test_defaulted_pods_are_spread_by_the_simulation(solve: Solve) -> None:
    pods = [rs_pod(f"p{i}", {"app": "web"}) for i in range(6)]
    owners = {("default", "apps/v1", "ReplicaSet", "web-abc"): {"matchLabels": {"app": "web"}}}
    packed = solve(pods)
    assert len(pods_per_zone(packed)) == 1, "without defaults the pods share one zone"
    defaulted = defaultspread.apply(pods, defaultspread.DefaultSpread((ZONAL,)), {}, owners)
    assert pods_per_zone(solve(defaulted)) == {"test-zone-1": 2, "test-zone-2": 2, "test-zone-3": 2}


# -- wiring: the cluster state's Services and controllers, and the daemon's setting --------------------------


def test_the_provisioning_input_defaults_pods_from_the_states_services_and_replicasets() -> None:
    from nodesmith.kube import resources
    from nodesmith.state import ClusterState, simulation
    from nodesmith.testing.clock import FakeClock

    state = ClusterState(clock=FakeClock().now)
    state.on_upsert(
        resources.SERVICES,
        {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}},
    )
    state.on_upsert(
        resources.REPLICASETS,
        {
            "metadata": {"name": "web-abc", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}},
        },
    )
    pod = rs_pod("p", {"app": "web", "pod-template-hash": "abc"})
    spread = defaultspread.DefaultSpread((ZONAL,))
    sim_input = simulation.scheduling_input(state.snapshot(), [pod], {}, spread)
    (defaulted,) = sim_input.pods
    assert isinstance(defaulted, dict)
    (constraint,) = defaulted["spec"]["topologySpreadConstraints"]
    assert constraint["labelSelector"] == {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "app", "operator": "In", "values": ["web"]},
            {"key": "pod-template-hash", "operator": "In", "values": ["abc"]},
        ],
    }
    assert simulation.scheduling_input(state.snapshot(), [pod], {}).pods == [pod], "unset: no defaults"


def test_the_scheduler_config_setting_is_read_and_checked_at_start(tmp_path: Any) -> None:
    import yaml

    from nodesmith.runtime.settings import Settings

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(config({"defaultingType": "List", "defaultConstraints": [ZONAL]})))
    settings = Settings.from_raw(provider="kwok", scheduler_config=str(good))
    spread = settings.default_spread()
    assert spread is not None
    assert spread.constraints == (ZONAL,)
    assert Settings.from_raw(provider="kwok").default_spread() is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config({"defaultingType": "System", "defaultConstraints": [ZONAL]})))
    with pytest.raises(errors.ConfigError, match="must be empty when defaultingType is System"):
        Settings.from_raw(provider="kwok", scheduler_config=str(bad))

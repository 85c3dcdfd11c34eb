"""The local control plane behaves like a real cluster: kwok nodes turn Ready, KCM creates pods, the
scheduler binds them, kwok runs them, unschedulable pods say so, and CRD schemas validate server-side.

Runs against the session's `control_plane` fixture (tests/conftest.py) with the official
`kubernetes` client; nothing is mocked. Every test works in its own namespace and on its own
node so tests (and e2e scenarios sharing the session) do not see each other's objects.
"""

from __future__ import annotations

import collections.abc
import copy
import pathlib
import time
import typing
import uuid

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
NODEPOOL_CRD = REPO / "deploy" / "crds" / "nodesmith.io_nodepools.yaml"
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
TIMEOUT = 60.0

T = typing.TypeVar("T")


def eventually(probe: collections.abc.Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


# The kubernetes package leaves this factory unannotated; name what it returns so strict checking holds.
_new_client: collections.abc.Callable[..., client.ApiClient] = config.new_client_from_config


@pytest.fixture(scope="module")
def api(kubeconfig: pathlib.Path) -> collections.abc.Iterator[client.ApiClient]:
    with _new_client(config_file=str(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> collections.abc.Iterator[str]:
    name = f"it-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def make_node(core: client.CoreV1Api, *, annotated: bool = True) -> str:
    name = f"kwok-{uuid.uuid4().hex[:8]}"
    node = client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name,
            annotations=KWOK_ANNOTATION if annotated else {},
            labels={"type": "kwok", "kubernetes.io/hostname": name, "nodesmith.io/test-node": name},
        ),
        status=client.V1NodeStatus(
            capacity={"cpu": "4", "memory": "16Gi", "pods": "110"},
            allocatable={"cpu": "4", "memory": "16Gi", "pods": "110"},
        ),
    )
    core.create_node(node)
    return name


def condition(obj: typing.Any, kind: str) -> typing.Any:
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


@pytest.fixture
def ready_node(core: client.CoreV1Api) -> collections.abc.Iterator[str]:
    name = make_node(core)
    eventually(lambda: _is_ready(core, name), f"node {name} Ready")
    yield name
    core.delete_node(name)


def _is_ready(core: client.CoreV1Api, name: str) -> bool:
    ready = condition(core.read_node_status(name), "Ready")
    return ready is not None and ready.status == "True"


def test_node_with_kwok_annotation_becomes_ready(core: client.CoreV1Api) -> None:
    annotated, plain = make_node(core), make_node(core, annotated=False)
    try:
        eventually(lambda: _is_ready(core, annotated), f"node {annotated} Ready")
        node: typing.Any = core.read_node(annotated)
        assert node.status.allocatable["cpu"] == "4"
        assert any(a.type == "InternalIP" for a in node.status.addresses)
        # kwok manages only annotated nodes: the other one never gets a Ready=True condition.
        assert not _is_ready(core, plain)
    finally:
        core.delete_node(annotated)
        core.delete_node(plain)


def test_deployment_pods_are_created_bound_and_running(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str, ready_node: str
) -> None:
    labels = {"app": "web"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    node_selector={"nodesmith.io/test-node": ready_node},
                    containers=[
                        client.V1Container(
                            name="web",
                            image="registry.invalid/web:1",
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "100m", "memory": "64Mi"}
                            ),
                        )
                    ],
                ),
            ),
        ),
    )
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment)

    def running_pods() -> list[typing.Any] | None:
        pods: list[typing.Any] = core.list_namespaced_pod(namespace, label_selector="app=web").items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if len(running) == 3 else None

    pods = eventually(running_pods, "3 Running pods")
    for pod in pods:
        # created by kube-controller-manager (deployment -> replicaset -> pod) ...
        assert [o.kind for o in pod.metadata.owner_references] == ["ReplicaSet"]
        # ... bound by kube-scheduler ...
        assert pod.spec.node_name == ready_node
        assert condition(pod, "PodScheduled").status == "True"
        # ... and run by kwok.
        assert condition(pod, "Ready").status == "True"
        assert pod.status.pod_ip

    def deployment_ready() -> bool:
        status: typing.Any = client.AppsV1Api(api).read_namespaced_deployment_status("web", namespace).status
        return (status.ready_replicas or 0) == 3

    eventually(deployment_ready, "deployment status readyReplicas=3")


def test_pod_that_fits_no_node_is_unschedulable(core: client.CoreV1Api, namespace: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="nowhere"),
        spec=client.V1PodSpec(
            node_selector={"nodesmith.io/test-node": "no-such-node"},
            containers=[client.V1Container(name="c", image="registry.invalid/c:1")],
        ),
    )
    core.create_namespaced_pod(namespace, pod)

    def unschedulable() -> typing.Any:
        scheduled = condition(core.read_namespaced_pod_status("nowhere", namespace), "PodScheduled")
        return scheduled if scheduled is not None and scheduled.status == "False" else None

    scheduled = eventually(unschedulable, "PodScheduled=False")
    assert scheduled.reason == "Unschedulable"
    bound: typing.Any = core.read_namespaced_pod("nowhere", namespace)
    assert bound.spec.node_name is None


def valid_nodepool(name: str) -> dict[str, typing.Any]:
    """A NodePool in the Karpenter v1 shape nodesmith's API keeps (shared/DESIGN.md, "API")."""
    return {
        "apiVersion": "nodesmith.io/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": {
                        "group": "kwok.nodesmith.io",
                        "kind": "KWOKNodeClass",
                        "name": "default",
                    },
                    "requirements": [
                        {"key": "nodesmith.io/capacity-type", "operator": "In", "values": ["on-demand"]}
                    ],
                }
            },
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "30s"},
        },
    }


@pytest.fixture
def nodepool_crd(api: client.ApiClient) -> dict[str, typing.Any]:
    if not NODEPOOL_CRD.exists():
        pytest.fail(
            f"{NODEPOOL_CRD.relative_to(REPO)} does not exist (the NodePool CRD is generated into deploy/)"
        )
    crd = yaml.safe_load(NODEPOOL_CRD.read_text())
    extensions = client.ApiextensionsV1Api(api)
    name = crd["metadata"]["name"]
    try:
        extensions.create_custom_resource_definition(crd)
    except ApiException as err:
        if err.status != 409:  # already installed earlier in this session
            raise

    def established() -> bool:
        current: typing.Any = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in current.status.conditions or [])

    eventually(established, f"CRD {name} Established")
    return typing.cast(dict[str, typing.Any], crd)


def test_nodepool_crd_installs_and_rejects_an_invalid_nodepool(
    api: client.ApiClient, nodepool_crd: dict[str, typing.Any]
) -> None:
    custom = client.CustomObjectsApi(api)
    name = f"it-{uuid.uuid4().hex[:8]}"

    def create(body: dict[str, typing.Any]) -> typing.Any:
        # fieldValidation=Strict is what kubectl sends: unknown or duplicate fields are errors too.
        return custom.create_cluster_custom_object(
            "nodesmith.io", "v1", "nodepools", body, field_validation="Strict", dry_run="All"
        )

    assert create(valid_nodepool(name))["metadata"]["name"] == name

    bad_operator = copy.deepcopy(valid_nodepool(name))
    bad_operator["spec"]["template"]["spec"]["requirements"][0]["operator"] = "Sometimes"
    with pytest.raises(ApiException) as rejected:
        create(bad_operator)
    assert rejected.value.status == 422, rejected.value.body
    assert "operator" in str(rejected.value.body)

    # A CEL rule (x-kubernetes-validations), evaluated by the API server: `In` needs values.
    no_values = copy.deepcopy(valid_nodepool(name))
    no_values["spec"]["template"]["spec"]["requirements"][0]["values"] = []
    with pytest.raises(ApiException) as cel:
        create(no_values)
    assert cel.value.status == 422, cel.value.body

    unknown_field = copy.deepcopy(valid_nodepool(name))
    unknown_field["spec"]["flavour"] = "vanilla"
    with pytest.raises(ApiException) as strict:
        create(unknown_field)
    assert "flavour" in str(strict.value.body)

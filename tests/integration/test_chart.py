"""The Helm chart (deploy/charts/nodesmith): ``helm lint``, ``helm template`` for both providers, every
rendered object accepted by the real API server (server-side apply, ``dryRun=All``), and the chart's RBAC
proven sufficient by running ``nodesmith run --provider kwok`` with nothing but the chart's ServiceAccount
token, ClusterRole and leader-election Role while it provisions (and removes) the inflate scenario.

helm is built from source through the Go module proxy on first use (`nodesmith.dev.helm`).
"""

from __future__ import annotations

import collections.abc
import contextlib
import pathlib
import re
import subprocess
import uuid
from typing import Any

import pytest
import yaml

from nodesmith.api import labels
from nodesmith.dev import helm
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.runtime import crds
from nodesmith.runtime.settings import Settings
from nodesmith.state import informer, simulation
from nodesmith.testing import e2e
from nodesmith_price_overlay import source

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "charts" / "nodesmith"
KUBE_VERSION = "1.34.2"

SERVICES = resources.Resource("", "v1", "services", "Service", namespaced=True)
CLUSTER_ROLES = resources.Resource(
    "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
)
CLUSTER_ROLE_BINDINGS = resources.Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
ROLES = resources.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", namespaced=True)
ROLE_BINDINGS = resources.Resource(
    "rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", namespaced=True
)
KINDS = {
    r.kind: r
    for r in (
        e2e.SERVICE_ACCOUNTS,
        SERVICES,
        CLUSTER_ROLES,
        CLUSTER_ROLE_BINDINGS,
        ROLES,
        ROLE_BINDINGS,
        e2e.DEPLOYMENTS,
        resources.PDBS,
        resources.CRDS,
    )
}
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def test_chart_crds_are_the_generated_crds() -> None:
    generated = sorted(p.name for p in (ROOT / "deploy" / "crds").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (ROOT / "deploy" / "crds" / name).read_text(), (
            f"deploy/charts/nodesmith/crds/{name} is stale: cp deploy/crds/*.yaml deploy/charts/nodesmith/crds/"
        )


@pytest.fixture(scope="module")
def helm_bin() -> pathlib.Path:
    return helm.ensure_helm()


def helm_run(helm_bin: pathlib.Path, *args: str) -> str:
    result = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def render(helm_bin: pathlib.Path, release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    out = helm_run(
        helm_bin, "template", release, str(CHART), "--namespace", namespace, "--include-crds",
        "--kube-version", KUBE_VERSION, *values,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


KWOK_VALUES = ("-f", str(CHART / "values-kwok.yaml"))
AWS_VALUES = (
    "--set", "settings.clusterName=demo",
    "--set", "settings.aws.interruptionQueue=nodesmith-demo",
    "--set", "settings.aws.region=eu-west-1",
    "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/nodesmith",
    "--set", "settings.featureGates.SpotToSpotConsolidation=true",
    "--set", "serviceMonitor.enabled=true",
)  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("values", [(), KWOK_VALUES], ids=["aws", "kwok"])
def test_helm_lint(helm_bin: pathlib.Path, values: tuple[str, ...]) -> None:
    extra = values or ("--set", "settings.clusterName=demo")
    helm_run(helm_bin, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *extra)


@pytest.mark.integration
def test_helm_template_aws(helm_bin: pathlib.Path) -> None:
    objects = render(helm_bin, "nodesmith", "nodesmith", *AWS_VALUES)
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    deployment = by_kind[("Deployment", "nodesmith")]
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["priorityClassName"] == "system-cluster-critical"
    (container,) = spec["containers"]
    assert container["args"] == ["--provider=aws"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NODESMITH_CLUSTER_NAME"] == "demo"
    assert env["NODESMITH_AWS_INTERRUPTION_QUEUE"] == "nodesmith-demo"
    assert env["NODESMITH_AWS_REGION"] == "eu-west-1"
    assert env["NODESMITH_FEATURE_GATES"] == "SpotToSpotConsolidation=true"
    assert env["NODESMITH_LEADER_ELECTION"] == "true"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {c["topologyKey"] for c in spec["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert spec["securityContext"]["runAsNonRoot"] is True
    sa = by_kind[("ServiceAccount", "nodesmith")]
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/nodesmith"
    }
    assert ("PodDisruptionBudget", "nodesmith") in by_kind
    assert ("ServiceMonitor", "nodesmith") in by_kind
    rules = by_kind[("ClusterRole", "nodesmith")]["rules"]
    assert {
        "apiGroups": ["aws.nodesmith.io"],
        "resources": ["ec2nodeclasses"],
        "verbs": ["get", "list", "watch", "patch"],  # patch: the termination finalizer
    } in rules
    # Only the kwok provider creates Node objects itself.
    assert not any("nodes" in r["resources"] and "create" in r["verbs"] for r in rules)
    crd_names = {o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"}
    assert crd_names == {
        "nodepools.nodesmith.io",
        "nodeclaims.nodesmith.io",
        "ec2nodeclasses.aws.nodesmith.io",
        "kwoknodeclasses.kwok.nodesmith.io",
    }


@pytest.mark.integration
def test_price_overlays_render_into_a_mounted_configmap_the_plugin_can_read(
    helm_bin: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    overlay = {
        "apiVersion": "karpenter.sh/v1alpha1",
        "kind": "NodeOverlay",
        "metadata": {"name": "savings-plan"},
        "spec": {
            "weight": 10,
            "requirements": [{"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]}],
            "priceAdjustment": "-30%",
        },
    }
    values = tmp_path / "overlays.yaml"
    values.write_text(yaml.safe_dump({"priceOverlays": [overlay]}))
    objects = render(helm_bin, "nodesmith", "nodesmith", *AWS_VALUES, "-f", str(values))
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    configmap = by_kind[("ConfigMap", "nodesmith-price-overlays")]
    (parsed,) = source.parse_documents(
        list(yaml.safe_load_all(configmap["data"]["overlays.yaml"])), "configmap"
    )
    assert (parsed.name, parsed.weight, parsed.price is not None) == ("savings-plan", 10, True)
    spec = by_kind[("Deployment", "nodesmith")]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["NODESMITH_PRICE_OVERLAYS"] == mounts["price-overlays"] + "/overlays.yaml"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["price-overlays"]["configMap"]["name"] == "nodesmith-price-overlays"

    plain = render(helm_bin, "nodesmith", "nodesmith", *AWS_VALUES)
    assert not [o for o in plain if o["kind"] == "ConfigMap"]
    (plain_container,) = next(o for o in plain if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "NODESMITH_PRICE_OVERLAYS" not in {e["name"] for e in plain_container["env"]}


@pytest.mark.integration
def test_the_scheduler_config_renders_into_a_mounted_file_the_daemon_reads(
    helm_bin: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    zonal = {"maxSkew": 1, "topologyKey": labels.LABEL_ZONE, "whenUnsatisfiable": "DoNotSchedule"}
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [
            {
                "schedulerName": "default-scheduler",
                "pluginConfig": [
                    {
                        "name": "PodTopologySpread",
                        "args": {"defaultingType": "List", "defaultConstraints": [zonal]},
                    }
                ],
            }
        ],
    }
    values = tmp_path / "scheduler.yaml"
    values.write_text(yaml.safe_dump({"schedulerConfig": config}))
    objects = render(helm_bin, "nodesmith", "nodesmith", *AWS_VALUES, "-f", str(values))
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    configmap = by_kind[("ConfigMap", "nodesmith-scheduler-config")]
    spec = by_kind[("Deployment", "nodesmith")]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    mounted = pathlib.PurePosixPath(env["NODESMITH_SCHEDULER_CONFIG"])
    assert str(mounted.parent) == mounts["scheduler-config"]
    assert {v["name"]: v for v in spec["volumes"]}["scheduler-config"]["configMap"]["name"] == (
        "nodesmith-scheduler-config"
    )
    # the file as the pod would see it, read by the daemon's own settings
    local = tmp_path / mounted.name
    local.write_text(configmap["data"][mounted.name])
    spread = Settings.from_raw(provider="kwok", scheduler_config=str(local)).default_spread()
    assert spread is not None
    assert [dict(c) for c in spread.constraints] == [zonal]

    plain = render(helm_bin, "nodesmith", "nodesmith", *AWS_VALUES)
    (plain_container,) = next(o for o in plain if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "NODESMITH_SCHEDULER_CONFIG" not in {e["name"] for e in plain_container["env"]}


@pytest.mark.integration
def test_eks_example_values_render(helm_bin: pathlib.Path) -> None:
    helm_run(
        helm_bin,
        "lint",
        "--strict",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(CHART / "values-eks.example.yaml"),
    )
    objects = render(helm_bin, "nodesmith", "kube-system", "-f", str(CHART / "values-eks.example.yaml"))
    (sa,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]


@pytest.mark.integration
def test_helm_template_requires_a_known_provider_and_a_cluster_name(helm_bin: pathlib.Path) -> None:
    for values in (("--set", "provider=gce", "--set", "settings.clusterName=x"), ()):
        result = subprocess.run(
            [str(helm_bin), "template", "x", str(CHART), "--kube-version", KUBE_VERSION, *values],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0


# -- against the real API server ------------------------------------------------------------------


@pytest.fixture
async def admin(kubeconfig: pathlib.Path) -> KubeClient:
    client = await KubeClient.connect(kubeconfig)
    await crds.install(client, crds.all_crds())
    return client


@pytest.fixture
async def release(admin: KubeClient) -> collections.abc.AsyncIterator[str]:
    """A unique release name, also used as its namespace (created for real, deleted afterwards)."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    await e2e.create_namespace(admin, name)
    yield name
    for kind, obj_name in ((CLUSTER_ROLES, name), (CLUSTER_ROLE_BINDINGS, name)):
        with contextlib.suppress(kube_errors.NotFoundError):
            await admin.delete(kind, obj_name)
    with contextlib.suppress(kube_errors.NotFoundError):
        await admin.delete(resources.NAMESPACES, name)


async def apply(kube: KubeClient, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    resource = KINDS[obj["kind"]]
    namespace = obj["metadata"].get("namespace") if resource.namespaced else None
    params = {"fieldManager": "nodesmith-chart-test", "force": "true"} | (
        {"dryRun": "All"} if dry_run else {}
    )
    return await kube.request(
        "PATCH",
        resource.path(namespace, obj["metadata"]["name"]),
        params=params,
        body=obj,
        content_type="application/apply-patch+yaml",
    )


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.parametrize("values", [AWS_VALUES, KWOK_VALUES], ids=["aws", "kwok"])
async def test_rendered_manifests_pass_server_side_dry_run(
    helm_bin: pathlib.Path, admin: KubeClient, release: str, values: tuple[str, ...]
) -> None:
    objects = render(helm_bin, release, release, *values)
    checked = []
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":  # the Prometheus operator's CRD is not in this cluster
            continue
        answer = await apply(admin, obj, dry_run=True)
        assert answer["kind"] == obj["kind"]
        checked.append(obj["kind"])
    assert {
        "Deployment",
        "ClusterRole",
        "Role",
        "PodDisruptionBudget",
        "Service",
        "CustomResourceDefinition",
    } <= set(checked)
    # dryRun=All persisted nothing.
    with pytest.raises(kube_errors.NotFoundError):
        await admin.get(CLUSTER_ROLES, release)


def token_kubeconfig(admin_kubeconfig: pathlib.Path, token: str, path: pathlib.Path) -> pathlib.Path:
    """The admin kubeconfig's server and CA with the ServiceAccount's token as the only credential."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
    ca = cluster.get("certificate-authority")
    if ca and not pathlib.Path(ca).is_absolute():
        cluster = {**cluster, "certificate-authority": str(admin_kubeconfig.parent / ca)}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return path


@pytest.mark.integration
@pytest.mark.anyio
async def test_chart_rbac_is_enough_to_provision_and_remove_inflate(
    helm_bin: pathlib.Path, admin: KubeClient, release: str, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    objects = render(helm_bin, release, release, *KWOK_VALUES)
    rbac = [o for o in objects if o["kind"] in RBAC_KINDS]
    assert sorted(o["kind"] for o in rbac) == sorted(RBAC_KINDS)
    for obj in rbac:
        await apply(admin, obj, dry_run=False)
    token = (
        await admin.request(
            "POST",
            f"/api/v1/namespaces/{release}/serviceaccounts/{release}-nodesmith/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600},
            },
        )
    )["status"]["token"]
    sa_config = token_kubeconfig(kubeconfig, token, tmp_path / "sa.kubeconfig")
    sa = await KubeClient.connect(sa_config)
    with pytest.raises(kube_errors.KubeError):  # the token really is restricted
        await sa.list(e2e.SERVICE_ACCOUNTS, "kube-system")

    log = tmp_path / "nodesmith.log"
    daemon = e2e.DaemonProcess(
        sa_config, log, "--leader-elect", "--leader-election-namespace", release,
        "--leader-election-name", "nodesmith-leader-election",
    ).start()  # fmt: skip
    pool = release
    try:
        await daemon.wait_ready(90)
        await admin.create(e2e.KWOK_NODE_CLASSES, {"metadata": {"name": pool}, "spec": {}})
        await admin.create(resources.NODEPOOLS, e2e.nodepool(pool, pool))
        await admin.create(e2e.DEPLOYMENTS, e2e.deployment("inflate", release, 4, pool=pool), release)

        async def running(count: int) -> bool:
            daemon.check_alive()
            pods = (await admin.list(resources.PODS, release, label_selector="app=inflate")).items
            return len(pods) == count and all(p.get("status", {}).get("phase") == "Running" for p in pods)

        await e2e.eventually(lambda: running(4), 180, "4 inflate pods Running (log below on failure)")
        lease = await admin.get(resources.LEASES, "nodesmith-leader-election", release)
        assert lease["spec"]["holderIdentity"]

        await admin.merge_patch(e2e.DEPLOYMENTS, "inflate", {"spec": {"replicas": 0}}, release)
        await admin.merge_patch(
            resources.NODEPOOLS,
            pool,
            {"spec": {"disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "0s"}}},
        )

        async def nodes_gone() -> bool:
            daemon.check_alive()
            nodes = await admin.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={pool}")
            return not nodes.items

        await e2e.eventually(nodes_gone, 180, "the empty node to be removed")
        # an RBAC denial reads 'is forbidden: User "system:serviceaccount:..." cannot <verb> resource';
        # other 403s (an event written into a namespace being deleted) are not about the chart's RBAC
        denied = [line for line in log.read_text(errors="replace").splitlines() if RBAC_DENIAL.search(line)]
        assert not denied, denied
    except AssertionError as err:
        raise AssertionError(f"{err}\nnodesmith log:\n{daemon.tail(80)}") from err
    finally:
        daemon.stop()
        await e2e.cleanup(admin, namespace=None, nodepools=[pool])
        with contextlib.suppress(kube_errors.NotFoundError):
            await admin.delete(e2e.KWOK_NODE_CLASSES, pool)


RBAC_DENIAL = re.compile(r'forbidden: User \\?"[^"\\]*\\?" cannot', re.IGNORECASE)
"""How the API server words a request RBAC denied (the log escapes the quotes: it is JSON)."""


# -- the ClusterRole against the code's calls -------------------------------------------------------

CALL = re.compile(
    r"\.(get|list|watch|create|replace|merge_patch|json_patch|update_status|delete|evict|mutate)\(\s*"
    r"(resources\.[A-Z_]+|LEASES|CORE_EVENTS|NODE_CLASSES|self\._resource|resource)\b"
)
VERBS = {
    "get": ("get",),
    "list": ("list",),
    "watch": ("watch",),
    "create": ("create",),
    "replace": ("update",),
    "merge_patch": ("patch",),
    "json_patch": ("patch",),
    "update_status": ("patch",),
    "delete": ("delete",),
    "mutate": ("get", "update"),
}
# Names the regex sees that are not `resources.X`: what they are bound to in the code.
ALIASES = {
    "LEASES": resources.LEASES,
    "CORE_EVENTS": resources.CORE_EVENTS,
    "NODE_CLASSES": resources.node_class("kwok.nodesmith.io", "KWOKNodeClass"),  # nodesmith_kwok.provider
    "self._resource": resources.node_class("aws.nodesmith.io", "EC2NodeClass"),  # nodesmith_aws.store
}
Permission = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)


def calls_in(paths: list[pathlib.Path]) -> set[Permission]:
    """(group, resource, verb) for each ``kube.<method>(<resource>, ...)`` call found by regex, plus the
    informers' list+watch. Calls through a variable named ``resource`` (shared helpers such as
    ``remove_finalizer``) are resolved by the callers' uses of the same verbs, so they are skipped."""
    needed: set[Permission] = set()
    for path in paths:
        if "testing" in path.parts or (path.name == "crds.py" and path.parent.name == "runtime"):
            continue  # test kits; CRD installation is an admin step (`crds.install`), not `nodesmith run`
        text = path.read_text()
        if ".evict(" in text:  # KubeClient.evict(name, namespace): POST pods/<name>/eviction
            needed.add(("", "pods/eviction", "create"))
        for match in CALL.finditer(text):
            method, name = match.groups()
            if name == "resource":
                continue
            resource = ALIASES.get(name) or getattr(resources, name.removeprefix("resources."))
            call = text[match.end() : match.end() + 400].split("\n\n")[0]
            plural = resource.plural
            if method == "update_status" or re.search(r"subresource=\"status\"", call.split(")\n")[0]):
                plural += "/status"
            if method == "mutate":  # get the object, PUT it (to the subresource, if one is named)
                needed.add((resource.group, resource.plural, "get"))
                needed.add((resource.group, plural, "update"))
                continue
            needed.update((resource.group, plural, verb) for verb in VERBS[method])
    # with --scheduler-config the daemon also watches what deducing a default spread selector reads
    for resource in (*informer.DEFAULT_RESOURCES, *simulation.WORKLOAD_RESOURCES):
        needed.update((resource.group, resource.plural, verb) for verb in ("list", "watch"))
    return needed


def granted(objects: list[dict[str, Any]]) -> set[Permission]:
    out: set[Permission] = set()
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        out.update((group, resource, verb) for verb in rule["verbs"])
    return out


@pytest.mark.integration
@pytest.mark.parametrize("provider", ["kwok", "aws"])
def test_cluster_role_covers_every_call_the_code_makes(helm_bin: pathlib.Path, provider: str) -> None:
    core = sorted((ROOT / "nodesmith").rglob("*.py"))
    plugin = sorted((ROOT / "providers" / provider).rglob("*.py"))
    needed = calls_in(core + plugin)
    if provider == "aws":  # the provider's NodeClass informer (Informers.for_state) lists and watches it
        needed |= {
            ("aws.nodesmith.io", "ec2nodeclasses", "list"),
            ("aws.nodesmith.io", "ec2nodeclasses", "watch"),
        }
    else:
        needed |= {
            ("kwok.nodesmith.io", "kwoknodeclasses", "list"),
            ("kwok.nodesmith.io", "kwoknodeclasses", "watch"),
        }
    needed.discard(("apiextensions.k8s.io", "customresourcedefinitions", "get"))
    values = KWOK_VALUES if provider == "kwok" else AWS_VALUES
    rules = granted(render(helm_bin, "nodesmith", "nodesmith", *values))
    assert needed - rules == set()
    # What the role grants beyond the calls found: single-object `get` on watched kinds (kept so a
    # reconciler may read through), and nothing else.
    extra = rules - needed
    assert {verb for (_, _, verb) in extra} <= {"get"}, sorted(extra)

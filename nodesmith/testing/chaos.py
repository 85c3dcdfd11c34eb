"""The crash-safety campaign: SIGKILL ``nodesmith run`` at chosen moments, restart it, and check from the
API that nothing was lost, leaked, doubled or wrongly disrupted.

A campaign runs on one NodePool of the local control plane with the kwok provider (the default) or any
other: the `Cloud` it is given lists the instances, and its daemon factory starts ``nodesmith run`` with
that provider (the AWS campaign passes moto's instances and ``--provider aws``). Two Deployments stay
for the whole run: ``web`` (three replicas behind a PodDisruptionBudget of ``maxUnavailable: 1``) and
``guard`` (one ``do-not-disrupt`` pod). Each round drives the cluster into one phase of the daemon's work
(a :data:`KILL_POINTS` entry: provisioning's batch window, NodeClaim creation, launch, registration,
consolidation, drift replacement, drain, termination), watches the API until that phase is visible, kills
the daemon with SIGKILL there, starts a new one, and waits for the cluster to *settle*: every desired pod
Running, every NodeClaim launched, registered and initialized with its Node, none being deleted, no node
left tainted ``disrupted``, every instance of the cloud owned by a NodeClaim (a launch cut short by the
kill leaves an instance the garbage collector must terminate). Then the invariants are read from the API
and from the cloud (for kwok the instances are the Nodes it created; for AWS, moto's instances):

* no instance without a NodeClaim (nothing leaked);
* no launched NodeClaim whose instance is gone;
* no two NodeClaims for one instance;
* every pod that fits is Running (the settle condition, with a time limit);
* the PDB was never overrun (sampled ten times a second for the whole campaign);
* the do-not-disrupt pod was never evicted (same pod, never deleted).

Used by ``tests/chaos`` (a small campaign in CI) and ``make chaos`` (100 rounds), which print
:func:`table`. Settle times are wall-clock measurements for the report, never asserted on.
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import anyio
import attrs

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e

__all__ = ["KILL_POINTS", "Campaign", "Cloud", "KwokCloud", "Round", "summary", "table"]

KILL_POINTS: Final = (
    "batch-window",
    "nodeclaim-created",
    "launch",
    "registration",
    "consolidation",
    "drift",
    "drain",
    "termination",
)
"""Where a round kills the daemon, in the order a node lives through them."""

INSTANCE_TYPES: Final = ("c-2x-amd64-linux", "c-4x-amd64-linux")
WEB_REPLICAS: Final = 3
SETTLE_TIMEOUT: Final = 240.0
REACH_TIMEOUT: Final = 60.0
POLL: Final = 0.05
LEAK_GRACE: Final = 20.0
"""An instance counts as leaked only if no NodeClaim owns it for this long: a launch under way (a
replacement started after the cluster settled) has its instance before its NodeClaim's providerID."""

Obj = dict[str, Any]


@attrs.frozen
class Round:
    """One kill and what followed."""

    index: int
    kill_point: str
    reached: bool
    """Whether the phase was seen before the kill (otherwise the daemon was killed at the time limit)."""
    killed_after: float
    """Seconds from the round's action to the kill."""
    settle_seconds: float | None
    """Seconds from the restart to a settled cluster; ``None`` if it did not settle in time."""
    violations: tuple[str, ...]


class Cloud(Protocol):
    """Where the campaign reads the instances from: what the provider launched, whatever the API says."""

    async def instances(self, pool: str) -> dict[str, str]:
        """providerID → instance name, for every live instance of NodePool ``pool``."""
        ...


@attrs.frozen
class KwokCloud:
    """kwok's instances are the Nodes it created (providerID ``kwok://...``)."""

    kube: KubeClient

    async def instances(self, pool: str) -> dict[str, str]:
        return {
            n["spec"].get("providerID"): n["metadata"]["name"]
            for n in (await self.kube.list(resources.NODES)).items
            if str(n["spec"].get("providerID", "")).startswith("kwok://")
            and (n["metadata"].get("labels") or {}).get(labels.LABEL_NODEPOOL) == pool
        }


def kwok_daemon(kubeconfig: pathlib.Path, log: pathlib.Path) -> e2e.DaemonProcess:
    return e2e.DaemonProcess(kubeconfig, log)


def _condition(obj: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _disrupted(node: Obj) -> bool:
    return any(t.get("key") == labels.TAINT_DISRUPTED for t in (node.get("spec") or {}).get("taints") or ())


def _ready(pod: Obj) -> bool:
    return not _deleting(pod) and _condition(pod, "Ready")


@attrs.define
class _Watch:
    """Samples the PDB-protected ``web`` pods and the do-not-disrupt ``guard`` pod for the whole campaign."""

    kube: KubeClient
    namespace: str
    lowest_web_ready: int | None = None
    armed: bool = False
    guard_uid: str | None = None
    guard_events: list[str] = attrs.Factory(list)
    samples: int = 0

    async def run(self) -> None:
        while True:
            pods = (await self.kube.list(resources.PODS, self.namespace)).items
            web = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "web"]
            guard = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "guard"]
            if self.armed:
                self.samples += 1
                ready = sum(1 for p in web if _ready(p))
                self.lowest_web_ready = (
                    ready if self.lowest_web_ready is None else min(self.lowest_web_ready, ready)
                )
                for pod in guard:
                    uid = pod["metadata"]["uid"]
                    if uid != self.guard_uid:
                        self.guard_events.append(f"guard pod replaced ({self.guard_uid} -> {uid})")
                        self.guard_uid = uid
                    if _deleting(pod):
                        self.guard_events.append(f"guard pod {pod['metadata']['name']} being deleted")
                if not guard:
                    self.guard_events.append("guard pod gone")
            await anyio.sleep(0.1)


@attrs.define
class Campaign:
    """A crash campaign on NodePool ``pool`` (its NodeClass ``node_class``) in ``namespace``.

    ``cloud`` lists the instances (kwok's Nodes unless given), ``daemon`` builds the ``nodesmith run``
    process (kwok unless given), ``instance_types`` and ``node_class_ref`` shape the NodePool."""

    kube: KubeClient
    kubeconfig: pathlib.Path
    namespace: str
    pool: str
    node_class: str
    log_dir: pathlib.Path
    seed: int = 1
    progress: Callable[[str], None] = print
    cloud: Cloud | None = None
    daemon: Callable[[pathlib.Path, pathlib.Path], e2e.DaemonProcess] = kwok_daemon
    instance_types: Sequence[str] = INSTANCE_TYPES
    node_class_ref: Obj | None = None
    ready_timeout: float = 60.0
    """Seconds a restarted daemon has to become ready (the AWS provider first discovers instance types)."""
    rounds: list[Round] = attrs.Factory(list)
    _rng: random.Random = attrs.field(init=False)
    _daemon: e2e.DaemonProcess | None = attrs.field(init=False, default=None)
    _starts: int = attrs.field(init=False, default=0)
    _burst: int = attrs.field(init=False, default=0)
    _drift: int = attrs.field(init=False, default=0)
    _watch: _Watch = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._watch = _Watch(self.kube, self.namespace)
        if self.cloud is None:
            self.cloud = KwokCloud(self.kube)

    # -- the run -------------------------------------------------------------------------------------

    async def run(self, count: int) -> list[Round]:
        """Set up, run ``count`` rounds (kill points shuffled so each comes up equally often), tear down."""
        order = [KILL_POINTS[i % len(KILL_POINTS)] for i in range(count)]
        self._rng.shuffle(order)
        await self._setup()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch.run)
                await self._restart()
                settled = await self._settle()
                if settled is None:
                    raise AssertionError("the campaign's starting cluster never settled")
                self._watch.guard_uid = await self._guard_uid()
                self._watch.armed = True
                for index, point in enumerate(order):
                    self.rounds.append(await self._round(index, point))
                    self.progress(_row(self.rounds[-1]))
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._teardown()
        return self.rounds

    def pdb_violations(self) -> list[str]:
        lowest = self._watch.lowest_web_ready
        if lowest is not None and lowest < WEB_REPLICAS - 1:
            return [f"web had {lowest} Ready pods; its PDB allows no fewer than {WEB_REPLICAS - 1}"]
        return []

    def guard_violations(self) -> list[str]:
        return list(self._watch.guard_events)

    @property
    def samples(self) -> int:
        return self._watch.samples

    async def _round(self, index: int, point: str) -> Round:
        reach = await self._act(point)
        started = time.monotonic()
        reached = False
        with anyio.move_on_after(REACH_TIMEOUT):
            while not (reached := await reach()):
                await anyio.sleep(POLL)
        killed_after = time.monotonic() - started
        assert self._daemon is not None
        self._daemon.kill()
        await self._restart()
        restarted = time.monotonic()
        settled = await self._settle()
        violations = await self._invariants()
        if settled is None:
            violations.append(f"did not settle within {SETTLE_TIMEOUT:.0f}s: {await self._unsettled()}")
        violations += self.pdb_violations() + self.guard_violations()
        self._watch.guard_events.clear()
        return Round(
            index,
            point,
            reached,
            killed_after,
            None if settled is None else settled - restarted,
            tuple(violations),
        )

    # -- actions and kill points ----------------------------------------------------------------------

    async def _act(self, point: str) -> Callable[[], Awaitable[bool]]:
        """Start the phase ``point`` names; return the probe that says it is under way."""
        claims_before = {c["metadata"]["name"] for c in await self._claims()}

        async def new_claims() -> list[Obj]:
            return [c for c in await self._claims() if c["metadata"]["name"] not in claims_before]

        if point in ("batch-window", "nodeclaim-created", "launch", "registration"):
            await self._scale_burst(self._burst + self._rng.randint(2, 4))
            if point == "batch-window":
                deadline = time.monotonic() + self._rng.uniform(0.0, 1.5)

                async def in_window() -> bool:
                    return time.monotonic() >= deadline

                return in_window

            async def new_claim_in_phase() -> bool:
                claims = await new_claims()
                if point == "nodeclaim-created":
                    return any(not (c.get("status") or {}).get("providerID") for c in claims)
                if point == "launch":  # the instance exists, not registered yet (kwok names it after
                    instances = await self._instances()  # the claim: seen before the providerID write)
                    names = set(instances.values())
                    return any(
                        (
                            (c.get("status") or {}).get("providerID") in instances
                            or c["metadata"]["name"] in names
                        )
                        and not _condition(c, "Registered")
                        for c in claims
                    )
                return any(_condition(c, "Registered") and not _condition(c, "Initialized") for c in claims)

            return new_claim_in_phase
        if point in ("consolidation", "drift") and self._burst == 0:
            # The guard's node never goes (do-not-disrupt): grow first, so there is something to move.
            await self._scale_burst(self._rng.randint(2, 4))
            if await self._settle() is None:
                raise AssertionError(
                    f"scaling up before a {point} round never settled: {await self._unsettled()}"
                )
        if point == "consolidation":
            await self._scale_burst(0)
            return self._any_node_disrupted
        if point == "drift":
            self._drift += 1
            await self.kube.merge_patch(
                resources.NODEPOOLS,
                self.pool,
                {"spec": {"template": {"metadata": {"labels": {"chaos/drift": str(self._drift)}}}}},
            )
            return self._any_node_disrupted
        found = await self._victim()
        if found is None:  # nothing safe to delete: grow first
            await self._scale_burst(self._burst + 2)
            found = await e2e.eventually(self._victim, SETTLE_TIMEOUT, "a NodeClaim to delete")
        assert found is not None
        victim, victim_node = found
        await self.kube.delete(resources.NODECLAIMS, victim)
        if point == "drain":

            async def draining() -> bool:  # tainted for termination, its Node not yet gone
                node = next((n for n in await self._nodes() if n["metadata"]["name"] == victim_node), None)
                return node is not None and _disrupted(node)

            return draining
        deadline = time.monotonic() + self._rng.uniform(0.0, 2.0)

        async def terminating() -> bool:
            return time.monotonic() >= deadline

        return terminating

    async def _any_node_disrupted(self) -> bool:
        return any(_disrupted(n) for n in await self._nodes())

    async def _victim(self) -> tuple[str, str] | None:
        """(NodeClaim, Node) to delete: an initialized NodeClaim, the one with the most pods (so its
        drain takes a while), never the one holding the do-not-disrupt pod (its drain would wait for
        that pod forever, as Karpenter's does)."""
        pods = (await self.kube.list(resources.PODS, self.namespace)).items
        on_node: dict[str, list[str]] = {}
        for pod in pods:
            app = (pod["metadata"].get("labels") or {}).get("app", "")
            on_node.setdefault(pod["spec"].get("nodeName") or "", []).append(app)
        candidates = [
            (str(c["metadata"]["name"]), str(c["status"]["nodeName"]))
            for c in await self._claims()
            if not _deleting(c)
            and _condition(c, "Initialized")
            and (c.get("status") or {}).get("nodeName")
            and "guard" not in on_node.get(c["status"]["nodeName"], [])
        ]
        if not candidates:
            return None
        return max(sorted(candidates), key=lambda pair: len(on_node.get(pair[1], [])))

    async def _scale_burst(self, replicas: int) -> None:
        self._burst = replicas
        await self.kube.merge_patch(
            e2e.DEPLOYMENTS, "burst", {"spec": {"replicas": replicas}}, self.namespace
        )

    # -- settle and invariants ------------------------------------------------------------------------

    async def _settle(self) -> float | None:
        """Wait until the cluster is settled; the monotonic time it was, or ``None`` at the time limit."""
        with anyio.move_on_after(SETTLE_TIMEOUT):
            while await self._unsettled():
                assert self._daemon is not None
                self._daemon.check_alive()
                await anyio.sleep(0.2)
            return time.monotonic()
        return None

    async def _unsettled(self) -> str:
        """What keeps the cluster from being settled (empty when it is)."""
        desired = {"web": WEB_REPLICAS, "guard": 1, "burst": self._burst}
        pods = (await self.kube.list(resources.PODS, self.namespace)).items
        for app, replicas in desired.items():
            mine = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == app]
            ready = sum(1 for p in mine if _ready(p))
            if ready != replicas or len(mine) != replicas:
                return f"{app}: {ready}/{replicas} Ready of {len(mine)} pods"
        claims = await self._claims()
        nodes = {n["metadata"]["name"]: n for n in await self._nodes()}
        for claim in claims:
            name = claim["metadata"]["name"]
            if _deleting(claim):
                return f"NodeClaim {name} being deleted"
            if not _condition(claim, "Initialized"):
                return f"NodeClaim {name} not initialized"
            if (claim.get("status") or {}).get("nodeName") not in nodes:
                return f"NodeClaim {name} has no Node"
        if len(nodes) != len(claims):
            return f"{len(nodes)} Nodes for {len(claims)} NodeClaims"
        tainted = sorted(name for name, node in nodes.items() if _disrupted(node))
        if tainted:
            return f"nodes tainted disrupted: {', '.join(tainted)}"
        claimed = {(c.get("status") or {}).get("providerID") for c in claims}
        unowned = sorted(name for pid, name in (await self._instances()).items() if pid not in claimed)
        if unowned:
            return f"instances without a NodeClaim: {', '.join(unowned)}"
        return ""

    async def _invariants(self) -> list[str]:
        """Read from the API and the cloud (kwok: the Nodes it created): leaks, lost and doubled instances."""
        claims = await self._claims()
        instances = await self._instances()
        unowned = await self._unowned(instances, claims)
        by_provider_id: dict[str, list[str]] = {}
        for claim in claims:
            provider_id = (claim.get("status") or {}).get("providerID")
            if provider_id:
                by_provider_id.setdefault(provider_id, []).append(claim["metadata"]["name"])
        out = [
            f"instance {name} ({provider_id}) has no NodeClaim"
            for provider_id, name in sorted(instances.items())
            if provider_id in unowned
        ]
        out += [
            f"NodeClaim {names[0]} lost its instance {provider_id}"
            for provider_id, names in sorted(by_provider_id.items())
            if provider_id not in instances
        ]
        out += [
            f"NodeClaims {', '.join(names)} share instance {provider_id}"
            for provider_id, names in sorted(by_provider_id.items())
            if len(names) > 1
        ]
        return out

    async def _unowned(self, instances: dict[str, str], claims: list[Obj]) -> set[str]:
        """providerIDs of ``instances`` no NodeClaim owned at any reading for :data:`LEAK_GRACE`."""
        deadline = time.monotonic() + LEAK_GRACE
        unowned = set(instances) - {(c.get("status") or {}).get("providerID") for c in claims}
        while unowned and time.monotonic() < deadline:
            await anyio.sleep(0.5)
            owned = {(c.get("status") or {}).get("providerID") for c in await self._claims()}
            unowned -= owned
        return unowned

    # -- plumbing -------------------------------------------------------------------------------------

    async def _claims(self) -> list[Obj]:
        return [
            c
            for c in (await self.kube.list(resources.NODECLAIMS)).items
            if (c["metadata"].get("labels") or {}).get(labels.LABEL_NODEPOOL) == self.pool
        ]

    async def _instances(self) -> dict[str, str]:
        assert self.cloud is not None
        return await self.cloud.instances(self.pool)

    async def _nodes(self) -> list[Obj]:
        return (
            await self.kube.list(resources.NODES, label_selector=f"{labels.LABEL_NODEPOOL}={self.pool}")
        ).items

    async def _guard_uid(self) -> str | None:
        pods = (await self.kube.list(resources.PODS, self.namespace, label_selector="app=guard")).items
        return str(pods[0]["metadata"]["uid"]) if pods else None

    async def _restart(self) -> None:
        self._daemon = self.daemon(self.kubeconfig, self.log_dir / f"nodesmith-{self._starts}.log")
        self._starts += 1
        self._daemon.start()
        await self._daemon.wait_ready(self.ready_timeout)

    async def _setup(self) -> None:
        pool = e2e.nodepool(
            self.pool,
            self.node_class,
            requirements=[
                {"key": labels.LABEL_CAPACITY_TYPE, "operator": "In", "values": ["on-demand"]},
                {"key": labels.LABEL_INSTANCE_TYPE, "operator": "In", "values": list(self.instance_types)},
            ],
            disruption={
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": "1s",
                "budgets": [{"nodes": "100%"}],
            },
        )
        if self.node_class_ref is not None:
            pool["spec"]["template"]["spec"]["nodeClassRef"] = dict(self.node_class_ref)
        await self.kube.create(resources.NODEPOOLS, pool)
        await self.kube.create(
            resources.PDBS,
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": self.namespace},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            },
            self.namespace,
        )
        deployments = (
            e2e.deployment("web", self.namespace, WEB_REPLICAS, pool=self.pool, cpu="500m"),
            _annotated(
                e2e.deployment("guard", self.namespace, 1, pool=self.pool, cpu="250m"),
                {labels.ANNOTATION_DO_NOT_DISRUPT: "true"},
            ),
            e2e.deployment("burst", self.namespace, 0, pool=self.pool, cpu="1", affinity=_ALONE),
        )
        for body in deployments:
            await self.kube.create(e2e.DEPLOYMENTS, body, self.namespace)

    async def _teardown(self) -> None:
        try:
            await e2e.cleanup(self.kube, namespace=self.namespace, nodepools=[self.pool])
        finally:
            if self._daemon is not None:
                self._daemon.stop()
            with contextlib.suppress(kube_errors.NotFoundError):
                await self.kube.delete(resources.NODEPOOLS, self.pool)


_ALONE: Final = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "labelSelector": {
                    "matchExpressions": [
                        {"key": "app", "operator": "In", "values": ["burst", "web", "guard"]}
                    ]
                },
                "topologyKey": labels.LABEL_HOSTNAME,
            }
        ]
    }
}
"""Each ``burst`` pod needs a node of its own (no other burst, web or guard pod on it), so every scale-up
launches NodeClaims and the provisioning kill points are always reached."""


def _annotated(deployment: Obj, annotations: dict[str, str]) -> Obj:
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"] = {**template["metadata"].get("annotations", {}), **annotations}
    return deployment


def _row(r: Round) -> str:
    settle = "-" if r.settle_seconds is None else f"{r.settle_seconds:.1f}"
    reached = "yes" if r.reached else "no"
    problems = "; ".join(r.violations) or "0"
    return (
        f"{r.index + 1:>5}  {r.kill_point:<18} {reached:<7} {r.killed_after:>7.1f}  {settle:>8}  {problems}"
    )


def table(rounds: Sequence[Round]) -> str:
    """Every round, then per kill point: rounds, kill point reached, violations, settle time median/max."""
    lines = [f"{'round':>5}  {'kill point':<18} {'reached':<7} {'kill s':>7}  {'settle s':>8}  violations"]
    lines += [_row(r) for r in rounds]
    lines.append("")
    lines.append(summary(rounds))
    return "\n".join(lines)


def summary(rounds: Sequence[Round]) -> str:
    head = f"{'kill point':<18} {'rounds':>6} {'reached':>7} {'violations':>10} {'settle median s':>15} {'settle max s':>12}"
    lines = [head]
    for point in (*KILL_POINTS, "all"):
        mine = [r for r in rounds if point in ("all", r.kill_point)]
        if not mine:
            continue
        settles = [r.settle_seconds for r in mine if r.settle_seconds is not None]
        median = f"{statistics.median(settles):.1f}" if settles else "-"
        worst = f"{max(settles):.1f}" if settles else "-"
        lines.append(
            f"{point:<18} {len(mine):>6} {sum(r.reached for r in mine):>7} "
            f"{sum(len(r.violations) for r in mine):>10} {median:>15} {worst:>12}"
        )
    return "\n".join(lines)

"""Cloud faults on moto: CreateFleet throttled, failing with 5xx, stalling past the read timeout, and
answering with an instance plus errors (a partial fleet), against ``nodesmith run --provider aws`` on the
real control plane.

The daemon talks to a `FaultProxy` in front of moto (it runs in its own process; the proxy sees every
HTTP attempt, retries included). Each fault lasts :data:`FAULT_SECONDS` while one more pod needs a new
node; then it is lifted. Per fault the test prints the attempts per minute per API during the fault,
the failed attempts and the launch backoff the daemon's ``/metrics`` showed, and the seconds from lifting
it to the pod Running, and asserts: the call rate stayed bounded (no hot loop), the errors and the
backoff were visible in the metrics, the pod ran once the fault was lifted, and no instance in moto is
left without a NodeClaim (the stalled CreateFleets that moto carried out leave instances nobody got an
answer for: the next attempt adopts the one tagged for its NodeClaim, and the garbage collector must
terminate the others, such as the one botocore's retry of the stalled call launched).
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import time
from collections.abc import Callable
from typing import Any, Final

import anyio
import httpx
import pytest

from nodesmith.api import labels
from nodesmith.kube import errors as kube_errors
from nodesmith.kube import resources
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_aws.cloudprovider import AwsCloudProvider
from nodesmith_aws.store import KubeNodeClassStore
from nodesmith_aws.testing.bridge import MotoKwokBridge
from nodesmith_aws.testing.moto import REGION, MotoServer
from nodesmith_aws.testing.proxy import FaultProxy
from tests.chaos import aws_support

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(1800)]

FAULT_SECONDS: Final = 40.0
"""How long each fault lasts (the scenario's length, not a wait for anything)."""
MAX_CREATE_FLEET_PER_MINUTE: Final = 60.0
"""A hot loop retries as fast as the answers come (hundreds a second against a local endpoint); the
daemon's retries back off, so one pending NodeClaim must stay far below one attempt a second."""
MAX_ALL_PER_MINUTE: Final = 600.0
MAX_ATTEMPTS: Final = 1
"""botocore's ``retries.max_attempts`` (retries after the first attempt): two attempts per call."""
READ_TIMEOUT: Final = 30
"""The daemon's per-attempt read timeout here (60 s by default): long enough for moto's slowest answer
on a loaded machine (DescribeInstanceTypes at start), short enough that a stalled launch fails in time."""
STALL: Final = 35.0
STALL_SECONDS: Final = 80.0
"""The stall lasts longer than the others: one launch is two attempts of :data:`READ_TIMEOUT` each."""

FAULTS: Final[dict[str, Callable[[FaultProxy], None]]] = {
    "throttling RequestLimitExceeded": lambda p: p.fail("CreateFleet", "RequestLimitExceeded"),
    "5xx InternalError": lambda p: p.fail("CreateFleet", "InternalError"),
    "5xx ServiceUnavailable": lambda p: p.fail("CreateFleet", "ServiceUnavailable"),
    "read timeout (answer stalled)": lambda p: p.stall("CreateFleet", STALL),
}
CODES: Final = {
    "throttling RequestLimitExceeded": "RequestLimitExceeded",
    "5xx InternalError": "InternalError",
    "5xx ServiceUnavailable": "ServiceUnavailable",
    "read timeout (answer stalled)": "ReadTimeoutError",
}


async def sample(daemon: e2e.DaemonProcess, metric: str, **wanted: str) -> float:
    """The sum of ``metric``'s series whose labels include ``wanted`` (0 when there is none)."""
    async with httpx.AsyncClient() as client:  # a loaded machine may take more than a few seconds
        response = await client.get(f"http://127.0.0.1:{daemon.metrics}/metrics", timeout=60)
    response.raise_for_status()
    total = 0.0
    for line in response.text.splitlines():
        match = re.match(rf"{metric}{{([^}}]*)}} (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(key) == want for key, want in wanted.items()):
                total += float(match.group(2))
    return total


def alone(app: str) -> dict[str, Any]:
    """Each pod of ``app`` on a node of its own, so each new replica needs a new instance."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": labels.LABEL_HOSTNAME}
            ]
        }
    }


async def test_throttling_5xx_timeouts_and_partial_fleets_back_off_and_leak_no_instance(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    moto: MotoServer,
    namespace: str,
    name: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, clients = await aws_support.prepared_account(kube, moto, name)
    await kube.create(
        resources.NODEPOOLS,
        aws_support.nodepool_for(name, disruption={"budgets": [{"nodes": "0"}]}),
    )
    await kube.create(
        e2e.DEPLOYMENTS,
        e2e.deployment("load", namespace, 0, pool=name, cpu="1", affinity=alone("load")),
        namespace,
    )
    provider = AwsCloudProvider(settings, KubeNodeClassStore(kube), clients=clients)
    cloud = aws_support.MotoCloud(provider)
    replicas = 0

    async def claims() -> dict[str, str]:
        return {
            c["metadata"]["name"]: (c.get("status") or {}).get("providerID", "")
            for c in (await kube.list(resources.NODECLAIMS)).items
            if (c["metadata"].get("labels") or {}).get(labels.LABEL_NODEPOOL) == name
        }

    async def all_running() -> bool:
        pods = (await kube.list(resources.PODS, namespace, label_selector="app=load")).items
        return len(pods) == replicas and all((p.get("status") or {}).get("phase") == "Running" for p in pods)

    async def no_orphan() -> bool:
        owned = set((await claims()).values())
        return set(await cloud.instances(name)) <= owned

    async def scale_up() -> None:
        nonlocal replicas
        replicas += 1
        await kube.merge_patch(e2e.DEPLOYMENTS, "load", {"spec": {"replicas": replicas}}, namespace)

    rows = []
    try:
        await provider.catalog.ensure()
        async with FaultProxy(moto.url) as proxy, anyio.create_task_group() as group:
            aws_support.daemon_env(
                monkeypatch,
                proxy.url,
                REGION,
                NODESMITH_AWS_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
                NODESMITH_AWS_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
            )
            daemon = aws_support.aws_daemon(kubeconfig, tmp_path / "nodesmith-aws.log")
            group.start_soon(MotoKwokBridge(provider, kube).run, 0.5)
            try:
                daemon.start()
                await daemon.wait_ready(120)
                await scale_up()  # a first node without faults: launch templates exist from here on
                await e2e.eventually(all_running, 180, "the first pod Running")

                for fault, inject in FAULTS.items():
                    code = CODES[fault]
                    errors_before = await sample(
                        daemon, "nodesmith_cloudprovider_api_errors_total", operation="CreateFleet", code=code
                    )
                    inject(proxy)
                    started = time.monotonic()
                    await scale_up()
                    await anyio.sleep(STALL_SECONDS if code == "ReadTimeoutError" else FAULT_SECONDS)
                    lifted = time.monotonic()
                    backoff = await sample(
                        daemon, "nodesmith_nodeclaims_launch_backoff_seconds", nodepool=name
                    )
                    errors = (
                        await sample(
                            daemon,
                            "nodesmith_cloudprovider_api_errors_total",
                            operation="CreateFleet",
                            code=code,
                        )
                        - errors_before
                    )
                    proxy.clear()
                    rates = proxy.per_minute(started, lifted)
                    await e2e.eventually(all_running, 240, f"the pods Running after {fault}")
                    recovered = time.monotonic() - lifted
                    await e2e.eventually(no_orphan, 300, f"no instance without a NodeClaim after {fault}")
                    cleaned = time.monotonic() - lifted
                    after = await sample(daemon, "nodesmith_nodeclaims_launch_backoff_seconds", nodepool=name)
                    rows.append((fault, rates, errors, backoff, recovered, cleaned))
                    print(
                        f"\n{fault}: attempts/min during the fault {_rates(rates)}; failed CreateFleet "
                        f"attempts counted {errors:.0f}; launch backoff gauge {backoff:.0f}s (after: {after:.0f}s); "
                        f"pod Running {recovered:.1f}s and no orphan {cleaned:.1f}s after the fault was lifted"
                    )
                    assert rates.get("CreateFleet", 0.0) <= MAX_CREATE_FLEET_PER_MINUTE, fault
                    assert sum(rates.values()) <= MAX_ALL_PER_MINUTE, fault
                    assert rates.get("CreateFleet", 0.0) > 0, f"{fault}: the launch was never attempted"
                    assert errors > 0, f"{fault}: no failed attempt in nodesmith_cloudprovider_api_errors"
                    if code == "ReadTimeoutError":
                        # moto carried the stalled CreateFleet out: the retry after the first timed-out
                        # launch finds that instance by its NodeClaim tag and adopts it, during the
                        # fault, so the launch backoff is back to 0 before the end of the fault
                        assert "adopting" in daemon.log.read_text(), f"{fault}: the instance was not adopted"
                    else:
                        assert backoff > 0, f"{fault}: no launch backoff in the metrics"
                    assert after == 0, f"{fault}: the backoff gauge did not reset after a launch"

                # partial fleet: an instance plus an error for another pool of the same request
                proxy.partial_fleet()
                attempts_before = len(proxy.fleet_overrides)
                await scale_up()
                await e2e.eventually(all_running, 180, "the pod Running on the partial fleet's instance")
                proxy.clear()
                assert proxy.failed_pools, "no CreateFleet answer was given an error entry"
                failed = proxy.failed_pools[-1]
                assert len(proxy.fleet_overrides) == attempts_before + 1  # the instance was used at once
                assert await e2e.eventually(no_orphan, 60, "no orphan after the partial fleet")
                await scale_up()  # the next launch leaves the failed pool out (unavailable for 3 minutes)
                await e2e.eventually(all_running, 180, "the pod after the partial fleet Running")
                assert failed not in proxy.fleet_overrides[-1], proxy.fleet_overrides[-1]
                assert len(set((await claims()).values())) == replicas
                print(
                    f"\npartial fleet: instance used by its NodeClaim; pool {failed} left out of the next "
                    f"CreateFleet ({len(proxy.fleet_overrides[-1])} overrides)"
                )
            finally:
                daemon.stop()
                print(f"--- nodesmith (aws) log (last lines) ---\n{daemon.tail(40)}")
                group.cancel_scope.cancel()
        print("\nfault | CreateFleet/min | all APIs/min | failed attempts | backoff s | running s | clean s")
        for fault, rates, errors, backoff, recovered, cleaned in rows:
            print(
                f"{fault} | {rates.get('CreateFleet', 0):.1f} | {sum(rates.values()):.1f} | {errors:.0f} "
                f"| {backoff:.0f} | {recovered:.1f} | {cleaned:.1f}"
            )
    finally:
        with anyio.CancelScope(shield=True):
            await e2e.cleanup(kube, namespace=None, nodepools=[name])
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(aws_support.EC2_NODE_CLASSES, name)
            await provider.close()


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"{op} {value:.1f}" for op, value in sorted(rates.items(), key=lambda kv: -kv[1]))

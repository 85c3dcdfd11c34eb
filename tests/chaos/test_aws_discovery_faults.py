"""Instance-type discovery failing at start, against ``nodesmith run --provider aws`` on the real control
plane: DescribeInstanceTypes answers nothing in time (a `FaultProxy` in front of moto holds its answers
past the daemon's read timeout). The daemon used to exit; it must stay up, answer ``/readyz`` with 503
and the error, and become ready by itself once EC2 answers again (its retries back off on its clock).
"""

from __future__ import annotations

import contextlib
import pathlib
import time
from typing import Final

import httpx
import pytest

from nodesmith.kube import errors as kube_errors
from nodesmith.kube.client import KubeClient
from nodesmith.testing import e2e
from nodesmith_aws.testing.moto import REGION, MotoServer
from nodesmith_aws.testing.proxy import FaultProxy
from tests.chaos import aws_support

pytestmark = [pytest.mark.e2e, pytest.mark.anyio, pytest.mark.timeout(600)]

READ_TIMEOUT: Final = 10
"""The daemon's per-attempt read timeout here; moto answers a page of instance types well within it."""
STALL: Final = READ_TIMEOUT + 5.0


async def readyz(daemon: e2e.DaemonProcess) -> tuple[int, str]:
    """``/readyz``'s status and text; ``(0, "")`` while the daemon is not listening yet."""
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{daemon.health}/readyz", timeout=30)
    except httpx.ConnectError:
        return 0, ""
    return response.status_code, response.text


async def test_describe_instance_types_timing_out_at_start_leaves_the_daemon_up_not_ready_until_it_answers(
    kube: KubeClient,
    kubeconfig: pathlib.Path,
    moto: MotoServer,
    name: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await aws_support.prepared_account(kube, moto, name)
    async with FaultProxy(moto.url) as proxy:
        aws_support.daemon_env(
            monkeypatch,
            proxy.url,
            REGION,
            NODESMITH_AWS_MAX_ATTEMPTS="1",
            NODESMITH_AWS_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        )
        proxy.stall("DescribeInstanceTypes", STALL)
        daemon = aws_support.aws_daemon(kubeconfig, tmp_path / "nodesmith-aws.log")
        daemon.start()
        try:

            async def not_ready_with_the_error() -> str | None:
                daemon.check_alive()
                status, text = await readyz(daemon)
                return text if status == 503 and "ReadTimeout" in text else None

            reason = await e2e.eventually(
                not_ready_with_the_error, 180, "/readyz 503 naming the timeout", interval=1.0
            )
            attempts = sum(1 for _, op in proxy.calls if op == "DescribeInstanceTypes")
            proxy.clear()
            lifted = time.monotonic()

            async def ready() -> bool:
                daemon.check_alive()
                return (await readyz(daemon))[0] == 200

            await e2e.eventually(ready, 240, "/readyz 200 once DescribeInstanceTypes answers", interval=1.0)
            print(
                f"\nnot ready while DescribeInstanceTypes stalled ({attempts} attempts): {reason.strip()}; "
                f"ready {time.monotonic() - lifted:.1f}s after the fault was lifted"
            )
            daemon.check_alive()
            assert "instance type discovery failed" in daemon.log.read_text()
        finally:
            daemon.stop()
            with contextlib.suppress(kube_errors.NotFoundError):
                await kube.delete(aws_support.EC2_NODE_CLASSES, name)

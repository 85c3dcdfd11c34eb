"""A fault proxy in front of moto: the daemon under test talks to it as to AWS, and the test decides what
each API answers.

Why a proxy and not `nodesmith_aws.testing.faults`: the daemon runs in its own process, so botocore hooks
in the test process cannot reach its requests; the network between it and "AWS" can. It also sees every
HTTP attempt the daemon makes, retries included, which is what a call rate is measured on (EC2 counts
attempts against the account's request limit, not logical calls).

Faults, per operation (``Action=`` of EC2's query protocol, or ``X-Amz-Target``'s operation):

* `FaultProxy.fail`: answer with an EC2 error (``RequestLimitExceeded`` 503, ``InternalError`` 500,
  ``ServiceUnavailable`` 503) without forwarding; botocore retries these as throttling or transient errors;
* `FaultProxy.stall`: forward the request, so moto carries it out, and hold the answer ``seconds`` before
  sending it: with a shorter read timeout the caller gives up and retries, as when EC2 executed a request
  whose answer was lost on the way;
* `FaultProxy.partial_fleet`: CreateFleet's answer keeps its instances and gains an ``Errors[]`` entry
  (``InsufficientInstanceCapacity``) for another pool of the request, as an instant fleet reports pools
  it could not use.

`FaultProxy.calls` lists (monotonic time, operation) for every attempt; `FaultProxy.per_minute` turns a
window of them into calls per minute per operation. Runs in the test's event loop (aiohttp).
"""

from __future__ import annotations

import collections
import re
import time
import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Final

import aiohttp
import anyio
import attrs
from aiohttp import web

__all__ = ["FaultProxy"]

STATUS: Final = {"RequestLimitExceeded": 503, "InternalError": 500, "ServiceUnavailable": 503}
_HOP: Final = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@attrs.define
class _Fault:
    kind: str
    code: str = ""
    seconds: float = 0.0


class FaultProxy:
    """``async with FaultProxy(moto.url) as proxy: proxy.url``; faults are set and cleared at any time."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.calls: list[tuple[float, str]] = []
        self.failed_pools: list[tuple[str, str]] = []
        """(instance type, zone) of each error entry added to a CreateFleet answer."""
        self.fleet_overrides: list[set[tuple[str, str]]] = []
        """The (instance type, zone) overrides of every CreateFleet attempt, in order."""
        self._faults: dict[str, _Fault] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- faults ----------------------------------------------------------------------------------------

    def fail(self, operation: str, code: str) -> None:
        """Every attempt of ``operation`` fails with ``code`` until `clear`."""
        self._faults[operation] = _Fault("fail", code=code)

    def stall(self, operation: str, seconds: float) -> None:
        """Every attempt of ``operation`` is carried out by moto, its answer held ``seconds``."""
        self._faults[operation] = _Fault("stall", seconds=seconds)

    def partial_fleet(self) -> None:
        """Every CreateFleet answer reports one more pool of its request as out of capacity."""
        self._faults["CreateFleet"] = _Fault("partial", code="InsufficientInstanceCapacity")

    def clear(self) -> None:
        self._faults.clear()

    def per_minute(self, since: float, until: float) -> dict[str, float]:
        """Attempts per minute per operation between two `time.monotonic` readings."""
        counted = collections.Counter(op for at, op in self.calls if since <= at < until)
        minutes = max(until - since, 1e-9) / 60.0
        return {op: count / minutes for op, count in sorted(counted.items())}

    # -- serving ---------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        operation = _operation(request.headers, body)
        self.calls.append((time.monotonic(), operation))
        if operation == "CreateFleet":
            self.fleet_overrides.append(set(_overrides(body).values()))
        fault = self._faults.get(operation)
        if fault is not None and fault.kind == "fail":
            return web.Response(
                status=STATUS.get(fault.code, 500), body=_error_body(fault.code), content_type="text/xml"
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as answer:
            payload = await answer.read()
            status = answer.status
            content_type = answer.headers.get("Content-Type", "text/xml")
        if fault is not None and fault.kind == "stall":
            await anyio.sleep(fault.seconds)
        if fault is not None and fault.kind == "partial" and status == 200:
            extra = _fleet_error(body, payload, fault.code)
            if extra is not None:
                payload, pool = extra
                self.failed_pools.append(pool)
        return web.Response(status=status, body=payload, headers={"Content-Type": content_type})

    async def __aenter__(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


def _operation(headers: Mapping[str, str], body: bytes) -> str:
    target = headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    match = re.search(rb"(?:^|&)Action=([A-Za-z0-9]+)", body)
    return match.group(1).decode() if match else "?"


def _error_body(code: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>injected {code}</Message></Error></Errors>"
        "<RequestID>fault-proxy</RequestID></Response>"
    ).encode()


def _overrides(request: bytes) -> dict[str, tuple[str, str]]:
    """CreateFleet's overrides: parameter prefix → (instance type, zone)."""
    params = dict(urllib.parse.parse_qsl(request.decode()))
    return {
        key.removesuffix("InstanceType"): (
            value,
            params.get(key.replace("InstanceType", "AvailabilityZone"), ""),
        )
        for key, value in params.items()
        if key.startswith("LaunchTemplateConfigs.") and key.endswith(".InstanceType")
    }


def _fleet_error(request: bytes, answer: bytes, code: str) -> tuple[bytes, tuple[str, str]] | None:
    """CreateFleet's answer with an ``errorSet`` entry for the request's second override (the first is
    the cheapest, which moto launched), or ``None`` when the request has a single override."""
    params = dict(urllib.parse.parse_qsl(request.decode()))
    prefix = "LaunchTemplateConfigs.1."
    override = f"{prefix}Overrides.2."
    if f"{override}InstanceType" not in params:
        return None
    template = params.get(f"{prefix}LaunchTemplateSpecification.LaunchTemplateName", "")
    lifecycle = params.get("TargetCapacitySpecification.DefaultTargetCapacityType", "on-demand")
    item = (
        "<errorSet><item><launchTemplateAndOverrides>"
        f"<launchTemplateSpecification><launchTemplateName>{template}</launchTemplateName>"
        "<version>$Latest</version></launchTemplateSpecification>"
        f"<overrides><instanceType>{params[f'{override}InstanceType']}</instanceType>"
        f"<availabilityZone>{params.get(f'{override}AvailabilityZone', '')}</availabilityZone>"
        f"<subnetId>{params.get(f'{override}SubnetId', '')}</subnetId></overrides>"
        f"</launchTemplateAndOverrides><lifecycle>{lifecycle}</lifecycle>"
        f"<errorCode>{code}</errorCode><errorMessage>injected: no capacity in this pool</errorMessage>"
        "</item></errorSet>"
    ).encode()
    closing = b"</CreateFleetResponse>"
    if closing not in answer:
        return None
    pool = (params[f"{override}InstanceType"], params.get(f"{override}AvailabilityZone", ""))
    return answer.replace(closing, item + closing, 1), pool

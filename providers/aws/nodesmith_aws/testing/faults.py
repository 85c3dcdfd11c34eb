"""Fault injection at the botocore boundary, for what moto cannot produce by itself.

moto never runs out of capacity and never throttles. EC2 does both, and the provider must handle the
exact shapes EC2 answers with, so this module produces those shapes through botocore's documented event
hooks on an ``aioboto3.Session`` (register before the provider creates its clients):

* **Insufficient capacity** (`FaultInjector.insufficient_capacity`): for each configured
  (instance type, zone, capacity type), CreateFleet's overrides for that pool are removed from the request
  before it is sent to moto (``provide-client-params``) and reported back in the response's ``Errors[]``
  with ``ErrorCode: InsufficientInstanceCapacity`` and the pool's ``LaunchTemplateAndOverrides``
  (``after-call``), which is how EC2 reports an unfulfillable pool inside a successful answer. When
  every override is removed the request is not sent at all and the answer is ``Instances: []`` plus the
  errors (``before-call``), as EC2 answers when no pool had capacity.
* **Throttling** (`FaultInjector.throttle`): the next N HTTP attempts of an operation get EC2's real
  ``RequestLimitExceeded`` error (HTTP 503, EC2's XML error body) from ``before-send``, i.e. inside
  botocore's retry loop, so its throttling backoff is what is exercised.

* **Timeouts** (`FaultInjector.time_out`): the next N HTTP attempts of an operation raise botocore's
  ``ReadTimeoutError`` from ``before-send``, as a connection that never answers does (retried by
  botocore like any connection error).

* **Denied calls** (`FaultInjector.deny`): every call of an operation fails with an error code such as
  ``UnauthorizedOperation`` (HTTP 403), as an IAM policy without the action answers (``before-call``).

`FaultInjector.calls` counts API calls per operation, ``actions`` per IAM action (``ec2:DescribeSubnets``)
and ``attempts`` HTTP attempts (retries included).
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Mapping
from typing import Any

import aioboto3
from aiobotocore.awsrequest import AioAWSResponse
from botocore.exceptions import ReadTimeoutError

__all__ = ["FaultInjector"]

_THROTTLE_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>'
    b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>injected</RequestID></Response>"
)


class _Raw:
    """The ``raw`` body aiobotocore reads from a response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


class _Http:
    status_code = 200
    headers: Mapping[str, str] = {}


class _Denied:
    status_code = 403
    headers: Mapping[str, str] = {}


class FaultInjector:
    def __init__(self, session: aioboto3.Session) -> None:
        self.ice: set[tuple[str, str, str]] = set()
        self._throttles: dict[str, int] = collections.Counter()
        self._timeouts: dict[str, int] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.attempts: collections.Counter[str] = collections.Counter()
        self.actions: collections.Counter[str] = collections.Counter()
        self._denied: dict[str, str] = {}
        events = session.events
        events.register("before-call", self._deny)
        events.register("provide-client-params.ec2.CreateFleet", self._strip_ice_pools)
        events.register("before-call.ec2.CreateFleet", self._all_pools_failed)
        events.register("after-call.ec2.CreateFleet", self._report_ice_pools)
        events.register("provide-client-params", self._count_call)
        events.register("before-send", self._send)

    def insufficient_capacity(self, instance_type: str, zone: str, capacity_type: str) -> None:
        """From now on, that pool has no capacity."""
        self.ice.add((instance_type, zone, capacity_type))

    def throttle(self, operation: str, times: int) -> None:
        """The next ``times`` HTTP attempts of ``operation`` (e.g. ``DescribeInstanceTypes``) are throttled."""
        self._throttles[operation] += times

    def time_out(self, operation: str, times: int) -> None:
        """The next ``times`` HTTP attempts of ``operation`` get no answer (``ReadTimeoutError``)."""
        self._timeouts[operation] += times

    def recover(self, operation: str) -> None:
        """From now on ``operation`` is answered again: its pending timeouts and throttles are dropped."""
        self._timeouts.pop(operation, None)
        self._throttles.pop(operation, None)

    def deny(self, operation: str, code: str = "UnauthorizedOperation") -> None:
        """From now on every call of ``operation`` (e.g. ``DescribeSubnets``) fails with ``code``."""
        self._denied[operation] = code

    # -- handlers --------------------------------------------------------------------------------------

    def _count_call(self, params: Any, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        self.actions[f"{model.service_model.signing_name}:{model.name}"] += 1

    def _deny(self, model: Any, **_: Any) -> tuple[_Denied, dict[str, Any]] | None:
        code = self._denied.get(model.name)
        if code is None:
            return None
        message = f"You are not authorized to perform this operation. (injected: {model.name})"
        return _Denied(), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}

    def _send(self, request: Any, **_: Any) -> AioAWSResponse | None:
        operation = _operation_of(request)
        self.attempts[operation] += 1
        if self._timeouts.get(operation, 0) > 0:
            self._timeouts[operation] -= 1
            raise ReadTimeoutError(endpoint_url=request.url, error="injected read timeout")
        if self._throttles.get(operation, 0) > 0:
            self._throttles[operation] -= 1
            return AioAWSResponse(request.url, 503, {"Content-Type": "text/xml"}, _Raw(_THROTTLE_BODY))
        return None

    def _strip_ice_pools(
        self, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> dict[str, Any] | None:
        if not self.ice:
            return None
        lifecycle = params.get("TargetCapacitySpecification", {}).get(
            "DefaultTargetCapacityType", "on-demand"
        )
        params = copy.deepcopy(params)
        failed = []
        for config in params.get("LaunchTemplateConfigs") or ():
            kept = []
            for override in config.get("Overrides") or ():
                pool = (override.get("InstanceType"), override.get("AvailabilityZone"), lifecycle)
                if pool in self.ice:
                    failed.append(
                        {
                            "LaunchTemplateAndOverrides": {
                                "LaunchTemplateSpecification": config["LaunchTemplateSpecification"],
                                "Overrides": override,
                            },
                            "Lifecycle": lifecycle,
                            "ErrorCode": "InsufficientInstanceCapacity",
                            "ErrorMessage": f"We currently do not have sufficient {override['InstanceType']} capacity in the Availability Zone you requested ({override['AvailabilityZone']}).",
                        }
                    )
                else:
                    kept.append(override)
            config["Overrides"] = kept
        params["LaunchTemplateConfigs"] = [
            c for c in params.get("LaunchTemplateConfigs") or () if c["Overrides"]
        ]
        context["injected_errors"] = failed
        context["all_pools_failed"] = bool(failed) and not params["LaunchTemplateConfigs"]
        return params

    def _all_pools_failed(self, context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]] | None:
        if context.get("all_pools_failed"):
            return _Http(), {"FleetId": "fleet-injected", "Errors": [], "Instances": []}
        return None

    def _report_ice_pools(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        injected = context.get("injected_errors") or []
        if injected:
            parsed["Errors"] = [*parsed.get("Errors", []), *injected]


def _operation_of(request: Any) -> str:
    body = request.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    for part in str(body or "").split("&"):
        if part.startswith("Action="):
            return part.split("=", 1)[1]
    return "?"

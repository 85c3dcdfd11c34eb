"""The provider's AWS clients (aioboto3), opened once and shared, with the throttling policy in one place.

Fed by `nodesmith_aws.settings.Settings` and an optional ``aioboto3.Session`` (tests pass one whose event
system carries fault injectors; operators may pass one with their own credentials chain). Consumed by
every module that calls AWS. botocore's ``standard`` retry mode does the backing off: throttling codes
(``RequestLimitExceeded``, ``Throttling``...) and transient 5xx errors are retried with jittered
exponential backoff under a retry quota, up to ``Settings.max_attempts`` attempts. Every failed attempt
(an error answer, a timeout, a dropped connection) is counted in ``nodesmith_cloudprovider_api_errors``
by service, operation and code, so throttling and retries show in the metrics even when a call finally
succeeds.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import aioboto3
import anyio
from botocore.config import Config
from botocore.exceptions import ClientError

from nodesmith import metrics
from nodesmith_aws.settings import Settings

__all__ = ["Clients", "error_code"]

PRICING_REGIONS: Final = {"ap": "ap-south-1", "eu": "eu-central-1", "cn": "cn-northwest-1"}


def error_code(err: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``InvalidInstanceID.NotFound``), else ``""``."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", ""))
    return ""


def count_failed_attempt(
    operation: Any, response: Any = None, caught_exception: BaseException | None = None, **_: Any
) -> None:
    """botocore ``needs-retry`` handler: one count per failed attempt (it never decides the retry)."""
    if caught_exception is not None:
        code = type(caught_exception).__name__
    elif response is not None and response[0].status_code >= 400:
        code = str((response[1] or {}).get("Error", {}).get("Code") or response[0].status_code)
    else:
        return
    service = operation.service_model.service_name
    metrics.CLOUDPROVIDER_API_ERRORS.add(1, {"service": service, "operation": operation.name, "code": code})


def pricing_region(region: str) -> str:
    """The region whose Pricing API endpoint serves ``region`` (Karpenter's mapping)."""
    return PRICING_REGIONS.get(region.split("-", 1)[0], "us-east-1")


class Clients:
    """Lazily opened, shared clients: ``await clients.ec2()``, ``ssm()``, ``iam()``, ``pricing()``.

    Use as an async context manager (or call :meth:`close`) to release their connection pools.
    """

    def __init__(self, settings: Settings, session: aioboto3.Session | None = None) -> None:
        self.settings = settings
        self.session = session or aioboto3.Session(region_name=settings.region)
        self.session.events.register("needs-retry", count_failed_attempt, unique_id="nodesmith-api-errors")
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._lock = anyio.Lock()

    async def _client(
        self, service: str, *, region: str | None = None, max_attempts: int | None = None
    ) -> Any:
        key = f"{service}@{region or self.settings.region}"
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(
                    retries={"mode": "standard", "max_attempts": max_attempts or self.settings.max_attempts},
                    connect_timeout=10,
                    read_timeout=self.settings.read_timeout_seconds,
                )
                client = await self._stack.enter_async_context(
                    self.session.client(
                        service,
                        region_name=region or self.settings.region,
                        endpoint_url=self.settings.endpoint_url,
                        config=config,
                    )
                )
                self._clients[key] = client
        return client

    async def ec2(self) -> Any:
        return await self._client("ec2")

    async def ssm(self) -> Any:
        return await self._client("ssm")

    async def iam(self) -> Any:
        return await self._client("iam")

    async def eks(self) -> Any:
        """Cluster discovery (DescribeCluster)."""
        return await self._client("eks")

    async def sqs(self) -> Any:
        """The interruption queue's client."""
        return await self._client("sqs")

    async def pricing(self) -> Any:
        # Pricing refreshes every 12 h and has a static fallback: do not hammer it when it fails.
        return await self._client("pricing", region=pricing_region(self.settings.region), max_attempts=2)

    async def close(self) -> None:
        self._clients.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

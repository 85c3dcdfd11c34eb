"""When the kube layer retries a failed call by itself, and how long it waits.

Fed by the typed errors of `nodesmith.kube.errors`; consumed by `nodesmith.kube.client`, which wraps
each operation in the policy below that is safe for it. Retries use exponential backoff with jitter
(honouring a server's ``Retry-After``), give up after `Policy.attempts` tries or `Policy.deadline`
seconds, and then re-raise the last typed error unchanged.

Which operations retry on what:

=====================================  ==========================================================
operation                              retried on
=====================================  ==========================================================
get, list                              429, 5xx, no answer (`SAFE`)
merge_patch, update_status, delete,    429, 5xx, no answer (`SAFE`): repeating them changes
replace / json_patch *with*            nothing, or fails a precondition (409) if the first try
resourceVersion/UID preconditions      did land
create, json_patch without             429 and "connection never opened" only (`UNSAFE`): a lost
preconditions                          answer may hide a write that happened (a second create with
                                       ``generateName`` would be a second NodeClaim)
evict                                  "connection never opened" only (`EVICT`): 429 *is* the answer
                                       (a PDB says no); the eviction queue owns that backoff
watch                                  never: the informer reconnects and relists
409 Conflict                           never blindly; `KubeClient.mutate` re-reads and re-applies
=====================================  ==========================================================
"""

from __future__ import annotations

import logging
import random
import typing
from collections.abc import Awaitable, Callable

import anyio
import attrs
import tenacity

from nodesmith.kube import errors

__all__ = ["EVICT", "SAFE", "UNSAFE", "Policy", "call"]

log = logging.getLogger(__name__)

T = typing.TypeVar("T")


def _safe(err: BaseException) -> bool:
    if isinstance(err, errors.EvictionBlockedError):
        return False
    return isinstance(err, errors.TooManyRequestsError | errors.ServerError | errors.APIUnavailableError)


def _unsafe(err: BaseException) -> bool:
    if isinstance(err, errors.EvictionBlockedError):
        return False
    if isinstance(err, errors.TooManyRequestsError):
        return True
    return isinstance(err, errors.APIUnavailableError) and not err.request_sent


def _evict(err: BaseException) -> bool:
    return isinstance(err, errors.APIUnavailableError) and not err.request_sent


@typing.final
@attrs.frozen(slots=True)
class Policy:
    """Which errors to retry (``retryable``) and how: ``attempts`` tries within ``deadline`` seconds,
    waits growing from ``initial`` by doubling up to ``maximum``, with full jitter."""

    name: str
    retryable: Callable[[BaseException], bool]
    attempts: int = 5
    deadline: float = 30.0
    initial: float = 0.2
    maximum: float = 5.0

    def with_limits(self, *, attempts: int | None = None, deadline: float | None = None) -> Policy:
        return attrs.evolve(
            self,
            attempts=self.attempts if attempts is None else attempts,
            deadline=self.deadline if deadline is None else deadline,
        )

    def wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds before the next try: jittered exponential, at least the server's Retry-After."""
        ceiling = min(self.maximum, self.initial * 2 ** (state.attempt_number - 1))
        delay = random.uniform(self.initial / 2, ceiling)  # jitter, not security
        outcome = state.outcome
        err = outcome.exception() if outcome is not None else None
        if isinstance(err, errors.TooManyRequestsError) and err.retry_after:
            delay = max(delay, min(err.retry_after, self.maximum * 2))
        return delay


SAFE = Policy("safe", _safe)
UNSAFE = Policy("unsafe", _unsafe)
EVICT = Policy("evict", _evict, attempts=3)


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    err = outcome.exception() if outcome is not None else None
    delay = state.next_action.sleep if state.next_action else 0.0
    log.debug("kube call failed (%s), try %d, retrying in %.2fs", err, state.attempt_number, delay)


async def call(policy: Policy, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn()`` under ``policy``; re-raise its last error when the policy gives up."""
    retrying = tenacity.AsyncRetrying(
        sleep=anyio.sleep,
        stop=tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_after_delay(policy.deadline),
        wait=policy.wait,
        retry=tenacity.retry_if_exception(policy.retryable),
        before_sleep=_log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises or returns")  # pragma: no cover

"""Typed Kubernetes API errors, translated once from kr8s/httpx failures.

Fed by `nodesmith.kube.client` (which catches kr8s's ``ServerError``/``APITimeoutError`` and httpx
transport errors and calls `from_status`); consumed by every caller of the kube layer: the informers
(`GoneError` → relist), the retry policy in `nodesmith.kube.retry`, reconcilers (`NotFoundError` means
"already gone", `ConflictError` means "re-read and try again"), and the termination eviction queue
(`EvictionBlockedError` means a PodDisruptionBudget said no).

::

    NodesmithError
    └── KubeError                       any failed API call; ``status`` (HTTP code or 0), ``reason``
        ├── BadRequestError        400
        ├── UnauthorizedError      401 / 403 (``ForbiddenError`` is the 403 one)
        │   └── ForbiddenError
        ├── NotFoundError          404  (the object, its namespace or its kind is not there)
        ├── ConflictError          409  (optimistic lock or precondition failed; re-read, do not blindly retry)
        │   └── AlreadyExistsError 409 with reason AlreadyExists
        ├── GoneError              410  (the resourceVersion is too old: relist)
        ├── InvalidError           422  (the object failed validation; names the causes)
        ├── TooManyRequestsError   429  (``retry_after`` seconds when the server said)
        │   └── EvictionBlockedError   429 from the Eviction subresource: a PDB forbids it now
        ├── ServerError            5xx
        └── APIUnavailableError    no HTTP answer at all: connection refused/reset, timeout

Causes are kept with ``raise ... from err``. Import this module, not the names.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from nodesmith import errors

__all__ = [
    "APIUnavailableError",
    "AlreadyExistsError",
    "BadRequestError",
    "ConflictError",
    "EvictionBlockedError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "KubeError",
    "NotFoundError",
    "ServerError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "from_status",
]


class KubeError(errors.NodesmithError):
    """Raised when a Kubernetes API call fails; ``status`` is the HTTP code (0 if none), ``reason``
    the Status object's reason (``NotFound``, ``Conflict``, ...) and ``message`` its message."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        details: Mapping[str, typing.Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details: Mapping[str, typing.Any] = details or {}


class BadRequestError(KubeError):
    """Raised on HTTP 400: the request itself is malformed (bad patch, bad selector)."""


class UnauthorizedError(KubeError):
    """Raised on HTTP 401 (and, as `ForbiddenError`, 403) after kr8s re-authenticated and still failed."""


class ForbiddenError(UnauthorizedError):
    """Raised on HTTP 403: RBAC denies this verb on this resource."""


class NotFoundError(KubeError):
    """Raised on HTTP 404: the object (or its namespace, or its resource type) does not exist."""


class ConflictError(KubeError):
    """Raised on HTTP 409: a resourceVersion/UID precondition failed or the object changed under us.

    Also raised by `nodesmith.kube.client.KubeClient.json_patch` when its UID precondition (a ``test``
    operation, which the server reports as a bare 422) fails."""


class AlreadyExistsError(ConflictError):
    """Raised on HTTP 409 with reason ``AlreadyExists`` from a create."""


class GoneError(KubeError):
    """Raised on HTTP 410, or a watch ERROR event with code 410: the resourceVersion is too old; relist."""


class InvalidError(KubeError):
    """Raised on HTTP 422: the object failed validation (schema, CEL, immutable field)."""


class TooManyRequestsError(KubeError):
    """Raised on HTTP 429; ``retry_after`` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: typing.Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class EvictionBlockedError(TooManyRequestsError):
    """Raised by ``evict`` on HTTP 429: a PodDisruptionBudget does not allow this eviction now."""


class ServerError(KubeError):
    """Raised on HTTP 5xx (for ``evict``, 500 usually means the pod is covered by more than one PDB)."""


class APIUnavailableError(KubeError):
    """Raised when no HTTP answer came back: connection refused or reset, TLS failure, timeout.

    ``request_sent`` is False only when the connection could not even be opened, so the server
    cannot have acted on the request (the one case where retrying a non-idempotent call is safe)."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
    429: TooManyRequestsError,
}


def from_status(
    code: int, body: Mapping[str, typing.Any] | str | None, *, retry_after: float | None = None
) -> KubeError:
    """Build the typed error for an HTTP status code and a (``Status``) response body."""
    reason, message = "", ""
    details: Mapping[str, typing.Any] = {}
    if isinstance(body, Mapping):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
        details = body.get("details") or {}
    elif body:
        message = body[:500]
    message = message or f"HTTP {code}"
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExistsError(message, status=code, reason=reason, details=details)
    if code == 429:
        return TooManyRequestsError(
            message, status=code, reason=reason, details=details, retry_after=retry_after
        )
    cls = _BY_STATUS.get(code) or (ServerError if code >= 500 else KubeError)
    return cls(message, status=code, reason=reason, details=details)

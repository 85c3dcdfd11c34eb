"""Every exception nodesmith raises on purpose, in one tree.

::

    NodesmithError
    ├── ValidationError            a NodePool/NodeClaim/NodeClass field is invalid (names the field)
    ├── ConfigError                a setting or flag is invalid (names the setting)
    ├── PluginError                a plugin is missing, broken or does not implement the contract
    └── ProviderError              a cloud provider operation failed
        ├── InsufficientCapacityError   no offering could be launched; the NodeClaim is deleted and its
        │                               pods are provisioned again (providers remember what failed)
        ├── NodeClaimNotFoundError      the instance is gone; ``delete`` raises it once done, callers treat
        │                               that as success
        ├── NodeClassNotReadyError      the NodeClaim's NodeClass does not exist or is not Ready
        └── CreateError                 launch failed for another reason (``reason`` is a condition reason)

Causes are kept with ``raise ... from err``. Import this module, not the names.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "CreateError",
    "InsufficientCapacityError",
    "NodeClaimNotFoundError",
    "NodeClassNotReadyError",
    "NodesmithError",
    "PluginError",
    "ProviderError",
    "ValidationError",
]


class NodesmithError(Exception):
    """Base of every error nodesmith raises on purpose."""


class ValidationError(NodesmithError, ValueError):
    """Raised when an API object has an invalid field; ``field`` is its path (``spec.template.spec...``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(NodesmithError, ValueError):
    """Raised when a setting (flag or environment variable) is invalid; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


class PluginError(NodesmithError):
    """Raised when a plugin cannot be loaded or does not implement what its hook promised."""


class ProviderError(NodesmithError):
    """Raised by a cloud provider operation that failed."""


class InsufficientCapacityError(ProviderError):
    """Raised by ``create`` when no offering of the NodeClaim could be launched right now.

    ``offerings`` lists the (instance type, zone, capacity type) offerings the launch tried and found
    without capacity, when the provider knows them (empty otherwise); the core reads their capacity types
    to back off a NodePool whose launches keep failing."""

    def __init__(self, *args: object, offerings: Iterable[tuple[str, str, str]] = ()) -> None:
        super().__init__(*args)
        self.offerings = tuple(offerings)


class NodeClaimNotFoundError(ProviderError):
    """Raised by ``get``/``delete`` when the instance behind a providerID no longer exists."""


class NodeClassNotReadyError(ProviderError):
    """Raised by ``create`` when the NodeClaim's NodeClass is missing or not Ready."""


class CreateError(ProviderError):
    """Raised by ``create`` for any other launch failure; ``reason`` becomes the Launched condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

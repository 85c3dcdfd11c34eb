"""The daemon's settings: defaults, environment variables (``NODESMITH_*``) and flags, validated once.

``nodesmith run`` builds a :class:`Settings` from its flags (each flag also reads its environment
variable); the composition root hands it to every collaborator. Invalid values raise
``nodesmith.errors.ConfigError`` naming the setting, before anything starts.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

import attrs
import yaml

from nodesmith import errors
from nodesmith.api import duration
from nodesmith.scheduling import defaultspread

__all__ = ["FEATURE_GATES", "Settings"]

FEATURE_GATES: Final = {
    "SpotToSpotConsolidation": False,
    "KarpenterLabelAliases": False,
    "RebalanceReplacement": False,
    "NodeRepair": False,
}
"""Known feature gates and their defaults; ``--feature-gates A=true,B=false`` overrides them."""

_LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _positive(setting: str, value: timedelta) -> None:
    if value <= timedelta(0):
        raise errors.ConfigError(
            setting, f"must be a positive duration, got {duration.format_duration(value)}"
        )


def _port(setting: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise errors.ConfigError(
            setting, f"must be a TCP port between 0 and 65535 (0 picks a free one), got {value}"
        )


@attrs.frozen(slots=True, kw_only=True)
class Settings:
    """Everything the daemon is configured with. Build with :meth:`from_raw` to get validation."""

    provider: str
    cluster_name: str = "nodesmith"
    kubeconfig: str | None = None
    batch_idle_duration: timedelta = timedelta(seconds=1)
    batch_max_duration: timedelta = timedelta(seconds=10)
    log_level: str = "info"
    metrics_port: int = 8080
    health_port: int = 8081
    leader_election: bool = True
    leader_election_namespace: str = "kube-system"
    leader_election_name: str = "nodesmith-leader-election"
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)
    feature_gates: Mapping[str, bool] = attrs.field(factory=lambda: dict(FEATURE_GATES))
    provider_settings: Mapping[str, str] = attrs.field(factory=dict)
    identity: str = ""
    scheduler_config: str | None = None
    """Path of a ``KubeSchedulerConfiguration`` whose PodTopologySpread defaults the simulation applies to
    pods without spread constraints (Karpenter's ``--scheduler-config``); unset: no cluster defaults."""

    @classmethod
    def from_raw(
        cls,
        *,
        provider: str,
        batch_idle_duration: str = "1s",
        batch_max_duration: str = "10s",
        feature_gates: str = "",
        provider_settings: Mapping[str, str] | None = None,
        lease_duration: str = "15s",
        renew_deadline: str = "10s",
        retry_period: str = "2s",
        **values: object,
    ) -> Settings:
        """Parse string-valued settings (as flags and environment variables give them) and validate."""
        if not provider:
            raise errors.ConfigError("provider", "is required (e.g. --provider kwok)")
        settings = cls(
            provider=provider,
            batch_idle_duration=_duration("batch-idle-duration", batch_idle_duration),
            batch_max_duration=_duration("batch-max-duration", batch_max_duration),
            lease_duration=_duration("lease-duration", lease_duration),
            renew_deadline=_duration("renew-deadline", renew_deadline),
            retry_period=_duration("retry-period", retry_period),
            feature_gates=_feature_gates(feature_gates),
            provider_settings=dict(provider_settings or {}),
            **values,  # type: ignore[arg-type]
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first invalid setting."""
        _positive("batch-idle-duration", self.batch_idle_duration)
        _positive("batch-max-duration", self.batch_max_duration)
        if self.batch_idle_duration > self.batch_max_duration:
            raise errors.ConfigError("batch-idle-duration", "must not exceed batch-max-duration")
        _port("metrics-port", self.metrics_port)
        _port("health-port", self.health_port)
        if self.log_level not in _LOG_LEVELS:
            raise errors.ConfigError(
                "log-level", f"must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}"
            )
        for setting in ("lease_duration", "renew_deadline", "retry_period"):
            _positive(setting.replace("_", "-"), getattr(self, setting))
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise errors.ConfigError(
                "renew-deadline", "must satisfy retry-period < renew-deadline < lease-duration"
            )
        if not self.cluster_name:
            raise errors.ConfigError("cluster-name", "must not be empty")
        self.default_spread()

    def default_spread(self) -> defaultspread.DefaultSpread | None:
        """The cluster-default spread read from ``scheduler_config`` (``None`` when unset); raises
        ``ConfigError`` when the file is unreadable or kube-scheduler would refuse it."""
        if not self.scheduler_config:
            return None
        try:
            document = yaml.safe_load(pathlib.Path(self.scheduler_config).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise errors.ConfigError(
                "scheduler-config", f"cannot read {self.scheduler_config}: {err}"
            ) from err
        if not isinstance(document, Mapping):
            raise errors.ConfigError("scheduler-config", "must be a KubeSchedulerConfiguration object")
        try:
            return defaultspread.from_scheduler_config(document)
        except defaultspread.SchedulerConfigError as err:
            raise errors.ConfigError("scheduler-config", str(err)) from err

    @property
    def logging_level(self) -> int:
        return int(logging.getLevelName(self.log_level.upper()))

    def gate(self, name: str) -> bool:
        """Is feature gate ``name`` on?"""
        return bool(self.feature_gates.get(name, False))


def _duration(setting: str, value: str) -> timedelta:
    try:
        return duration.parse_duration(value)
    except duration.DurationError as err:
        raise errors.ConfigError(setting, str(err)) from err


def _feature_gates(text: str) -> dict[str, bool]:
    gates = dict(FEATURE_GATES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or value.lower() not in ("true", "false"):
            raise errors.ConfigError("feature-gates", f"expected Name=true|false, got {item!r}")
        if name not in FEATURE_GATES:
            raise errors.ConfigError(
                "feature-gates", f"unknown gate {name!r}; known: {', '.join(sorted(FEATURE_GATES))}"
            )
        gates[name] = value.lower() == "true"
    return gates

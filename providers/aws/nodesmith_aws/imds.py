"""The region from EC2 instance metadata (IMDSv2), the last place the region setting is looked for.

Fed by the botocore-standard variables ``AWS_EC2_METADATA_DISABLED`` and
``AWS_EC2_METADATA_SERVICE_ENDPOINT``; consumed by `nodesmith_aws.settings.Settings.from_context` when
neither the ``region`` setting nor ``AWS_REGION`` gives one. Synchronous on purpose: it runs once while
the settings are parsed, before anything else starts, with a one-second timeout.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Final

__all__ = ["region"]

DEFAULT_ENDPOINT: Final = "http://169.254.169.254"


def region(environ: Mapping[str, str] = os.environ, timeout: float = 1.0) -> str | None:
    """The instance's region, or ``None`` when metadata is disabled or unreachable."""
    if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    base = environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
    try:
        token_request = urllib.request.Request(
            f"{base}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )
        with urllib.request.urlopen(token_request, timeout=timeout) as answer:
            token = answer.read().decode()
        region_request = urllib.request.Request(
            f"{base}/latest/meta-data/placement/region", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(region_request, timeout=timeout) as answer:
            return answer.read().decode().strip() or None
    except (urllib.error.URLError, OSError, ValueError):
        return None

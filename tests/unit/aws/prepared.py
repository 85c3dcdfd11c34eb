"""The prepared AWS account every AWS provider test starts from, restored between tests instead of rebuilt.

Resetting moto and preparing the account again cost most of each test's set-up: moto's EC2 backend is
rebuilt from scratch on first use after a reset, loading and registering its ~1,300 public AMIs (with a
volume and a snapshot each), and the reset itself rebuilds every live backend once more only to drop
it. The session therefore prepares the account once, through the API as an operator would
(`conftest.prepare_account`), keeps a pickled copy of the EC2 and IAM state that left behind, and before
each test resets moto and puts a fresh copy of that state back. Each test still starts from exactly what
a reset plus `prepare_account` produce; none sees another's instances, queues, parameters or tags.

The moto server runs in this process (`MotoServer` wraps moto's threaded server), so its backends are
this process's objects; the restore runs between tests, while no request is in flight.
"""

from __future__ import annotations

import gc
import pickle
from typing import Any, Final

import attrs
from moto.core.base_backend import backend_lock
from moto.core.models import DEFAULT_ACCOUNT_ID

from nodesmith_aws.testing.moto import REGION, MotoServer

__all__ = ["PreparedAccount"]

PARTITION: Final = "aws"
"""Where moto keeps a global service's (IAM's) backend."""


def _kept() -> tuple[tuple[Any, str], ...]:
    """The backends `prepare_account` changes, with the region (or partition) it changes them in (imported
    here: moto's EC2 models take seconds to import, which collecting tests that never use them need not
    pay; the moto server imports them on its first EC2 request anyway)."""
    from moto.ec2.models import ec2_backends
    from moto.iam.models import iam_backends

    return ((ec2_backends, REGION), (iam_backends, PARTITION))


@attrs.frozen
class PreparedAccount:
    """``PreparedAccount.capture()`` once the account is prepared; ``restore(moto)`` before each test."""

    pickled: tuple[bytes, ...]

    @classmethod
    def capture(cls) -> PreparedAccount:
        with backend_lock:
            return cls(tuple(pickle.dumps(dict.__getitem__(b[DEFAULT_ACCOUNT_ID], r)) for b, r in _kept()))

    def restore(self, moto: MotoServer) -> None:
        """Reset moto, then give it back the prepared EC2 and IAM state (fresh objects each time)."""
        with backend_lock:
            for backends, region in _kept():
                if DEFAULT_ACCOUNT_ID in backends:
                    # dropped first: the reset would otherwise rebuild it (AMIs and all) only to discard it
                    dict.pop(dict.__getitem__(backends, DEFAULT_ACCOUNT_ID), region, None)
        moto.reset()
        # thousands of objects at once: with the collector on, its passes over the test process's large
        # heap cost more than the unpickling itself
        collecting = gc.isenabled()
        gc.disable()
        try:
            with backend_lock:
                for (backends, region), state in zip(_kept(), self.pickled, strict=True):
                    backends[DEFAULT_ACCOUNT_ID][region] = pickle.loads(state)  # our own bytes
        finally:
            if collecting:
                gc.enable()

"""The daemon's garbage-collector policy after its cold start: never again scan what the informers'
first lists left behind.

Once every informer has synced, the daemon collects once and *freezes* the heap (`gc.freeze`): the
synced cluster state (150,000 pods are millions of dicts and lists) moves to the permanent generation,
which the cycle collector's later passes skip. Without that, each full pass of the idle daemon rescans
all of it, and finds nothing: the JSON the state holds has no reference cycles. Frozen objects are
still freed by reference counting when an update replaces them. (The lists themselves are decoded and
applied with the collector paused: `nodesmith.kube.liststream.collector_paused`.) It then hands the C
heap's free pages back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import typing

__all__ = ["freeze_once_synced"]

log = logging.getLogger(__name__)


class _Syncs(typing.Protocol):
    async def wait_synced(self) -> None: ...


async def freeze_once_synced(informers: _Syncs) -> None:
    """Wait until ``informers`` have synced, collect once and freeze what is left. Process-wide: only
    `nodesmith.runtime.app.run` calls it."""
    await informers.wait_synced()
    freed = gc.collect()
    gc.freeze()
    trimmed = _trim_c_heap()
    log.debug(
        "synced: collected %d objects, froze %d, C heap trimmed: %s", freed, gc.get_freeze_count(), trimmed
    )


def _trim_c_heap() -> bool:
    """Give the C allocator's free pages back to the system (glibc's ``malloc_trim``); False where there
    is no such call (another libc). The cold lists' large buffers (a gzipped list body, its decoded
    pieces) come from the C heap, and glibc keeps freed heap pages as the process's RSS."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    return bool(trim(0))

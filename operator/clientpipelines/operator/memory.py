"""The operator's memory: what glibc's allocator keeps after a burst, given back.

A burst of reconciles (a thousand pipelines applied at once) runs on kopf's worker
threads. glibc's malloc gives each thread an arena of its own (up to eight per core)
and keeps the pages freed in them: after the burst the process stays at its peak
although Python holds a third of it (issue 16's measurement at 1,000 pipelines:
409 MB resident). Two arenas serve 20 workers that mostly wait on the network, and a
periodic `malloc_trim` returns the free pages inside the heaps (not only at their
top) to the system. Elsewhere than glibc (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from functools import cache

log = logging.getLogger(__name__)

# mallopt's parameter number for the arena limit (glibc's malloc.h).
M_ARENA_MAX = -8
ARENAS = 2
# Often enough that memory freed after a burst goes back within a minute; a trim
# walks the free lists under the arenas' locks, a few milliseconds here.
TRIM_INTERVAL = 60.0


@cache
def _glibc() -> ctypes.CDLL | None:
    # The process's own symbols, the C library's among them (no search for its file).
    libc = ctypes.CDLL(None)
    # musl and macOS have neither.
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas for the process; True if glibc took it. Call it
    before the worker threads start: arenas already made stay."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Give the allocator's free pages back to the system; True if some were."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


def start_trimming(interval: float = TRIM_INTERVAL) -> threading.Thread | None:
    """Trim every `interval` seconds in a daemon thread, for the process's life."""
    if _glibc() is None:
        log.info("not glibc: the allocator's free memory is left to it")
        return None

    def loop() -> None:
        while True:
            time.sleep(interval)
            trim()

    thread = threading.Thread(target=loop, name="malloc-trim", daemon=True)
    thread.start()
    return thread

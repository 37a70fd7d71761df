"""The operator gives the allocator's free memory back after a burst."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clientpipelines.operator import memory

pytestmark = pytest.mark.unit

# Run in a fresh interpreter, so what pytest itself holds does not blur the figures.
FRAGMENTED = """
import os
from clientpipelines.operator import memory

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

limited = memory.limit_arenas()
# 100 MB in 4 KB blocks (malloc's, not Python's small-object pools), one in 16 kept:
# the freed blocks sit between live ones, so glibc cannot shrink its heap's top.
blocks = [bytes(4000) + bytes([i % 256]) for i in range(25_000)]
kept = blocks[::16]
del blocks
before = rss()
trimmed = memory.trim()
print(limited, trimmed, before, rss())
"""


@pytest.mark.skipif(memory._glibc() is None, reason="malloc_trim and mallopt are glibc's")
def test_trimming_gives_freed_memory_between_live_blocks_back() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(memory.__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    limited, trimmed, before, after = out[0], out[1], int(out[2]), int(out[3])
    assert (limited, trimmed) == ("True", "True")
    # About 94 MB of the 100 MB were freed; most of it leaves the process.
    assert before - after > 60 * 2**20, (before, after)

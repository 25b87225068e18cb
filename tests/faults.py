"""Fault injection for the atomicity tests: shard functions that die the way real workers die."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from generator.parts import make_part


def die_on_shard_two(gen, shard, root, run_id, partition_by):
    """Behave normally, except on shard 2: leave a half-written temp file, then be SIGKILLed."""
    if shard.index == 2:
        tmp = Path(root) / "events" / f".part-{shard.index:05d}-{run_id}.parquet.{os.getpid()}.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"PAR1 half a part")
        os.kill(os.getpid(), signal.SIGKILL)
    return make_part(gen, shard, root, run_id, partition_by)

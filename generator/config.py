"""Run settings, validated once at the boundary: a bad value raises ConfigError naming it, before any write."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from generator.core.behaviour import default_behaviour
from generator.core.shard import MAX_SHARDS, MAX_WINDOW_DAYS, GenConfig, auto_shard_size, shard_count, window_days

PARTITIONINGS = ("date", "hour", "none")
DEFAULT_START = "2025-11-01T00:00:00Z"  # a fixed instant, so a default run is reproducible; see README
DEFAULT_SEED = 42
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A user-supplied value is invalid; the message names it. Maps to exit code 2."""


def parse_whole(flag: str, text: str) -> int:
    """A whole number given on the command line (underscores allowed: 500_000)."""
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(f"{flag}: not a whole number: {text!r}") from None


def parse_start(text: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken as UTC."""
    try:
        t = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ConfigError(f"--start: not an ISO 8601 date or time: {text!r}") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


DEFAULT_START_TIME = parse_start(DEFAULT_START)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _writable(path: Path) -> bool:
    p = path
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


@dataclass(frozen=True)
class RunConfig:
    events: int = 500_000
    workers: int = os.cpu_count() or 1
    seed: int = DEFAULT_SEED
    start: datetime = DEFAULT_START_TIME
    out: Path = Path("shards")
    partition_by: str = "date"
    latency_threshold_ms: int = default_behaviour().latency_threshold_ms
    run_id: str = ""
    customers: int = default_behaviour().customers
    shard_size: int | None = None  # None: chosen from the event target and the population (auto_shard_size)

    def __post_init__(self) -> None:
        def positive(value: object, flag: str) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{flag}: must be a whole number of at least 1, got {value!r}")

        positive(self.events, "--events")
        positive(self.workers, "--workers")
        positive(self.customers, "--customers")
        if self.shard_size is not None:
            positive(self.shard_size, "--shard-size")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed: must be a whole number from 0 to 2**63-1, got {self.seed!r}")
        if not isinstance(self.latency_threshold_ms, int) or self.latency_threshold_ms < 0:
            raise ConfigError(f"--latency-threshold-ms: must be 0 or more, got {self.latency_threshold_ms!r}")
        if self.partition_by not in PARTITIONINGS:
            raise ConfigError(f"--partition-by: must be one of {', '.join(PARTITIONINGS)}, got {self.partition_by!r}")
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())
        elif not _RUN_ID.match(self.run_id):
            raise ConfigError(f"--run-id: letters, digits, '.', '_' or '-' (at most 64), got {self.run_id!r}")
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out: not a directory: {str(self.out)!r}")
        if not _writable(self.out):
            raise ConfigError(f"--out: cannot write to {str(self.out)!r}")
        if self.shard_size is None:
            object.__setattr__(self, "shard_size", auto_shard_size(self.events, self.customers, default_behaviour()))
        if shard_count(self.events, self.customers, self.shard_size) > MAX_SHARDS:
            raise ConfigError(f"--events: {self.events} makes more than {MAX_SHARDS} shards; raise --shard-size")
        if window_days(self.gen()) > MAX_WINDOW_DAYS:
            raise ConfigError(
                f"--events: {self.events} events from {self.customers} customers would span more than ten years; "
                "use more --customers"
            )

    @property
    def start_us(self) -> int:
        delta = self.start - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def gen(self) -> GenConfig:
        """The part of the settings that decides the bytes of the parts (workers and paths do not)."""
        return GenConfig(
            seed=self.seed,
            events=self.events,
            start_us=self.start_us,
            shard_size=self.shard_size,
            latency_threshold_ms=self.latency_threshold_ms,
            customers=self.customers,
        )

    def options(self) -> dict[str, object]:
        """The effective options, as recorded in the manifest."""
        return {
            "events": self.events,
            "workers": self.workers,
            "seed": self.seed,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "partition_by": self.partition_by,
            "latency_threshold_ms": self.latency_threshold_ms,
            "customers": self.customers,
            "shard_size": self.shard_size,
        }
